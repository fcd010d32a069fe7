"""Train-split cross-validation of the automatic rule's choices on the development suite.

    .venv/bin/python bench/archive_cv.py [--only ACSF1 ...] [--budget 40] [--folds 5]

For each problem, stratified k-fold CV on the official TRAINING split only (rnnkit.tasks.classify.tune
.stratified_folds, seed 0): the default plan against single changes of the choices that were first
compared on test accuracy (pooling, the scaling/crop augmentation). Every fold fit gets the same
``--budget`` seconds and plans its own steps, as a user's run would. Writes bench/results/archive_cv.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.archive import SUITE, split_path  # noqa: E402
from bench.common import log, machine_info, markdown_table, write_results  # noqa: E402

VARIANTS = {"default plan": {}, "mean pooling": {"pooling": "mean"}, "scaling/crop augmentation": {"augment": True}}


def cv(name: str, budget: float, k: int) -> dict:
    from rnnkit.data.ragged import ragged_from_padded
    from rnnkit.data.sequences import SequenceData
    from rnnkit.data.uea import read_ts
    from rnnkit.tasks.classify import SequenceClassifier
    from rnnkit.tasks.classify.tune import stratified_folds

    tr = read_ts(split_path(name, "TRAIN"))
    steps, offsets = ragged_from_padded(tr.X, tr.lengths)
    data = SequenceData(kind="numeric", steps=steps, offsets=offsets, labels=[str(v) for v in tr.y], source=name)
    folds = stratified_folds(data.labels, k, seed=0)
    out = {}
    for variant, opts in VARIANTS.items():
        scores = []
        for f in range(k):
            fit_idx, held = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            clf = SequenceClassifier(max_time=budget, progress=False, device="cpu", **opts)
            with contextlib.redirect_stderr(io.StringIO()):
                clf.fit(data.subset(fit_idx))
            scores.append(clf.evaluate(data.subset(held))["accuracy"])
        out[variant] = {"cv_accuracy": float(np.mean(scores)), "folds": scores}
        log(f"{name}: {variant}: CV accuracy {np.mean(scores):.3f} ({' / '.join(f'{s:.3f}' for s in scores)})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(SUITE))
    ap.add_argument("--budget", type=float, default=40.0, help="--max-time of each fold fit")
    ap.add_argument("--folds", type=int, default=5)
    a = ap.parse_args()
    res = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "machine": machine_info(),
           "load_before": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "datasets": {}}
    for name in a.only or list(SUITE):
        res["datasets"][name] = cv(name, a.budget, a.folds)
    res["load_after"] = os.getloadavg()
    rows = [[n, *(f"{d[v]['cv_accuracy']:.3f}" for v in VARIANTS)] for n, d in res["datasets"].items()]
    res["table"] = markdown_table(["dataset (train-split CV)", *VARIANTS], rows)
    write_results("archive_cv", res)
    print(res["table"])


if __name__ == "__main__":
    main()
