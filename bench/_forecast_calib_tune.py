"""Tuning of the interval calibration on the TRAINING parts of the shipped series only.

Each dataset is cut before the region that bench/forecast_intervals.py evaluates on (the last
``horizon * folds`` points of every series), and a rolling-origin backtest runs inside what is
left. Per fold the model is trained once; calibration variants (holdout R, shrinkage n0,
one-sided per quantile vs pair) are computed from twin models and scored on the fold's
actuals. Writes bench/results/forecast_calib_tune.json.

    nice .venv/bin/python bench/_forecast_calib_tune.py [--sets airline,stocks,m1_yearly]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, log, machine_info, setup  # noqa: E402
from bench.forecast_intervals import SETS, load_set  # noqa: E402
from rnnkit.data.series import truncate  # noqa: E402
from rnnkit.metrics.forecast import coverage  # noqa: E402
from rnnkit.tasks.forecast import calibration as cal  # noqa: E402
from rnnkit.tasks.forecast.backtest import quantile_pairs  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster  # noqa: E402

TUNE_FOLDS = {"airline": 2, "stocks": 3, "m1_yearly": 1}


def run(name: str, holdouts: list[int], n0s: list[float], modes: list[str], kinds: list[str]) -> dict:
    ss, horizon, folds, _ = load_set(name)
    # the evaluated region of bench/forecast_intervals.py is never seen here
    ss = truncate(ss, {s.id: len(s) - horizon * folds for s in ss.series})
    k_folds = TUNE_FOLDS[name]
    cfg = ForecastConfig(horizon=horizon, progress=False, calibrate="none")
    levels = tuple(sorted(cfg.quantiles))
    pairs = quantile_pairs(levels)
    hits: dict[str, dict[float, list[float]]] = {}
    for k in range(k_folds):
        origin = {s.id: len(s) - horizon * (k_folds - k) for s in ss.series if len(s) - horizon * (k_folds - k) >= 3}
        train = truncate(ss, origin)
        t0 = time.perf_counter()
        fc = Forecaster(config=cfg).fit(train, strict=False)
        q_raw = fc.predict_quantiles(train)
        actual = np.stack([s.y[origin[s.id]:origin[s.id] + horizon] for s in ss.series if s.id in origin])
        variants = {"raw": q_raw}
        for R in holdouts:
            got = cal.holdout_windows(fc, train, R)
            if got is None:
                continue
            q, y, m, _ = got
            for n0 in n0s:
                for mode in modes:
                    for kind in kinds:
                        f = cal.fit_factors(q, y, m, levels, n0=n0, mode=mode, kind=kind)
                        c = cal.Calibration(levels, f, len(q), R, kind, mode)
                        variants[f"R={R // horizon}H n0={n0:g} {mode} {kind}"] = c.apply(q_raw)
        for v, qv in variants.items():
            for lv, lo, hi in pairs:
                jl, jh = levels.index(lo), levels.index(hi)
                hits.setdefault(v, {}).setdefault(lv, []).extend(
                    coverage(actual[i], qv[i, :, jl], qv[i, :, jh]) for i in range(len(actual)))
        log(f"{name} fold {k + 1}/{k_folds}: {time.perf_counter() - t0:.0f} s")
    out = {}
    for v, per in hits.items():
        cov = {f"{lv:g}": round(float(np.mean(x)), 3) for lv, x in per.items()}
        err = max(abs(float(np.mean(x)) - lv / 100) for lv, x in per.items())
        out[v] = {"coverage": cov, "max_abs_error": round(err, 3)}
        log(f"  {name} {v:28s} " + " ".join(f"{k}:{c:.2f}" for k, c in cov.items()) + f"  max err {err:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="airline,stocks,m1_yearly")
    ap.add_argument("--holdouts", default="1,2", help="holdout in horizons")
    ap.add_argument("--n0", default="20")
    ap.add_argument("--modes", default="quantile,pair")
    ap.add_argument("--kinds", default="ratio,shift")
    a = ap.parse_args()
    setup(threads=1)
    res = {"machine": machine_info(), "sets": {}}
    for name in a.sets.split(","):
        H = SETS[name][4]
        res["sets"][name] = run(name, [int(h) * H for h in a.holdouts.split(",")],
                                [float(v) for v in a.n0.split(",")], a.modes.split(","),
                                a.kinds.split(","))
    path = RESULTS / "forecast_calib_tune.json"
    old = json.loads(path.read_text()) if path.is_file() else {"sets": {}}
    old["sets"].update(res["sets"])
    old["machine"] = res["machine"]
    path.write_text(json.dumps(old, indent=2) + "\n")
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
