"""Calibration schemes compared on the TRAINING parts of the forecasting dev suite (issue 17, item 4).

Two stages, so that the (cheap) factor-fitting schemes can all be scored on the same (expensive)
twin models:

``dump``: for every dev panel of bench/forecast_suite.py and its tuning origins (both of the suite's
and one more, a horizon before them: all inside the training part, the evaluated tails are never
touched), train the default model (``max_time`` 30 s
= the shipped 120 s budget split over the model and 3 twins) with ``calibrate="none"``, forecast
the next horizon (raw quantiles + actuals), and train twins cut ``c R`` points short for c in
``CUTS`` (R = ``default_holdout``), each forecasting from every origin after its cut. Saved as
runs/forecast_calib_schemes/<panel>_<origin>.npz (plain arrays, no pickle).

``score``: every scheme of ``schemes()`` picks twins (which cuts, how many origins each, which cap
rule) and fits factors (``fit_factors`` options and post-processing), is applied to the raw quantiles
and scored per run (panel x origin): coverage per pair and the interval score in units of each
series' raw 5-95 width; summaries: mean |coverage - nominal| per pair, pooled bias, share of pairs
within 5 points, and, paired against ``BASELINE`` run by run, the difference in mean abs coverage
error (with its SE) and the geometric-mean interval-score ratio -> bench/results/forecast_calib_schemes.json.
The shipped scheme (docs/decisions.md, 2026-12-03) was chosen from this output alone.

    nice .venv/bin/python bench/_forecast_calib_schemes.py dump [--only a,b] [--origins 1,0] [--cuts 1,2,3 --capped]
    .venv/bin/python bench/_forecast_calib_schemes.py score
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, log, machine_info, setup  # noqa: E402
from bench.forecast_suite import TUNE_FOLDS, WORK, load_panel, origins, panels  # noqa: E402
from rnnkit.data.series import load_series, truncate  # noqa: E402
from rnnkit.metrics.forecast import coverage  # noqa: E402
from rnnkit.tasks.forecast import calibration as cal  # noqa: E402
from rnnkit.tasks.forecast.backtest import quantile_pairs  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster  # noqa: E402

OUT = WORK.parent / "forecast_calib_schemes"
CUTS = (1.0, 1.5, 2.0, 3.0, 4.0)  # twin cuts in units of R


def dump(name: str, spec: dict, k: int, max_time: float, cuts: tuple[float, ...] = CUTS,
         capped: bool = False) -> None:
    ss = load_series(load_panel(spec), "y", "ds", "unique_id", quiet=True)
    H, K = spec["horizon"], spec["folds"]
    # k = 0, 1: the suite's tuning origins; k = -1: one horizon before the first (more, older samples)
    cut = {s.id: origins(len(s), H, K, "tune")[k] if k >= 0 else origins(len(s), H, K, "tune")[0] - H
           for s in ss.series}
    cut = {i: o for i, o in cut.items() if o >= 3}
    train = truncate(ss, cut)
    t0 = time.perf_counter()
    fc = Forecaster(config=ForecastConfig(horizon=H, progress=False, calibrate="none", max_time=max_time))
    fc.fit(train, strict=False)
    q_raw = fc.predict_quantiles(train, calibrated=False)
    full = {s.id: s.y for s in ss.series}
    actual = np.stack([full[s.id][cut[s.id]:cut[s.id] + H] for s in train.series]).astype(np.float64)
    lengths = np.array([len(s) for s in train.series])
    R = cal.default_holdout(H, list(lengths))
    arrays = {"q_raw": q_raw, "actual": actual, "lengths": lengths, "levels": np.array(fc.network.cfg.quantiles),
              "R": np.array(R)}
    max_cut = int(np.median(lengths)) // 2
    for j, c in enumerate(cuts):
        hold = int(round(c * R))
        if capped and j and hold > max_cut and not cal.panel_carries_twin(list(lengths), hold):
            break  # a twin the shipped cap rule ("half64") would not train: skip its cost
        w = cal.holdout_windows(fc, train, hold)
        if w is None:
            continue
        arrays[f"q_{hold}"], arrays[f"y_{hold}"], arrays[f"m_{hold}"] = w[0], w[1], w[2]
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / f"{name}_{k}.npz", **arrays)
    log(f"{name} origin {k}: R={R}, twins {[key[2:] for key in arrays if key.startswith('q_') and key != 'q_raw']}"
        f" ({time.perf_counter() - t0:.0f} s)")


# ------------------------------------------------------------------------------------------- scoring
def twin_windows(d: dict, hold: int, span: int) -> tuple | None:
    """The windows of the twin cut ``hold`` short, first ``span`` origins per series."""
    if f"q_{hold}" not in d:
        return None
    q, y, m = d[f"q_{hold}"], d[f"y_{hold}"], d[f"m_{hold}"]
    keep = (np.arange(len(q)) % hold) < span  # each series' block has ``hold`` origins
    return q[keep], y[keep], m[keep]


def pick(d: dict, cuts: list[float], span_of: Callable[[int, int], int], rule: str) -> tuple | None:
    """Join the windows of the twins at ``cuts`` (units of R) under a cap ``rule``:
    "half": later twins only while the cut is at most half the median length (the first rule);
    "half64": ... or while >= 64 series keep 2 points before the cut (``panel_carries_twin``);
    "all": no cap. Returns (q, y, m, twin index per window) or None."""
    R, lengths = int(d["R"]), d["lengths"]
    max_cut = int(np.median(lengths)) // 2
    got = []
    for j, c in enumerate(cuts):
        hold = int(round(c * R))
        if j and hold > max_cut and rule != "all":
            if rule == "half" or not cal.panel_carries_twin(list(lengths), hold):
                break
        w = twin_windows(d, hold, span_of(hold, R))
        if w is not None:
            got.append(w + (np.full(len(w[0]), j),))
    if not got:
        return None
    return tuple(np.concatenate([g[i] for g in got]) for i in range(4))


def score_one(d: dict, w: tuple | None, fit_kw: dict) -> dict:
    levels = tuple(float(v) for v in d["levels"])
    q = d["q_raw"]
    if w is not None:
        kw = dict(fit_kw)
        rho, damp, common = kw.pop("rho", None), kw.pop("damp", 1.0), kw.pop("common", False)
        kw_nest, shipped = kw.pop("nest", False), kw.pop("shipped", False)
        outer, shrink = kw.pop("outer", False), kw.pop("shrink", None)
        weights = None if rho is None else rho ** w[3].astype(np.float64)
        if outer:  # every pair scaled by the model's outer band: the band's shape comes from the scores
            f = cal.fit_factors(to_outer(w[0], levels), w[1], w[2], levels, mode="pair", kind="ratio",
                                weights=weights, **({"n0": 20} | kw))
            q = cal.Calibration(levels, f, len(w[0]), int(d["R"]), "ratio", "pair").apply(to_outer(q, levels))
            return score_q(d, q, levels)
        if shipped:  # exactly what calibration.calibrate does now
            f = cal.fit_factors(w[0], w[1], w[2], levels, mode=cal.MODE, kind=cal.KIND,
                                weights=cal.TWIN_DECAY ** w[3].astype(np.float64))
        else:  # per-pair factors ("pair", the first scheme), then the variant's post-processing
            f = cal.fit_factors(w[0], w[1], w[2], levels, mode="pair", kind="ratio", weights=weights,
                                **({"n0": 20} | kw))
        if common:  # one factor for every pair (geometric mean over the pairs), per step
            j_med = levels.index(0.5)
            g = np.exp(np.log(np.delete(f, j_med, axis=1)).mean(axis=1, keepdims=True))
            f = np.where(np.arange(len(levels)) == j_med, 1.0, g)
        if shrink is not None:  # log pair factors pulled toward their geometric mean by ``shrink``
            j_med = levels.index(0.5)
            g = np.exp(np.log(np.maximum(np.delete(f, j_med, axis=1), 1e-6)).mean(axis=1, keepdims=True))
            f = np.exp((1 - shrink) * np.log(np.maximum(f, 1e-6)) + shrink * np.log(g))
            f[:, j_med] = 1.0
        f = f ** damp  # damp < 1: part of the correction (in log scale)
        if kw_nest:  # bands nested outward from the median (an outer band at least as wide), not re-sorted
            j_med = levels.index(0.5)
            med = q[..., [j_med]]
            z = med + f[None] * (q - med)
            z[..., j_med:] = np.maximum.accumulate(z[..., j_med:], axis=-1)
            z[..., :j_med + 1] = np.minimum.accumulate(z[..., :j_med + 1][..., ::-1], axis=-1)[..., ::-1]
            q = z
        else:
            q = cal.Calibration(levels, f, len(w[0]), int(d["R"]), "ratio", "pair").apply(q)
    return score_q(d, q, levels)


def to_outer(q: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """q (..., Q) with every level above the median replaced by the top one, below by the bottom one."""
    j_med = levels.index(0.5)
    out = q.copy()
    out[..., j_med + 1:] = q[..., -1:]
    out[..., :j_med] = q[..., :1]
    return out


def score_q(d: dict, q: np.ndarray, levels: tuple[float, ...]) -> dict:
    """Coverage, test points and interval score per pair of quantiles q (S, H, Q) against the actuals."""
    out = {}
    a = d["actual"]
    # interval score (Gneiting & Raftery 2007; a proper score: lowest for the true quantiles, and far
    # less noisy than a coverage count) in units of each series' raw 5-95 width, the same for every scheme
    scale = np.maximum((d["q_raw"][..., -1] - d["q_raw"][..., 0]).mean(axis=1, keepdims=True), 1e-9)
    for lv, lo, hi in quantile_pairs(levels):
        jl, jh = levels.index(lo), levels.index(hi)
        lo_q, hi_q, alpha = q[..., jl], q[..., jh], 1 - float(lv) / 100
        inside = (a >= lo_q) & (a <= hi_q)
        iscore = (hi_q - lo_q) + 2 / alpha * (np.maximum(lo_q - a, 0) + np.maximum(a - hi_q, 0))
        out[f"{lv:g}"] = (float(inside.mean()), int(inside.size), float((iscore / scale).mean()))
    return out


BASELINE = "shipped (calibration.py defaults)"  # what calibration.calibrate does (scored first)


def schemes() -> dict[str, tuple | None]:
    """name -> (cuts, span per twin, cap rule, fit_factors options)."""
    R_ = lambda hold, R: R  # noqa: E731  each twin forecasts R origins after its cut
    out: dict[str, tuple | None] = {BASELINE: ([1, 2, 3], R_, "half64", {"shipped": True}),
                                    "3tw n0=20 m=0": ([1, 2, 3], R_, "half64", {"n0": 20}), "raw": None,
                                    "3 twins half (first rule)": ([1, 2, 3], R_, "half", {})}
    out["3tw span=all n0=20 m=0"] = ([1, 2, 3], lambda hold, R: hold, "half64", {"n0": 20})
    out["3tw span=all n0=inf m=0"] = ([1, 2, 3], lambda hold, R: hold, "half64", {"n0": np.inf})
    for n0 in (20, np.inf):
        for damp in (0.5, 0.75):
            out[f"3tw n0={n0:g} damp={damp:g}"] = ([1, 2, 3], R_, "half64", {"n0": n0, "damp": damp})
        out[f"3tw n0={n0:g} nest"] = ([1, 2, 3], R_, "half64", {"n0": n0, "nest": True})
        out[f"3tw n0={n0:g} common"] = ([1, 2, 3], R_, "half64", {"n0": n0, "common": True})
        out[f"3tw n0={n0:g} common rho=0.5"] = ([1, 2, 3], R_, "half64", {"n0": n0, "common": True, "rho": 0.5})
    for rho in (None, 0.5):
        tag = "" if rho is None else " rho=0.5"
        r = {} if rho is None else {"rho": rho}
        out[f"outer n0=inf{tag}"] = ([1, 2, 3], R_, "half64", {"n0": np.inf, "outer": True} | r)
        out[f"outer n0=20{tag}"] = ([1, 2, 3], R_, "half64", {"n0": 20, "outer": True} | r)
        out[f"pair shrink=0.5 n0=inf{tag}"] = ([1, 2, 3], R_, "half64", {"n0": np.inf, "shrink": 0.5} | r)
    twin_sets = {"3tw": [1, 2, 3], "4tw": [1, 2, 3, 4], "1-1.5-2-3": [1, 1.5, 2, 3], "3tw nocap": [1, 2, 3]}
    for tname, cuts in twin_sets.items():
        rule = "all" if "nocap" in tname else "half64"
        for n0 in (0, 20, 100, np.inf):
            for margin in (0.0, 0.15, 0.3):
                for rho in (None, 0.5):
                    if tname != "3tw" and (n0 not in (20, np.inf) or rho is not None):
                        continue
                    kw = {"n0": n0, "margin": margin} | ({} if rho is None else {"rho": rho})
                    out[f"{tname} n0={n0:g} m={margin:g}" + ("" if rho is None else f" rho={rho:g}")] = (
                        cuts, R_, rule, kw)
    return out


def score(extra: dict | None = None) -> dict:
    files = sorted(OUT.glob("*.npz"))
    data = {f.stem: dict(np.load(f)) for f in files}
    sch = schemes() | (extra or {})
    res: dict = {"runs": sorted(data), "schemes": {}}
    base_err: dict[str, float] = {}
    base_is: dict[str, float] = {}
    for sname, spec in sch.items():
        per = {}
        for run, d in data.items():
            w = None if spec is None else pick(d, spec[0], spec[1], spec[2])
            per[run] = score_one(d, w, {} if spec is None else spec[3])
        pairs = list(next(iter(per.values())))
        nom = {p: float(p) / 100 for p in pairs}
        err = {p: float(np.mean([abs(c[p][0] - nom[p]) for c in per.values()])) for p in pairs}
        # bias over all test points of all runs (M1's 181 series weigh most), and per run's mean
        pooled = {p: float(sum(c[p][0] * c[p][1] for c in per.values()) / sum(c[p][1] for c in per.values()))
                  - nom[p] for p in pairs}
        worst = float(np.mean([max(abs(c[p][0] - nom[p]) for p in pairs) for c in per.values()]))
        iscore = {p: float(np.mean([c[p][2] for c in per.values()])) for p in pairs}
        within = float(np.mean([abs(c[p][0] - nom[p]) <= 0.05 for c in per.values() for p in pairs]))
        # paired against BASELINE (the shipped scheme) run by run: mean abs coverage error over pairs
        # (difference, standard error) and the geometric mean of the interval-score ratio
        run_err = {r: float(np.mean([abs(c[p][0] - nom[p]) for p in pairs])) for r, c in per.items()}
        run_is = {r: float(np.mean([c[p][2] for p in pairs])) for r, c in per.items()}
        if sname == BASELINE:
            base_err, base_is = run_err, run_is
        paired = {}
        if base_err:
            dif = np.array([run_err[r] - base_err[r] for r in run_err])
            ratio = np.exp(np.mean([np.log(run_is[r] / base_is[r]) for r in run_is]))
            paired = {"err_diff": round(float(dif.mean()), 4),
                      "err_diff_se": round(float(dif.std(ddof=1) / np.sqrt(len(dif))), 4),
                      "is_ratio_gmean": round(float(ratio), 4)}
        res["schemes"][sname] = {"paired_vs_baseline": paired,
                                 "mean_abs_error": {p: round(v, 3) for p, v in err.items()},
                                 "pooled_bias": {p: round(v, 3) for p, v in pooled.items()},
                                 "mean_worst_pair": round(worst, 3),
                                 "interval_score": {p: round(v, 4) for p, v in iscore.items()},
                                 "share_within_5": round(within, 3),
                                 "per_run": {r: {p: round(v[0], 3) for p, v in c.items()} for r, c in per.items()}}
        log(f"{sname:30s} vs base err {paired.get('err_diff', 0):+.4f}+-{paired.get('err_diff_se', 0):.4f} "
            f"ISx {paired.get('is_ratio_gmean', 1):.3f} IS {np.mean(list(iscore.values())):.3f} "
            f"worst {worst:.3f} within5 {within:.2f} | abs err "
            + " ".join(f"{p}:{v:.3f}" for p, v in err.items())
            + " | pooled bias " + " ".join(f"{p}:{v:+.3f}" for p, v in pooled.items()))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("dump", "score"))
    ap.add_argument("--max-time", type=float, default=30.0)
    ap.add_argument("--only")
    ap.add_argument("--cuts", default=",".join(f"{c:g}" for c in CUTS), help="twin cuts in units of R")
    ap.add_argument("--capped", action="store_true", help="train only the twins the shipped cap rule keeps")
    ap.add_argument("--origins", default=",".join(str(k) for k in reversed(range(TUNE_FOLDS))))
    a = ap.parse_args()
    setup(threads=1)
    if a.stage == "dump":
        for k in (int(v) for v in a.origins.split(",")):
            for name, spec in panels("dev").items():
                if a.only and name not in a.only.split(","):
                    continue
                dump(name, spec, k, a.max_time, tuple(float(c) for c in a.cuts.split(",")), a.capped)
        return
    res = score()
    res["machine"] = machine_info()
    (RESULTS / "forecast_calib_schemes.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
