"""Benchmark: `rnnkit classify` with DEFAULT settings (only --max-time) on the development suite.

    .venv/bin/python bench/archive.py [--quick] [--max-time 120] [--aeon-python /path/to/python] [--only NAME ...]

Development suite (official train/test splits): BasicMotions and JapaneseVowels (shipped in
rnnkit/data/datasets/uea), ACSF1 and UnitTest (bench/data/uea, copied from the aeon 1.6.0 wheel).
Every other UCR/UEA problem is reserved for held-out evaluation: this file never loads one.

For each problem: ``rnnkit classify train --data <X>_TRAIN.ts.gz --out M --max-time T`` then
``rnnkit classify evaluate --model M --data <X>_TEST.ts.gz``, as a user would run them (subprocess,
one torch thread, ``nice``), timed (wall and CPU seconds of the train command). Baselines on the
same splits: 1-NN Euclidean (computed here) and MiniRocket (aeon's ``MiniRocketClassifier``,
random_state 0). aeon 1.6.0 needs pandas < 3.1, the project pins 3.1.1, so MiniRocket runs in a
separate interpreter given by ``--aeon-python`` (bench/_archive_baselines.py); without it the
previous MiniRocket numbers in bench/results/archive.json are reused and marked so.
Unequal lengths (JapaneseVowels): both baselines see each case padded with its last value.
Writes bench/results/archive.json (archive.quick.json with --quick) and prints one table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, log, machine_info, markdown_table, write_results  # noqa: E402

SHIPPED = ROOT / "rnnkit" / "data" / "datasets" / "uea"
BENCH_DATA = ROOT / "bench" / "data" / "uea"
SUITE = {"BasicMotions": SHIPPED, "JapaneseVowels": SHIPPED, "ACSF1": BENCH_DATA, "UnitTest": BENCH_DATA}
# Tuned numbers already in docs (docs/bench/classify.md: config by train-split CV, 5-seed ensemble).
TUNED = {"BasicMotions": 1.0, "JapaneseVowels": 0.986}


def split_path(name: str, split: str) -> Path:
    return SUITE[name] / f"{name}_{split}.ts.gz"


def padded_last(X: np.ndarray, lengths: np.ndarray, T: int) -> np.ndarray:
    """(n, T_max, F) zero-padded -> (n, F, T) with each case's last value repeated to length T."""
    out = np.zeros((X.shape[0], T, X.shape[2]), dtype=np.float64)
    for i, L in enumerate(lengths):
        out[i, :L] = X[i, :L]
        out[i, L:] = X[i, L - 1]
    return out.transpose(0, 2, 1)


def one_nn_euclidean(tr, te) -> float:
    T = max(tr.X.shape[1], te.X.shape[1])
    a = padded_last(tr.X, tr.lengths, T).reshape(len(tr.y), -1)
    b = padded_last(te.X, te.lengths, T).reshape(len(te.y), -1)
    d = (b ** 2).sum(1)[:, None] - 2 * b @ a.T + (a ** 2).sum(1)[None, :]
    return float(np.mean(tr.y[d.argmin(1)] == te.y))


def minirocket(tr, te, aeon_python: str) -> dict:
    T = max(tr.X.shape[1], te.X.shape[1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, X_train=padded_last(tr.X, tr.lengths, T), y_train=tr.y.astype(str),
                 X_test=padded_last(te.X, te.lengths, T), y_test=te.y.astype(str))
        env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        res = subprocess.run(["nice", aeon_python, str(ROOT / "bench" / "_archive_baselines.py"), str(path)],
                             capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"MiniRocket failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_rnnkit(name: str, max_time: float, workdir: Path) -> dict:
    """The user's two commands; wall and CPU seconds of `train` (CPU: user + system of the child)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    model, ev = workdir / f"{name}-model", workdir / f"{name}-eval"
    train = ["nice", sys.executable, "-m", "rnnkit", "classify", "train", "--data", str(split_path(name, "TRAIN")),
             "--out", str(model), "--max-time", f"{max_time:g}", "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(train, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"{name}: train failed: {res.stderr.strip()[-500:]}")
    plan = [ln for ln in res.stderr.splitlines() if "auto config" in ln]
    evaluate = ["nice", sys.executable, "-m", "rnnkit", "classify", "evaluate", "--model", str(model),
                "--data", str(split_path(name, "TEST")), "--out", str(ev)]
    res2 = subprocess.run(evaluate, capture_output=True, text=True, env=env)
    if res2.returncode != 0:
        raise RuntimeError(f"{name}: evaluate failed: {res2.stderr.strip()[-500:]}")
    metrics = json.loads((ev / "metrics.json").read_text())
    options = json.loads((model / "config.json").read_text())["options"]
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "train_wall_s": round(wall, 1),
            "train_cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "plan": plan[0].split("auto config: ", 1)[-1] if plan else None,
            "chosen": {k: options.get(k) for k in ("hidden_size", "bidirectional", "pooling", "conv_kernel", "conv_stride",
                                                   "series_norm", "ensemble", "max_steps", "batch_size", "val_fraction")}}


def _row(name: str, r: dict) -> list:
    return [name, f"{r['shape']['train']}/{r['shape']['test']}", r["shape"]["channels"], r["shape"]["length"],
            r["shape"]["classes"], f"{r['accuracy']:.3f}", f"{r['train_wall_s']:.0f} / {r['train_cpu_s']:.0f}",
            "n/a" if r["minirocket"] is None else f"{r['minirocket']:.3f}", f"{r['one_nn_ed']:.3f}",
            "" if r["tuned"] is None else f"{r['tuned']:.3f}"]


def main(quick: bool = False, max_time: float = 120.0, aeon_python: str | None = None,
         only: list[str] | None = None) -> dict:
    from rnnkit.data.uea import read_ts

    max_time = 20.0 if quick else max_time
    previous = {}
    prev_path = RESULTS / "archive.json"
    if prev_path.exists():
        previous = json.loads(prev_path.read_text()).get("datasets", {})
    names = only or list(SUITE)
    out: dict = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "max_time": max_time,
                 "machine": machine_info(), "load_before": os.getloadavg(), "datasets": {}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            tr, te = read_ts(split_path(name, "TRAIN")), read_ts(split_path(name, "TEST"))
            log(f"{name}: rnnkit classify train --max-time {max_time:g} ...")
            r = run_rnnkit(name, max_time, Path(tmp))
            r["one_nn_ed"] = one_nn_euclidean(tr, te)
            if aeon_python:
                log(f"{name}: MiniRocket ...")
                mr = minirocket(tr, te, aeon_python)
                r["minirocket"], r["minirocket_s"], r["minirocket_source"] = mr["minirocket"], mr["seconds"], f"aeon {mr['aeon']}"
            elif name in previous and previous[name].get("minirocket") is not None:
                r["minirocket"] = previous[name]["minirocket"]
                r["minirocket_s"] = previous[name].get("minirocket_s")
                r["minirocket_source"] = "reused from the previous archive.json"
            else:
                r["minirocket"] = None
            r["tuned"] = TUNED.get(name)
            r["shape"] = {"train": len(tr.y), "test": len(te.y), "channels": int(tr.X.shape[2]),
                          "length": f"{int(tr.lengths.min())}-{int(tr.lengths.max())}", "classes": len(set(tr.y))}
            out["datasets"][name] = r
            log(f"{name}: accuracy {r['accuracy']:.3f} (MiniRocket {r['minirocket']}, 1-NN ED {r['one_nn_ed']:.3f}), "
                f"train {r['train_wall_s']} s wall / {r['train_cpu_s']} s CPU")
            r["run"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            rows.append(_row(name, r))
    if only:  # a partial run: the other problems keep their previous results (marked by their own "run" time)
        out["datasets"] = {n: out["datasets"].get(n, previous.get(n)) for n in SUITE
                           if n in out["datasets"] or n in previous}
        rows = [_row(n, r) for n, r in out["datasets"].items()]
    ds = out["datasets"].values()
    mean = lambda k: float(np.mean([d[k] for d in ds])) if all(d.get(k) is not None for d in ds) else None  # noqa: E731
    out["mean"] = {k: mean(k) for k in ("accuracy", "minirocket", "one_nn_ed")}
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    rows.append(["**mean**", "", "", "", "", f"**{fmt(out['mean']['accuracy'])}**", "", fmt(out["mean"]["minirocket"]),
                 fmt(out["mean"]["one_nn_ed"]), ""])
    out["load_after"] = os.getloadavg()
    out["table"] = markdown_table(["dataset", "train/test", "channels", "length", "classes", "rnnkit defaults",
                                   "train s (wall / CPU)", "MiniRocket", "1-NN ED", "rnnkit tuned (docs)"], rows)
    write_results("archive", out, quick=quick)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="--max-time 20, a smoke run (archive.quick.json)")
    ap.add_argument("--max-time", type=float, default=120.0, help="the budget given to `classify train`")
    ap.add_argument("--aeon-python", help="an interpreter with aeon 1.6.0 (pandas < 3.1) for MiniRocket")
    ap.add_argument("--only", nargs="+", choices=list(SUITE), help="a subset of the suite")
    a = ap.parse_args()
    print(main(a.quick, a.max_time, a.aeon_python, a.only)["table"])
