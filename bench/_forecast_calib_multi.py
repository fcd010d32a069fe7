"""Multi-origin interval calibration, tuned on the TRAINING parts of the forecasting dev suite (issue 17).

bench/forecast_intervals.py evaluates coverage on the tails of the shipped series; here every dev
panel of bench/forecast_suite.py (whose training parts exclude those tails and the suite's own
evaluated tails) is cut at its last tuning origin, the default model is trained once, and
calibration variants are computed from twin models and scored on the next horizon:

- "1 twin R": the shipped scheme (one twin cut R = ``default_holdout`` points short, every origin
  of the held-out tail);
- "1 twin 2R": one twin cut 2R short, all 2R origins (more windows, a weaker twin);
- "2 twins" / "3 twins": ``multi_origin_windows``, twins cut R, 2R(, 3R) short, each forecasting
  the R origins after its own cut (more windows from more periods).

    nice .venv/bin/python bench/_forecast_calib_multi.py [--max-time 60] [--only a,b]
                                    # writes bench/results/forecast_calib_multi.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, log, machine_info, setup  # noqa: E402
from bench.forecast_suite import TUNE_FOLDS, load_panel, origins, panels  # noqa: E402
from rnnkit.data.series import load_series, truncate  # noqa: E402
from rnnkit.metrics.forecast import coverage  # noqa: E402
from rnnkit.tasks.forecast import calibration as cal  # noqa: E402
from rnnkit.tasks.forecast.backtest import quantile_pairs  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster  # noqa: E402


def first(w: tuple, holdout: int, span: int) -> tuple:
    """The windows of the first ``span`` origins after the cut (each series' block has ``holdout``)."""
    q, y, m, n = w
    keep = (np.arange(len(q)) % holdout) < span
    return q[keep], y[keep], m[keep], n


def join(*ws: tuple) -> tuple:
    return tuple(np.concatenate([w[i] for w in ws]) for i in range(3)) + (max(w[3] for w in ws),)


def run_panel(name: str, spec: dict, max_time: float) -> dict:
    ss = load_series(load_panel(spec), "y", "ds", "unique_id", quiet=True)
    H, K = spec["horizon"], spec["folds"]
    k = TUNE_FOLDS - 1  # the latest origin inside the training part
    cut = {s.id: origins(len(s), H, K, "tune")[k] for s in ss.series}
    cut = {i: o for i, o in cut.items() if o >= 3}
    train = truncate(ss, cut)
    t0 = time.perf_counter()
    fc = Forecaster(config=ForecastConfig(horizon=H, progress=False, calibrate="none", max_time=max_time))
    fc.fit(train, strict=False)
    q_raw = fc.predict_quantiles(train)
    full = {s.id: s.y for s in ss.series}
    actual = np.stack([full[s.id][cut[s.id]:cut[s.id] + H] for s in train.series])
    levels = tuple(fc.network.cfg.quantiles)
    R = cal.default_holdout(H, [len(s) for s in train.series])
    tw = {j: cal.holdout_windows(fc, train, R * j) for j in (1, 2, 3)}
    variants = {"raw": None}
    if tw[1] is not None:
        variants["1 twin R"] = tw[1]
    if tw[2] is not None:
        variants["1 twin 2R"] = tw[2]
        variants["2 twins"] = join(*[w for w in (tw[1], first(tw[2], 2 * R, R)) if w is not None])
    if tw[3] is not None and tw[2] is not None:
        variants["3 twins"] = join(*[w for w in (tw[1], first(tw[2], 2 * R, R), first(tw[3], 3 * R, R))
                                     if w is not None])
    out = {"R": R, "plan": fc.plan.reason if fc.plan else "", "seconds": round(time.perf_counter() - t0, 1),
           "variants": {}}
    for v, w in variants.items():
        if w is None:
            q = q_raw
            n = 0
        else:
            # the scheme of its time (per pair and step), so that its recorded results reproduce
            c = cal.Calibration(levels, cal.fit_factors(w[0], w[1], w[2], levels, n0=20, mode="pair", kind="ratio"),
                                len(w[0]), R, "ratio", "pair")
            q, n = c.apply(q_raw), len(w[0])
        cov = {}
        for lv, lo, hi in quantile_pairs(levels):
            jl, jh = levels.index(lo), levels.index(hi)
            cov[f"{lv:g}"] = round(float(np.mean([coverage(actual[i], q[i, :, jl], q[i, :, jh])
                                                 for i in range(len(actual))])), 3)
        out["variants"][v] = {"coverage": cov, "windows": n,
                              "max_abs_error": round(max(abs(c - float(lv) / 100) for lv, c in cov.items()), 3)}
    log(f"{name} (R={R}, {out['seconds']:.0f} s): " + "; ".join(
        f"{v} 80:{r['coverage']['80']:.2f} maxerr {r['max_abs_error']:.2f}" for v, r in out["variants"].items()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-time", type=float, default=60.0)
    ap.add_argument("--only")
    a = ap.parse_args()
    setup(threads=1)
    path = RESULTS / "forecast_calib_multi.json"
    res = json.loads(path.read_text()) if path.is_file() else {"panels": {}}
    for name, spec in panels("dev").items():
        if a.only and name not in a.only.split(","):
            continue
        res["panels"][name] = run_panel(name, spec, a.max_time)
        res["machine"] = machine_info()
        path.write_text(json.dumps(res, indent=2) + "\n")  # after every panel: a stopped run keeps them
    names = list(res["panels"])
    summary = {}
    for v in ("raw", "1 twin R", "1 twin 2R", "2 twins", "3 twins"):
        got = [res["panels"][n]["variants"][v] for n in names if v in res["panels"][n]["variants"]]
        if got:
            summary[v] = {"panels": len(got),
                          "coverage": {lv: round(float(np.mean([g["coverage"][lv] for g in got])), 3)
                                       for lv in got[0]["coverage"]},
                          "mean_max_abs_error": round(float(np.mean([g["max_abs_error"] for g in got])), 3),
                          "mean_abs_error_80": round(float(np.mean([abs(g["coverage"]["80"] - 0.8) for g in got])), 3)}
            log(f"{v:10s} {summary[v]}")
    res["summary"] = summary
    path.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
