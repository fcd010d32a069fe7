"""How far from nominal one backtest's coverage lands by chance (issue 17's "every pair within 5 points").

Two measurements, neither touching the evaluated backtests:

1. **Oracle**: forecasts that *are* the true predictive distribution (Gaussian AR(1) errors with
   coefficient ``phi``: 0 = independent steps, 1 = a random walk's accumulating errors), scored on the
   evaluated backtests' shapes (bench/forecast_intervals.py: M1 yearly 181 series x 1 fold x 6 steps,
   airline 1 x 3 x 12, stocks 5 x 4 x 6). Series independent of each other (the most favourable case:
   shared shocks across series only add noise). Reports, per shape, the chance that every pair
   (5-95 ... 40-60) lands within 5 points of nominal, that the 80 % band lands in 75-85 %, and per pair.
2. **Dev training parts, origin by origin**: the calibration windows dumped by
   ``bench/_forecast_calib_schemes.py dump`` (twin models forecasting from successive origins inside the
   dev suite's training parts). Factors fitted in-sample on all of a twin's windows (so the average
   coverage is nominal by construction), then the coverage of each origin offset on its own (all series
   at that offset, as one backtest fold is): the spread across origins is what one fold shows by chance.

    .venv/bin/python bench/_forecast_coverage_noise.py   # -> bench/results/forecast_coverage_noise.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._forecast_calib_schemes import OUT  # noqa: E402
from bench.common import RESULTS, log, machine_info  # noqa: E402
from rnnkit.tasks.forecast import calibration as cal  # noqa: E402

PAIRS = (0.9, 0.8, 0.6, 0.4, 0.2)
SHAPES = {"m1_yearly": (181, 1, 6), "airline": (1, 3, 12), "stocks": (5, 4, 6)}  # series, folds, horizon
PHIS = (0.0, 0.5, 0.9, 1.0)
TOL = 0.05 + 1e-9


def oracle(series: int, folds: int, horizon: int, phi: float, draws: int, seed: int = 0) -> dict:
    """Coverage of the true predictive quantiles over ``draws`` simulated backtests of this shape."""
    rng = np.random.default_rng(seed)
    var = np.cumsum(phi ** (2 * np.arange(horizon)))  # variance of the h-step error, h = 1..H
    cov = []
    for a in range(0, draws, 500):
        e = rng.normal(size=(min(500, draws - a), series, folds, horizon))
        x = np.empty_like(e)
        x[..., 0] = e[..., 0]
        for h in range(1, horizon):
            x[..., h] = phi * x[..., h - 1] + e[..., h]
        z = np.abs(x) / np.sqrt(var)
        cov.append(np.stack([(z <= norm.ppf(0.5 + c / 2)).mean(axis=(1, 2, 3)) for c in PAIRS], axis=1))
    cov = np.concatenate(cov)
    within = np.abs(cov - np.array(PAIRS)) <= TOL
    band80 = cov[:, PAIRS.index(0.8)]
    return {"phi": phi, "draws": draws, "p_every_pair_within_5": round(float(within.all(axis=1).mean()), 3),
            "p_80_band_in_75_85": round(float(((band80 >= 0.75 - 1e-9) & (band80 <= 0.85 + 1e-9)).mean()), 3),
            "p_within_5_per_pair": {f"{100 * c:g}": round(float(v), 3) for c, v in zip(PAIRS, within.mean(axis=0))}}


def origin_spread(path: Path, min_points: int = 30) -> dict | None:
    """Per pair: coverage of each origin offset of the dumped twin windows (in-sample factors)."""
    d = dict(np.load(path))
    levels = tuple(float(v) for v in d["levels"])
    per: dict[float, list[float]] = {c: [] for c in PAIRS}
    for key in (k for k in d if k.startswith("q_") and k != "q_raw"):
        hold = int(key[2:])
        q, y, m = d[key], d[f"y_{hold}"], d[f"m_{hold}"]
        f = cal.fit_factors(q, y, m, levels, mode=cal.MODE, kind=cal.KIND)
        q = cal.Calibration(levels, f, len(q), int(d["R"]), cal.KIND, cal.MODE).apply(q)
        offset = np.arange(len(q)) % hold  # each series' block holds ``hold`` consecutive origins
        for o in range(hold):
            rows, ok = offset == o, m[offset == o] > 0
            if ok.sum() < min_points:
                continue
            for c in PAIRS:
                lo, hi = q[rows][..., levels.index(round(0.5 - c / 2, 4))], q[rows][..., levels.index(round(0.5 + c / 2, 4))]
                per[c].append(float(((y[rows] >= lo) & (y[rows] <= hi))[ok].mean()))
    if not per[PAIRS[0]]:
        return None
    cov = np.array([per[c] for c in PAIRS])  # (pairs, origins)
    every = np.all(np.abs(cov - np.array(PAIRS)[:, None]) <= TOL, axis=0)
    return {"origins": len(per[PAIRS[0]]), "share_every_pair_within_5": round(float(every.mean()), 3),
            "pairs": {f"{100 * c:g}": {"mean": round(float(np.mean(v)), 3), "sd": round(float(np.std(v, ddof=1)), 3),
                                       "share_within_5": round(float(np.mean(np.abs(np.array(v) - c) <= TOL)), 3)}
                      for c, v in per.items()}}


def main() -> None:
    out: dict = {"machine": machine_info(), "oracle": {}, "dev_origins": {}}
    for name, (s, k, h) in SHAPES.items():
        out["oracle"][name] = [oracle(s, k, h, phi, 4000 if s > 100 else 20000) for phi in PHIS]
        for r in out["oracle"][name]:
            log(f"oracle {name:9s} phi={r['phi']}: every pair within 5 {r['p_every_pair_within_5']:.3f}, "
                f"80 % band in 75-85 {r['p_80_band_in_75_85']:.3f}")
    files = sorted(OUT.glob("*.npz"))
    if not files:
        log(f"no dumps in {OUT}: run `bench/_forecast_calib_schemes.py dump` for the dev-origin spread")
    for f in files:
        got = origin_spread(f)
        if got is not None:
            out["dev_origins"][f.stem] = got
            log(f"{f.stem:28s} {got['origins']:3d} origins, every pair within 5: "
                f"{got['share_every_pair_within_5']:.2f}; " + " ".join(
                f"{p}: sd {v['sd']:.3f} within5 {v['share_within_5']:.2f}" for p, v in got["pairs"].items()))
    (RESULTS / "forecast_coverage_noise.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
