"""Interval coverage of the shipped defaults over more backtest folds than bench/forecast_intervals.py.

A report, not a choice: the calibration scheme was fixed before this ran (docs/decisions.md, third pass).
bench/forecast_intervals.py scores M1 yearly on 1 fold, airline on 3, stocks on 4, the splits of
bench/forecast.py; one fold's coverage moves by +-7-9 points by chance (bench/_forecast_coverage_noise.py).
Here the same default forecaster is backtested with as many folds as each set allows with a sensible first
training part (M1 yearly 2: its shortest series has 15 points; airline 6: the first fold trains on 72
months; stocks 8: the shortest series keeps 20 days), and every pair's coverage is reported pooled and
fold by fold.

    nice .venv/bin/python bench/_forecast_intervals_folds.py   # -> bench/results/forecast_intervals_folds.json
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, log, machine_info, setup  # noqa: E402
from bench.forecast_intervals import load_set  # noqa: E402
from rnnkit.tasks.forecast.backtest import run_backtest  # noqa: E402
from rnnkit.tasks.forecast.formats import level_name  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig  # noqa: E402

FOLDS = {"m1_yearly": 2, "airline": 6, "stocks": 8}


def main() -> None:
    setup(threads=1)
    out: dict = {"machine": machine_info(), "sets": {}}
    for name, folds in FOLDS.items():
        ss, horizon, _, _ = load_set(name)
        t0 = time.perf_counter()
        res = run_backtest(ss, ForecastConfig(horizon=horizon, progress=False), folds=folds, baselines=(),
                           log=open(os.devnull, "w"))
        mine = res.scores[res.scores["method"] == res.model_name]
        pairs = {}
        for _, c in res.coverage().iterrows():
            col = f"coverage{level_name(c['level'])}"
            pairs[f"{100 * c['lower']:g}-{100 * c['upper']:g}"] = {
                "nominal": c["nominal"], "coverage": round(c["coverage"], 3), "raw": round(c["coverage_raw"], 3),
                "per_fold": [round(float(v), 3) for v in mine.groupby("fold")[col].mean()]}
        mase = float(res.summary.set_index("method").loc[res.model_name, "mase"])
        out["sets"][name] = {"folds": folds, "horizon": horizon, "series": len(ss.series), "points": int(len(mine) * horizon),
                             "mase": round(mase, 3), "seconds": round(time.perf_counter() - t0, 1), "pairs": pairs}
        log(f"{name}: {folds} folds, {time.perf_counter() - t0:.0f} s, " + " ".join(
            f"{p} {v['coverage']:.3f} (folds {min(v['per_fold']):.2f}-{max(v['per_fold']):.2f})" for p, v in pairs.items()))
        (RESULTS / "forecast_intervals_folds.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
