"""Forecast accuracy benchmark: rnnkit vs naive, seasonal naive, ETS and Theta on the same splits.

Data (all shipped in rnnkit/data/datasets, no download):
- M1 yearly (181 series, h=6; Monash archive split = the last 6 points), the competition data
  behind the published numbers in DESIGN.md section 8 (ETS 3.771, TBATS 3.499, DeepAR 4.603);
- airline passengers (1 series, monthly, h=12, 3 rolling folds);
- monthly stock prices (5 series, h=6, 4 rolling folds; close to a random walk).

    .venv/bin/python bench/forecast.py [--quick]     # writes bench/results/forecast.json

Accuracy, not speed, is measured here; wall-clock seconds are reported for information
(the machine is shared). Each rnnkit row is a full retrain per fold.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny scipy fits: threads only add overhead
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import log, machine_info, markdown_table, run_quick_script, setup, write_results  # noqa: E402
from rnnkit.data.series import load_series  # noqa: E402
from rnnkit.tasks.forecast.backtest import run_backtest  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig  # noqa: E402

DATA = resources.files("rnnkit.data.datasets")
SETS = {  # name: (file, target, time, id, horizon, folds)
    "m1_yearly": ("m1_yearly/m1_yearly.csv", "value", "year", "series", 6, 1),
    "airline": ("airline/airline.csv", "passengers", "month", None, 12, 3),
    "stocks": ("stocks/stocks.csv", "price", "date", "symbol", 6, 4),
}


def variants(name: str, quick: bool) -> dict[str, dict]:
    """rnnkit settings to compare; the first one is the default of `rnnkit forecast`.
    Seeds and the ensemble run on M1 only (181 series); the small sets get cell variants."""
    v = {"rnnkit-lstm (default)": {}}
    if quick:
        return v
    v["rnnkit-lstm seed 1"] = {"seed": 1}
    if name == "m1_yearly":
        v["rnnkit-lstm seed 2"] = {"seed": 2}
        v["rnnkit-lstm ensemble 3"] = {"ensemble": 3}
    v["rnnkit-gru"] = {"cell": "gru"}
    return v


def run_set(name: str, quick: bool) -> list[dict[str, Any]]:
    file, target, time_col, id_col, horizon, folds = SETS[name]
    ss = load_series(Path(str(DATA / file)), target, time_col, id_col, quiet=True)
    rows = []
    base = ForecastConfig(horizon=horizon, progress=False)
    baselines_done = False
    for label, over in variants(name, quick).items():
        t0 = time.perf_counter()
        bl = () if baselines_done else ("naive", "seasonal_naive", "ets", "theta")
        res = run_backtest(ss, replace(base, **over), folds=folds, baselines=bl, model_name=label,
                           log=open(os.devnull, "w"))
        secs = time.perf_counter() - t0
        baselines_done = True
        for _, r in res.summary.iterrows():
            rows.append({"dataset": name, "method": r["method"], "mase": round(float(r["mase"]), 3),
                         "smape": round(float(r["smape"]), 2), "rmse": float(f"{r['rmse']:.4g}"),
                         "coverage80": None if str(r.get("coverage80")) == "nan" else round(float(r["coverage80"]), 2),
                         "seconds": round(secs, 1) if r["method"] == label else None,
                         "series": len(ss.series), "horizon": horizon, "folds": folds, "season": res.season})
        log(f"{name} {label}: MASE {float(res.summary.set_index('method').loc[label, 'mase']):.3f} ({secs:.0f} s)")
    return rows


def main(quick: bool = False) -> dict[str, Any]:
    setup(threads=1)
    rows = []
    for name in SETS:
        rows += run_set(name, quick)
    table = markdown_table(
        ["dataset", "method", "MASE", "sMAPE %", "RMSE", "80% cov.", "train+predict s"],
        [[r["dataset"], r["method"], f"{r['mase']:.3f}", f"{r['smape']:.2f}", f"{r['rmse']:.4g}",
          "" if r["coverage80"] is None else f"{r['coverage80']:.2f}", r["seconds"] or ""]
         for r in rows])
    data = {"area": "forecast", "quick": quick, "machine": machine_info(), "rows": rows, "table": table}
    write_results("forecast", data, quick=quick)
    return data


if __name__ == "__main__":
    run_quick_script(main, __doc__)
