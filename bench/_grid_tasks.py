"""Task-level throughput for ``bench/grid.py``: text generation chars/s, forecast predict latency
for one series, and DDP training throughput with 1 vs 2 processes (``bench/_ddp_scale.py``)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "rnnkit" / "data" / "datasets"


def text_generation(train_seconds: float = 5.0, length: int = 300, repeats: int = 3,
                    chars: int = 60_000, hidden_size: int | None = None) -> dict[str, Any]:
    """chars/s of ``TextModel.generate`` (one ``step`` + one sample per character, batch 1).

    The model is the char-level default size (or ``hidden_size``), trained for ``train_seconds`` on
    the first ``chars`` characters of the shipped Shakespeare text: barely trained, which does
    not change the speed (same network, same number of steps)."""
    from rnnkit.tasks.text.task import TextModel

    text = (DATA / "shakespeare" / "shakespeare.txt").read_text(encoding="utf-8")[:chars]
    opts = {} if hidden_size is None else {"hidden_size": hidden_size}
    tm = TextModel(level="char", **opts)
    tm.fit(text, epochs=1, max_time=train_seconds, device="cpu", progress=False)
    tm.generate("ROMEO:", length=20, seed=0)  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        out = tm.generate("ROMEO:", length=length, seed=r)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"hidden_size": tm.config.hidden_size, "embed_size": tm.config.embed_size,
            "num_layers": tm.config.num_layers, "vocab": len(tm.vocab), "train_seconds": train_seconds,
            "train_steps": tm.metrics.get("steps"), "length": length, "times_s": times,
            "chars_per_s": length / med, "best_chars_per_s": length / min(times), "sample": out[:80]}


def forecast_latency(repeats: int = 20) -> dict[str, Any]:
    """Latency of ``Forecaster.predict`` on one series (the shipped airline table, 144 months),
    for a small forecaster (LSTM, 64 hidden, horizon 12) fitted for 1 epoch through the Python API.
    Timed twice: from an in-memory DataFrame, and from the CSV path (includes reading it)."""
    import pandas as pd

    from rnnkit.tasks.forecast.task import Forecaster

    csv = DATA / "airline" / "airline.csv"
    df = pd.read_csv(csv)
    fc = Forecaster(horizon=12, epochs=1, hidden_size=64, progress=False)
    fc.fit(df, target="passengers", time_col="month")
    out: dict[str, Any] = {"horizon": 12, "hidden": 64, "context": fc.network.cfg.context, "series_length": len(df)}
    for name, data in (("dataframe", df), ("csv_path", str(csv))):
        fc.predict(data)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fc.predict(data)
            times.append(time.perf_counter() - t0)
        out[name] = {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "n": repeats}
    return out


def ddp_scale(order: tuple[int, ...] = (1, 2, 2, 1), timeout: float = 240.0) -> dict[str, Any]:
    """Samples/s of one training task under torchrun with 1 and 2 processes (gloo, CPU).
    Runs alternate in ``order`` so a slow phase of the shared machine does not hit one side only."""
    runs: dict[int, list[dict]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(order):
            out = Path(tmp) / f"run{i}.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
                   str(ROOT / "bench" / "_ddp_scale.py"), str(out)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"DDP run with {n} processes failed: {proc.stderr[-800:]}")
            rec = json.loads(out.read_text())
            rec["wall_s"] = time.perf_counter() - t0
            runs.setdefault(n, []).append(rec)
    res: dict[str, Any] = {"command": "python -m torch.distributed.run --standalone --nproc-per-node N "
                                      "bench/_ddp_scale.py OUT.json", "runs": {str(k): v for k, v in runs.items()}}
    for n, recs in runs.items():
        res[f"samples_per_s_{n}proc"] = statistics.median(r["samples_per_s"] for r in recs)
    if 1 in runs and 2 in runs:
        res["speedup_2_vs_1"] = res["samples_per_s_2proc"] / res["samples_per_s_1proc"]
    res["shape"] = runs[order[0]][0]["shape"]
    return res


def matmul_peaks(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Best fp32 n x n matmul GFLOP/s with 1 and with 2 torch threads (the thread count is restored)."""
    from bench.common import matmul_peak_gflops

    before = torch.get_num_threads()
    out = {}
    try:
        for th in (1, 2):
            torch.set_num_threads(th)
            out[f"{th}_thread"] = matmul_peak_gflops(n=n, repeats=repeats)
    finally:
        torch.set_num_threads(before)
    return out
