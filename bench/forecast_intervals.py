"""Interval calibration and static covariates (issue 17).

1. Coverage of every symmetric quantile pair (5-95, 10-90, 20-80, 30-70, 40-60) of rnnkit's
   default forecaster in rolling-origin backtests over the shipped series (M1 yearly, airline,
   stocks; the same splits as bench/forecast.py), before (raw quantiles) and after the holdout
   conformal calibration. Both come from the same trained models (calibration never moves the
   median), so the difference is the calibration alone.
2. Static covariates: backtest MASE on ``rnnkit.data.synthetic.static_level_panel`` (a static
   category decides each series' level) with and without the static table.

    .venv/bin/python bench/forecast_intervals.py [--quick]   # writes bench/results/forecast_intervals.json
"""
from __future__ import annotations

import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import log, machine_info, markdown_table, run_quick_script, setup, write_results  # noqa: E402
from rnnkit.data.series import SeriesSet, load_series  # noqa: E402
from rnnkit.data.synthetic import static_level_panel  # noqa: E402
from rnnkit.tasks.forecast.backtest import run_backtest  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig  # noqa: E402

DATA = resources.files("rnnkit.data.datasets")
SETS = {  # name: (file, target, time, id, horizon, folds), as bench/forecast.py
    "m1_yearly": ("m1_yearly/m1_yearly.csv", "value", "year", "series", 6, 1),
    "airline": ("airline/airline.csv", "passengers", "month", None, 12, 3),
    "stocks": ("stocks/stocks.csv", "price", "date", "symbol", 6, 4),
}
STATIC_PANEL = dict(n_series=200, length=16, phi=0.7)
STATIC_CONFIG = dict(horizon=6, hidden_size=32, epochs=20, calibrate="none", ensemble=1)


def load_set(name: str) -> tuple[SeriesSet, int, int, str]:
    file, target, time_col, id_col, horizon, folds = SETS[name]
    return load_series(Path(str(DATA / file)), target, time_col, id_col, quiet=True), horizon, folds, target


def coverage_rows(quick: bool) -> list[dict[str, Any]]:
    rows = []
    for name in SETS:
        ss, horizon, folds, _ = load_set(name)
        cfg = ForecastConfig(horizon=horizon, progress=False, **({"epochs": 5} if quick else {}))
        t0 = time.perf_counter()
        res = run_backtest(ss, cfg, folds=folds, baselines=(), log=open(os.devnull, "w"))
        secs = time.perf_counter() - t0
        cov = res.coverage()
        mase = float(res.summary.set_index("method").loc[res.model_name, "mase"])
        for _, r in cov.iterrows():
            rows.append({"dataset": name, "pair": f"{100 * r['lower']:g}-{100 * r['upper']:g}",
                         "nominal": round(float(r["nominal"]), 2), "raw": round(float(r["coverage_raw"]), 3),
                         "calibrated": round(float(r["coverage"]), 3),
                         "mase": round(mase, 3), "seconds": round(secs, 1), "series": len(ss.series),
                         "horizon": horizon, "folds": folds})
        log(f"{name}: " + ", ".join(f"{r['pair']} {r['raw']:.2f}->{r['calibrated']:.2f}"
                                    for r in rows if r["dataset"] == name) + f" ({secs:.0f} s)")
    return rows


def static_rows(quick: bool, seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict[str, Any]]:
    df, table = static_level_panel(**STATIC_PANEL)
    ss = load_series(df, "y", "ds", "unique_id", quiet=True)
    rows = []
    for seed in seeds[:1] if quick else seeds:
        cfg = ForecastConfig(progress=False, seed=seed, **STATIC_CONFIG)
        got = {}
        for label, static in (("without", None), ("with", table)):
            res = run_backtest(ss, cfg, folds=2, baselines=("naive",), static=static, log=open(os.devnull, "w"))
            s = res.summary.set_index("method")["mase"]
            got[label], got["naive"] = float(s[res.model_name]), float(s["naive"])
        rows.append({"seed": seed, "mase_without_static": round(got["without"], 3),
                     "mase_with_static": round(got["with"], 3), "mase_naive": round(got["naive"], 3),
                     "ratio": round(got["with"] / got["without"], 3)})
        log(f"static panel seed {seed}: MASE {got['without']:.3f} -> {got['with']:.3f} (naive {got['naive']:.3f})")
    return rows


def main(quick: bool = False) -> dict[str, Any]:
    setup(threads=1)
    cov = coverage_rows(quick)
    static = static_rows(quick)
    table = markdown_table(
        ["dataset", "pair", "nominal", "raw coverage", "calibrated coverage"],
        [[r["dataset"], r["pair"], f"{r['nominal']:.2f}", f"{r['raw']:.2f}", f"{r['calibrated']:.2f}"] for r in cov])
    table += "\n\n" + markdown_table(
        ["seed", "MASE without static", "MASE with static", "ratio", "naive"],
        [[r["seed"], f"{r['mase_without_static']:.3f}", f"{r['mase_with_static']:.3f}", f"{r['ratio']:.3f}",
          f"{r['mase_naive']:.3f}"] for r in static])
    data = {"area": "forecast_intervals", "quick": quick, "machine": machine_info(), "coverage": cov,
            "static": static, "static_panel": STATIC_PANEL, "static_config": STATIC_CONFIG, "table": table}
    write_results("forecast_intervals", data, quick=quick)
    return data


if __name__ == "__main__":
    run_quick_script(main, __doc__)
