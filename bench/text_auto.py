"""`rnnkit text train` with defaults against a plain-PyTorch char-LSTM, same corpus, same budget (issue 14).

    python bench/text_auto.py                       # held-out corpus, 180 s, 2 repeats each, interleaved
    python bench/text_auto.py --data dev.txt --seconds 180 --repeats 1 --only rnnkit --flags "--cell gru"

rnnkit: ``python -m rnnkit text train --data CORPUS --max-time S`` with nothing else (its automatic
configuration chooses the model and the training; ``--max-time`` counts the corpus preparation too).
Baseline: a plain PyTorch char-LSTM as a user would write it: embedding 64 -> 2 x 256 ``nn.LSTM`` ->
``nn.Linear``, Adam 2e-3, gradient-norm clip 1, 32 streams x 128 characters of truncated BPTT with the
state carried, trained for the same S seconds of wall clock (its data loading not counted).
Both read the same token ids: rnnkit's prepared split (the tail 10 % of the text, cut at a line break,
is validation; the vocabulary is the training part's) and both are scored by the same rule as
``TextModel._score`` on the first ``VAL_TOKENS`` validation characters (16 streams, 256-character
chunks, state carried, unknown characters not scored): loss in nats per character.
Every run is its own process with one torch thread; rnnkit and baseline runs alternate.

Held-out corpus (default ``--data``): the CMake reference documentation, the ``.rst`` files under
``/usr/share/cmake-*/Help`` (Debian's cmake package) sorted by path, concatenated and cut to the
first 2.3 MB at a line break. It was not used to choose anything (docs/decisions.md).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HELD_OUT_CHARS = 2_300_000


def held_out_corpus(dest: Path) -> Path:
    """The CMake Help .rst files, concatenated and cut to 2.3 MB (see the module docstring)."""
    helps = sorted(glob.glob("/usr/share/cmake-*/Help"))
    if not helps:
        raise SystemExit("no /usr/share/cmake-*/Help: install Debian's cmake package or pass --data")
    files = sorted(glob.glob(f"{helps[-1]}/**/*.rst", recursive=True))
    parts, n = [], 0
    for f in files:
        parts.append(Path(f).read_text(encoding="utf-8", errors="replace"))
        n += len(parts[-1])
        if n >= HELD_OUT_CHARS:
            break
    text = "".join(parts)[:HELD_OUT_CHARS]
    dest.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")
    return dest


def score(model, ids, unk: int, streams: int = 16, chunk: int = 256) -> float:
    """Mean nats per scored token of ids[1:] given ids[:-1], as ``TextModel._score``; model(x, state) -> logits, state."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    n = len(ids)
    B = max(1, min(streams, (n - 1) // chunk))
    L = (n - 1) // B
    total, count, state = 0.0, 0, None
    model.eval()
    with torch.no_grad():
        def add(logits, y):
            nonlocal total, count
            y = y.reshape(-1)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y, ignore_index=unk, reduction="sum").item()
            count += int((y != unk).sum())
        for i in range(0, L, chunk):
            T = min(chunk, L - i)
            block = torch.from_numpy(np.stack([ids[b * L + i: b * L + i + T + 1] for b in range(B)]).astype(np.int64))
            logits, state = model(block[:, :-1], state)
            add(logits, block[:, 1:])
        if B * L < n - 1:
            last = tuple(s[:, -1:].contiguous() for s in state)
            tail = torch.from_numpy(np.asarray(ids[B * L:], dtype=np.int64)).unsqueeze(0)
            logits, _ = model(tail[:, :-1], last)
            add(logits, tail[:, 1:])
    return total / max(count, 1)


def baseline_run(data: Path, seconds: float, seed: int = 0) -> dict:
    """The plain-PyTorch char-LSTM (module docstring), trained for ``seconds`` of wall clock."""
    import numpy as np
    import torch
    from torch import nn

    from rnnkit.tasks.text.corpus import load_corpus
    from rnnkit.tasks.text.task import VAL_TOKENS

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(seed)
    corpus = load_corpus(data, None, "char", False, None, 1, 0.1, progress=False)
    train = corpus.train.read(0, len(corpus.train)).astype(np.int64)
    val = corpus.val.read(0, min(len(corpus.val), VAL_TOKENS)).astype(np.int64)
    V, B, T = len(corpus.vocab), 32, 128

    class CharLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.lstm = nn.Embedding(V, 64), nn.LSTM(64, 256, num_layers=2, batch_first=True)
            self.out = nn.Linear(256, V)

        def forward(self, x, state=None):
            y, state = self.lstm(self.emb(x), state)
            return self.out(y), state

    model = CharLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    n = (len(train) - 1) // B
    xs = torch.from_numpy(train[: n * B].reshape(B, n))
    ys = torch.from_numpy(train[1: n * B + 1].reshape(B, n))
    t0, steps, epochs, done = time.monotonic(), 0, 0, False
    while not done:
        state, epochs = None, epochs + 1
        model.train()
        for i in range(0, n - T + 1, T):
            logits, state = model(xs[:, i: i + T], state)
            state = tuple(s.detach() for s in state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, V), ys[:, i: i + T].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
            if time.monotonic() - t0 > seconds:
                done = True
                break
    train_s = time.monotonic() - t0
    return {"val_loss": score(model, val, corpus.vocab.unk_id), "steps": steps, "epochs": epochs,
            "train_seconds": round(train_s, 1)}


def rnnkit_run(data: Path, seconds: float, flags: str = "") -> dict:
    """``rnnkit text train --data DATA --max-time S [flags]`` in a subprocess; its printed metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rnnkit", "text", "train", "--data", str(data), "--out", f"{tmp}/m",
               "--max-time", str(seconds), "--quiet", *shlex.split(flags)]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.monotonic() - t0
        if proc.returncode:
            raise SystemExit(f"rnnkit failed:\n{proc.stderr[-2000:]}")
        out = json.loads(proc.stdout)
        plan = [ln for ln in proc.stderr.splitlines() if "auto config" in ln]
    return {"val_loss": out["val"]["loss"], "steps": out["steps"], "epochs": out["epochs"],
            "train_seconds": out["train_seconds"], "wall_seconds": round(wall, 1), "plan": plan[0] if plan else None}


def _child(kind: str, data: Path, seconds: float, flags: str) -> dict:
    """One run in a fresh process (one torch thread), so runs do not share caches or threads."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(data), "--seconds", str(seconds), "--flags", flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def compare(data: Path, seconds: float, repeats: int, only: str = "", flags: str = "", log=None) -> dict:
    """Alternate rnnkit and baseline runs ``repeats`` times; the ratio of the mean val losses."""
    kinds = [k for k in ("rnnkit", "baseline") if not only or k == only]
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for r in range(repeats):
        for kind in (kinds if r % 2 == 0 else kinds[::-1]):
            before = load_avg()
            res = {**_child(kind, data, seconds, flags), "load_before": before, "load_after": load_avg(),
                   "utc": time.strftime("%H:%M:%S", time.gmtime())}
            runs[kind].append(res)
            line = json.dumps({"kind": kind, "repeat": r, "data": data.name, "flags": flags, **res})
            print(line, flush=True)
            if log:
                with open(log, "a") as fh:
                    fh.write(line + "\n")
    out: dict = {"data": str(data), "seconds": seconds, "repeats": repeats, "flags": flags, "runs": runs}
    for kind, rs in runs.items():
        losses = [x["val_loss"] for x in rs]
        out[kind] = {"mean": statistics.fmean(losses), "min": min(losses), "max": max(losses)}
    if len(kinds) == 2:
        out["ratio"] = out["rnnkit"]["mean"] / out["baseline"]["mean"]
        out["ratio_range"] = [out["rnnkit"]["min"] / out["baseline"]["max"], out["rnnkit"]["max"] / out["baseline"]["min"]]
    return out


def table(res: dict) -> str:
    from bench.common import markdown_table

    rows = []
    for kind in ("rnnkit", "baseline"):
        if kind in res:
            rs = res["runs"][kind]
            rows.append([kind, ", ".join(f"{x['val_loss']:.4f}" for x in rs), f"{res[kind]['mean']:.4f}",
                         ", ".join(str(x["steps"]) for x in rs)])
    text = markdown_table(["", "val nats/char per run", "mean", "steps"], rows)
    if "ratio" in res:
        lo, hi = res["ratio_range"]
        text += f"\n\nrnnkit / baseline (means): **{res['ratio']:.3f}x** (worst-best pairing {lo:.3f}-{hi:.3f})"
    return text


def main(quick: bool = False, data: str = "", seconds: float = 180.0, repeats: int = 2) -> dict:
    from bench.common import machine_info, write_results

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(data) if data else held_out_corpus(Path(tmp) / "cmake_help_2.3MB.txt")
        res = compare(corpus, 20.0 if quick else seconds, 1 if quick else repeats)
    res.update(machine=machine_info(), corpus_note="held-out CMake Help .rst, 2.3 MB" if not data else data)
    res["table"] = table(res)
    write_results("text_auto", res, quick)
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="", help="corpus (default: the held-out CMake Help corpus)")
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", choices=("rnnkit", "baseline"), default="")
    ap.add_argument("--flags", default="", help="extra `text train` flags (development runs only)")
    ap.add_argument("--log", help="append one JSON line per run")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", choices=("rnnkit", "baseline"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        fn = baseline_run(Path(a.data), a.seconds) if a.child == "baseline" else rnnkit_run(Path(a.data), a.seconds, a.flags)
        print(json.dumps(fn))
    elif a.only or a.flags:
        res = compare(Path(a.data), a.seconds, a.repeats, a.only, a.flags, a.log)
        print(json.dumps({k: v for k, v in res.items() if k != "runs"}))
    else:
        print(main(a.quick, a.data, a.seconds, a.repeats)["table"])
