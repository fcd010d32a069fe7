"""How forecasting's cost grows with the panel: 1k, 10k and 100k series (M4-sized) through the real CLI.

Generates long-format CSVs itself (``unique_id, ds, y``; 20-300 points per series, monthly-like
seasonal levels with a random walk), runs ``rnnkit forecast train`` in a child process and reports
peak RSS (``ru_maxrss`` of the child), wall time and rows per second of the whole command (reading,
validation, windows, two epochs, calibration twin, save).

    python bench/scale_series.py [--series 1000,10000,100000] [--epochs 2]

Writes ``bench/results/scale_series.json``; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
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

from bench.common import machine_info, markdown_table, write_results  # noqa: E402


def make_panel(path: Path, n_series: int, seed: int = 0) -> int:
    """Write a long-format panel CSV; returns its number of rows."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 300, n_series)
    with open(path, "w") as f:
        f.write("unique_id,ds,y\n")
        for i, n in enumerate(lengths):
            t = np.arange(n)
            level = rng.uniform(10, 1000)
            y = level * (1 + 0.1 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6)))
            y += 0.1 * rng.normal(0, level * 0.02, n).cumsum()
            f.write("".join(f"S{i:06d},{tt},{v:.3f}\n" for tt, v in zip(t, y)))
    return int(lengths.sum())


def train(csv: Path, out: Path, epochs: int) -> dict:
    """One ``forecast train`` child process -> wall seconds, peak RSS (MB), exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rnnkit", "forecast", "train", "--data", str(csv), "--horizon", "6",
                           "--epochs", str(epochs), "--quiet", "--out", str(out)],
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    # ru_maxrss of children is the maximum over all of them: runs go from small to large, so it is this run's
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(max(peak, before) / 1024, 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", default="1000,10000,100000", help="comma-separated panel sizes")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnkit_scale_series_") as tmp:
        for n in sorted(int(v) for v in args.series.split(",")):
            csv = Path(tmp) / f"panel_{n}.csv"
            n_rows = make_panel(csv, n)
            res = train(csv, Path(tmp) / f"model_{n}", args.epochs)
            rows.append({"series": n, "rows": n_rows, "csv_mb": round(csv.stat().st_size / 2**20, 1), **res,
                         "rows_per_s": round(n_rows / res["seconds"])})
            print(rows[-1], flush=True)
    table = markdown_table(["series", "rows", "CSV MB", "peak RSS MB", "wall s", "rows/s"],
                           [[r["series"], r["rows"], r["csv_mb"], r["peak_rss_mb"], r["seconds"], r["rows_per_s"]]
                            for r in rows])
    print(table)
    write_results("scale_series", {"machine": machine_info(), "epochs": args.epochs, "rows": rows, "table": table})


if __name__ == "__main__":
    main()
