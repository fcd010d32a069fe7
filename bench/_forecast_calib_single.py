"""Calibration of ONE series (airline's case) on the dev suite's training parts (issue 17, item 4).

For a panel of one series the shipped scheme keeps a single twin cut ``R = L // 3`` points short (a
second one would lose more than half the series). Does a twin that lost a third of a short series
err more than the final model, so that its factor over-widens the band? Candidates: twins cut
closer to the end (H, 2H, 3H points short, each forecasting H origins) and per-pair factors.

Data: every monthly dev series (fpp2, R datasets/forecast, statsmodels; not fpp3, not airline) as a
problem of its own, at the suite's two tuning origins (inside the training part: the evaluated tails
are never touched), with the last L points before the origin, L in 72..132 like airline's backtest
folds. The rule for choosing was written before the first score (docs/decisions.md).

    nice .venv/bin/python bench/_forecast_calib_single.py dump [--part 0/2]
    .venv/bin/python bench/_forecast_calib_single.py score
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._forecast_calib_schemes import score_q  # noqa: E402
from bench.common import RESULTS, log, machine_info, setup  # noqa: E402
from bench.forecast_suite import TUNE_FOLDS, WORK, load_panel, origins, panels  # noqa: E402
from rnnkit.data.series import load_series  # noqa: E402
from rnnkit.tasks.forecast import calibration as cal  # noqa: E402
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster  # noqa: E402

OUT = WORK.parent / "forecast_calib_single"
PANELS = ("fpp2_monthly", "r_monthly", "statsmodels_monthly")
LENGTHS = (72, 84, 96, 108, 120, 132)  # airline's backtest folds train on 72..132 points
QUARTERLY = ("fpp2_quarterly", "r_quarterly", "statsmodels_quarterly")
Q_LENGTHS = (32, 40, 48, 56, 64)        # 8 to 16 years of quarters


def problems(stage: str = "first") -> list[tuple[str, np.ndarray, int, int, int]]:
    """(run name, history + horizon, L, horizon H, season) per problem. "first": every monthly dev series
    at both tune origins; "confirm" (new runs for the confirmation rule): every monthly series one
    horizon before the first tune origin with other lengths, and every quarterly series alone."""
    out = []
    i = 0
    sets = PANELS if stage == "first" else PANELS + QUARTERLY
    for name in sets:
        spec = panels("dev")[name]
        h, season = spec["horizon"], 12 if name in PANELS else 4
        lengths = LENGTHS if name in PANELS else Q_LENGTHS
        df = load_panel(spec)
        for sid, g in df.groupby("unique_id", sort=True):
            y = g.sort_values("ds")["y"].to_numpy(np.float64)
            tune = origins(len(y), h, spec["folds"], "tune")
            ks = range(TUNE_FOLDS) if stage == "first" else [-1 if name in PANELS else 0]
            for k in ks:
                o = tune[k] if k >= 0 else tune[0] - h
                L = min(o, lengths[(i + k + (3 if stage != "first" else 0)) % len(lengths)])
                if L >= lengths[0]:
                    tag = f"{name}_{sid}_{k}".replace("/", "-").replace(" ", "-")
                    out.append((tag, y[o - L:o + h], L, h, season))
            i += 1
    return out


def dump(stage: str, run: str, y: np.ndarray, L: int, h: int = 12, season: int = 12) -> None:
    t0 = time.perf_counter()
    freq = "MS" if season == 12 else "QS"
    df = pd.DataFrame({"unique_id": "s", "ds": pd.date_range("2000-01-01", periods=L, freq=freq), "y": y[:L]})
    ss = load_series(df, "y", "ds", "unique_id", quiet=True)
    fc = Forecaster(config=ForecastConfig(horizon=h, progress=False, calibrate="none", max_time=30.0))
    fc.fit(ss, strict=False)
    R = cal.default_holdout(h, [L])
    arrays = {"q_raw": fc.predict_quantiles(ss, calibrated=False), "actual": y[None, L:L + h],
              "levels": np.array(fc.network.cfg.quantiles), "R": np.array(R), "L": np.array(L), "H": np.array(h)}
    for hold in sorted({h, 2 * h, 3 * h, R}):
        if hold != R and hold > h and hold > L // 2:
            continue  # a later near twin the code's cap would skip
        w = cal.holdout_windows(fc, ss, hold, span=h if hold != R else R)
        if w is not None:
            arrays[f"q_{hold}"], arrays[f"y_{hold}"], arrays[f"m_{hold}"] = w[0], w[1], w[2]
    (OUT / stage).mkdir(parents=True, exist_ok=True)
    np.savez(OUT / stage / f"{run}.npz", **arrays)
    log(f"{run}: L={L} R={R} ({time.perf_counter() - t0:.0f} s)")


def horizon(d: dict) -> int:
    return int(d["H"]) if "H" in d else 12


def windows(d: dict, holds: list[int]) -> tuple:
    """Windows of the twins cut ``holds`` short (first H origins each, or R for the R twin), twin index.
    Later twins past half the series are skipped, as ``multi_origin_windows`` does."""
    got = []
    H = horizon(d)
    for j, hold in enumerate(holds):
        if j and hold > int(d["L"]) // 2:
            break
        q, yy, m = d[f"q_{hold}"], d[f"y_{hold}"], d[f"m_{hold}"]
        span = hold if hold == int(d["R"]) else H
        keep = np.arange(len(q)) < span
        got.append((q[keep], yy[keep], m[keep], np.full(int(keep.sum()), j)))
    return tuple(np.concatenate([g[i] for g in got]) for i in range(4))


def candidates() -> dict:
    """name -> (twin holds of a run, fit mode)."""
    return {"shipped": (lambda d: [int(d["R"])], "common"),
            "shipped-pair": (lambda d: [int(d["R"])], "pair"),
            "near3": (lambda d: [horizon(d) * c for c in (1, 2, 3)], "common"),
            "near3-pair": (lambda d: [horizon(d) * c for c in (1, 2, 3)], "pair"),
            "near2": (lambda d: [horizon(d) * c for c in (1, 2)], "common"),
            # fifth pass (2026-12-03 evening): the nearest twin alone, and factors extrapolated to cut 0
            "near1-pair": (lambda d: [horizon(d)], "pair"),
            "extrap-pair": (lambda d: [horizon(d) * c for c in (1, 2, 3)], "extrap")}


def extrapolated(q: np.ndarray, yy: np.ndarray, m: np.ndarray, twin: np.ndarray, levels: tuple[float, ...],
                 H: int) -> np.ndarray:
    """Per-pair factors of each twin alone, a weighted (0.5^j) least-squares line of log factor on the
    cut (j + 1) H, read at cut 0 (the final model lost nothing), clipped to [min / 2, max] of the twins'."""
    fs = [(j, cal.fit_factors(q[twin == j], yy[twin == j], m[twin == j], levels, mode="pair", kind="ratio"))
          for j in np.unique(twin) if (twin == j).sum() >= 2]
    if len(fs) < 2:
        return cal.fit_factors(q, yy, m, levels, mode="pair", kind="ratio", weights=cal.TWIN_DECAY ** twin.astype(float))
    c = np.array([(j + 1) * H for j, _ in fs], float)
    w = cal.TWIN_DECAY ** np.array([j for j, _ in fs], float)
    w /= w.sum()
    F = np.stack([f for _, f in fs])
    logF = np.log(np.maximum(F, 1e-6))
    cm, lm = (w * c).sum(), np.tensordot(w, logF, axes=1)
    b = np.tensordot(w * (c - cm), logF - lm, axes=1) / (w * (c - cm) ** 2).sum()
    return np.clip(np.exp(lm - b * cm), F.min(axis=0) / 2, F.max(axis=0))


def apply(d: dict, holds: list[int], mode: str) -> np.ndarray:
    levels = tuple(float(v) for v in d["levels"])
    q, yy, m, twin = windows(d, holds)
    if mode == "extrap":
        f = extrapolated(q, yy, m, twin, levels, horizon(d))
        return cal.Calibration(levels, f, len(q), int(d["R"]), "ratio", "pair").apply(d["q_raw"])
    f = cal.fit_factors(q, yy, m, levels, mode=mode, kind="ratio", weights=cal.TWIN_DECAY ** twin.astype(np.float64))
    return cal.Calibration(levels, f, len(q), int(d["R"]), "ratio", mode).apply(d["q_raw"])


def score(stages: tuple[str, ...]) -> dict:
    """Pooled coverage and interval score of every candidate over the runs of ``stages``."""
    data = {f"{st}/{f.stem}": dict(np.load(f)) for st in stages for f in sorted((OUT / st).glob("*.npz"))}
    runs = sorted(data)
    per: dict[str, dict] = {}
    for name, (holds, mode) in [("raw", (None, None))] + list(candidates().items()):
        per[name] = {}
        for r in runs:
            d = data[r]
            levels = tuple(float(v) for v in d["levels"])
            q = d["q_raw"] if holds is None else apply(d, holds(d), mode)
            per[name][r] = score_q(d, q, levels)
    pairs = list(per["raw"][runs[0]])
    nom = {p: float(p) / 100 for p in pairs}

    def pooled_err(name: str, idx: np.ndarray) -> tuple[float, dict, float]:
        cov = {p: float(np.mean([per[name][runs[i]][p][0] for i in idx])) for p in pairs}  # same points per run
        iscore = float(np.mean([per[name][runs[i]][p][2] for i in idx for p in pairs]))
        return float(np.mean([abs(cov[p] - nom[p]) for p in pairs])), cov, iscore

    rng = np.random.default_rng(0)
    boots = [rng.integers(0, len(runs), len(runs)) for _ in range(2000)]
    all_idx = np.arange(len(runs))
    base_err, _, base_is = pooled_err("shipped", all_idx)
    res: dict = {"runs": runs, "candidates": {}}
    for name in per:
        err, cov, iscore = pooled_err(name, all_idx)
        diffs = np.array([pooled_err(name, b)[0] - pooled_err("shipped", b)[0] for b in boots])
        res["candidates"][name] = {"pooled_abs_error": round(err, 4), "coverage": {p: round(v, 3) for p, v in cov.items()},
                                   "interval_score": round(iscore, 4), "is_ratio": round(iscore / base_is, 4),
                                   "diff_vs_shipped": round(err - base_err, 4),
                                   "p_better": round(float(np.mean(diffs < 0)), 3),
                                   "diff_se": round(float(diffs.std()), 4)}
        log(f"{name:14s} err {err:.4f} diff {err - base_err:+.4f} (SE {diffs.std():.4f}, P<0 {np.mean(diffs < 0):.2f}) "
            f"ISx {iscore / base_is:.3f} | " + " ".join(f"{p}:{v:.3f}" for p, v in cov.items()))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=("dump", "score"))
    ap.add_argument("--set", choices=("first", "confirm"), default="first", help="which runs (see problems)")
    ap.add_argument("--part", default="0/1", help="i/n: this process dumps every n-th problem from i")
    a = ap.parse_args()
    setup(threads=1)
    if a.stage == "dump":
        i, n = (int(v) for v in a.part.split("/"))
        for j, (run, y, L, h, season) in enumerate(problems(a.set)):
            if j % n == i and not (OUT / a.set / f"{run}.npz").is_file():
                dump(a.set, run, y, L, h, season)
        return
    res = {"machine": machine_info()}
    for stages in (("first",), ("confirm",), ("first", "confirm")):
        if all((OUT / st).is_dir() for st in stages):
            log(f"runs of {' + '.join(stages)}:")
            res["+".join(stages)] = score(stages)
    (RESULTS / "forecast_calib_single.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
