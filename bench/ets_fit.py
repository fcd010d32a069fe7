"""ETS fitting time: the one-pass value + exact gradient in C against its Python fallback.

Every automatic ETS fit (12 models per series) of the shipped series at their backtest origins: M1
yearly (181 series, last 6 held out), airline (4 origins, 12 held out), stocks (5 series, 6 held out).
The blend (``--combine``) and its calibration twins refit ETS at every window, so this is a large
share of a default ``forecast train`` on a small panel. Candidates run interleaved (``time_interleaved``).

    .venv/bin/python bench/ets_fit.py [--quick]   # writes bench/results/ets_fit.json
"""
from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.common import log, machine_info, markdown_table, run_quick_script, setup, summary, time_interleaved, write_results  # noqa: E402,E501
from rnnkit.tasks.forecast import baselines  # noqa: E402
from rnnkit.tasks.forecast.ets_kernel import _lib, sse_and_grad_python  # noqa: E402

DATA = resources.files("rnnkit.data.datasets")


def problems() -> dict[str, list[tuple[np.ndarray, int, int]]]:
    """name -> [(history, horizon, season)]."""
    m1 = pd.read_csv(Path(str(DATA / "m1_yearly" / "m1_yearly.csv")))
    air = pd.read_csv(Path(str(DATA / "airline" / "airline.csv")))["passengers"].to_numpy(float)
    stocks = pd.read_csv(Path(str(DATA / "stocks" / "stocks.csv")))
    return {"m1_yearly": [(g["value"].to_numpy(float)[:-6], 6, 1) for _, g in m1.groupby("series")],
            "airline": [(air[:n], 12, 12) for n in (96, 108, 120, 132)],
            "stocks": [(g["price"].to_numpy(float)[:-6], 6, 12) for _, g in stocks.groupby("symbol")]}


def fit_all(cases: list[tuple[np.ndarray, int, int]], python: bool) -> list[np.ndarray]:
    if not python:
        return [baselines.ets(y, h, m) for y, h, m in cases]
    with mock.patch.object(baselines, "sse_and_grad", sse_and_grad_python):
        return [baselines.ets(y, h, m) for y, h, m in cases]


def main(quick: bool = False) -> dict[str, Any]:
    setup(threads=1)
    if _lib() is None:
        raise SystemExit("no C compiler: the kernel cannot be built here (nothing to compare)")
    rows = []
    for name, cases in problems().items():
        if quick:
            cases = cases[:10]
        times = time_interleaved({"C kernel": lambda: fit_all(cases, False),
                                  "Python fallback": lambda: fit_all(cases, True)}, repeats=2 if quick else 3)
        diff = max(float(np.max(np.abs(a - b)) / (np.mean(np.abs(a)) + 1e-12))
                   for a, b in zip(fit_all(cases, False), fit_all(cases, True)))
        c, p = summary(times["C kernel"]), summary(times["Python fallback"])
        rows.append({"data": name, "series_fits": len(cases), "c_s": c, "python_s": p,
                     "ratio": p["median_s"] / c["median_s"], "max_rel_forecast_diff": diff})
        log(f"{name}: C {c['median_s']:.2f} s, Python {p['median_s']:.2f} s, forecasts differ by {diff:.1e}")
    table = markdown_table(["data", "ETS fits", "C kernel s (min-max)", "Python fallback s (min-max)", "Python / C",
                            "max forecast difference"],
                           [[r["data"], r["series_fits"], f"{r['c_s']['median_s']:.2f} ({r['c_s']['min_s']:.2f}-{r['c_s']['max_s']:.2f})",
                             f"{r['python_s']['median_s']:.2f} ({r['python_s']['min_s']:.2f}-{r['python_s']['max_s']:.2f})",
                             f"{r['ratio']:.1f}x", f"{r['max_rel_forecast_diff']:.1e}"] for r in rows])
    data = {"area": "ets_fit", "quick": quick, "machine": machine_info(), "rows": rows, "table": table}
    write_results("ets_fit", data, quick=quick)
    return data


if __name__ == "__main__":
    run_quick_script(main, __doc__)
