"""Small hyper-parameter sweep for the names classifier, chosen on the VALIDATION split only.

    python bench/classify_sweep.py --device cuda --out sweep.json --configs '[{"hidden_size": 128}, ...]'

Each config is trained on the train split with early stopping on val; the table reports val
accuracy / macro-F1 (used for choosing) and, for information, test. The chosen config goes
into bench/classify.py; nothing here is read by the library.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", required=True, help="JSON list of SequenceClassifier options, or a .json file holding it")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from rnnkit.data.names import load_names, split_names
    from rnnkit.tasks.classify import SequenceClassifier

    train, val, test = split_names(load_names(), val=0.1, test=0.1, seed=0)
    rows = []
    text = Path(args.configs).read_text() if args.configs.endswith(".json") else args.configs
    for cfg in json.loads(text):
        t0 = time.time()
        opts = dict(progress=False, device=args.device, seed=0) | cfg
        clf = SequenceClassifier(**opts)
        clf.fit([n for n, _ in train], [l for _, l in train], val=([n for n, _ in val], [l for _, l in val]))
        rv = clf.evaluate([n for n, _ in val], [l for _, l in val])
        rt = clf.evaluate([n for n, _ in test], [l for _, l in test])
        row = {"config": cfg, "val_acc": rv["accuracy"], "val_f1": rv["macro_f1"], "test_acc": rt["accuracy"],
               "test_f1": rt["macro_f1"], "epochs": clf.history.epochs, "best_epoch": clf.history.best_epoch,
               "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
