"""Forecast combinations on the forecasting suite (issue 14), scored offline from cached forecasts.

``bench/forecast_suite.py run|tune`` caches rnnkit's point forecasts per panel, stage and settings
(runs/forecast_suite/cache/<stage>/); this script adds the per-series statistical members of
``rnnkit.tasks.forecast.baselines`` at exactly the same origins (cached too) and scores candidate
combinations of them with the global RNN, without retraining:

    nice .venv/bin/python bench/forecast_combo.py members --stage tune   # ETS, Theta, naive... forecasts
    nice .venv/bin/python bench/forecast_combo.py score --stage tune     # every candidate, mean MASE
    nice .venv/bin/python bench/forecast_combo.py score --stage eval --rules auto   # the chosen rule once

The rule is chosen on ``tune`` (origins inside the training parts) only; ``eval`` (dev tails) and the
held-out panels are scored once with it. statsforecast's AutoARIMA / AutoETS / AutoTheta (the
``baselines`` step) are printed beside, same origins, same MASE (season of the panel).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.forecast_suite import (TUNE_FOLDS, WORK, baseline_scores, cache_path, load_panel,  # noqa: E402
                                  origins, panels, season_of)

MEMBERS = ("ets", "theta", "naive", "seasonal_naive", "drift")


def _drift(y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """Random walk with drift (the line through the first and last points, extended)."""
    slope = (y[-1] - y[0]) / max(1, len(y) - 1)
    return y[-1] + slope * np.arange(1, h + 1)


def member_forecasts(name: str, spec: dict, stage: str) -> pd.DataFrame:
    """unique_id, fold, step, <member>... for ``stage``'s origins (cached per panel)."""
    from rnnkit.tasks.forecast.baselines import BASELINES

    path = WORK / "cache" / stage / f"{name}__members.csv"
    if path.is_file():
        return pd.read_csv(path, dtype={"unique_id": str})
    fns: dict[str, Callable] = {**{k: BASELINES[k] for k in MEMBERS if k in BASELINES}, "drift": _drift}
    extra = _extra_members()
    fns.update(extra)
    df, H, K, m = load_panel(spec), spec["horizon"], spec["folds"], season_of(spec)
    n_folds = K if stage == "eval" else TUNE_FOLDS
    out, t0 = [], time.perf_counter()
    for sid, g in df.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(float)
        for k, o in enumerate(origins(len(y), H, K, stage)[:n_folds]):
            if o < 3:
                continue
            row = {"unique_id": str(sid), "fold": k + 1, "step": np.arange(1, H + 1)}
            for mem, fn in fns.items():
                row[mem] = fn(y[:o].copy(), H, m)
            out.append(pd.DataFrame(row))
    res = pd.concat(out, ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    res.to_csv(path, index=False)
    print(f"{name} {stage}: members in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return res


def _extra_members() -> dict[str, Callable]:
    """Members added after the first cache (ar_forecasts has its own)."""
    return {}


def ar_forecasts(name: str, spec: dict, stage: str) -> pd.DataFrame:
    """The automatic AR of bench/_autoar.py, column ``arima``, cached apart (added later than the others)."""
    from bench._autoar import auto_ar

    path = WORK / "cache" / stage / f"{name}__ar.csv"
    if path.is_file():
        return pd.read_csv(path, dtype={"unique_id": str})
    df, H, K, m = load_panel(spec), spec["horizon"], spec["folds"], season_of(spec)
    n_folds = K if stage == "eval" else TUNE_FOLDS
    out = []
    for sid, g in df.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(float)
        for k, o in enumerate(origins(len(y), H, K, stage)[:n_folds]):
            if o >= 3:
                out.append(pd.DataFrame({"unique_id": str(sid), "fold": k + 1, "step": np.arange(1, H + 1),
                                         "arima": auto_ar(y[:o].copy(), H, m)}))
    res = pd.concat(out, ignore_index=True)
    res.to_csv(path, index=False)
    return res


def panel_table(name: str, spec: dict, stage: str, max_time: Optional[float], seed: int = 0,
                over: Optional[dict] = None) -> pd.DataFrame:
    """One row per (series, fold, step): y, rnn, members; plus origin and the MASE scale."""
    from rnnkit.metrics.forecast import mase_scale

    path = cache_path(spec, stage, seed, over or {}, max_time)  # a run with the product's defaults
    if over is None and (not path.is_file() or "rnn" not in pd.read_csv(path, nrows=1)):
        path = cache_path(spec, stage, seed, {"combine": "none"}, max_time)  # one with the RNN alone
    rnn = pd.read_csv(path, dtype={"unique_id": str})
    rnn = rnn.drop(columns="yhat") if "rnn" in rnn else rnn.rename(columns={"yhat": "rnn"})
    mem = member_forecasts(name, spec, stage)
    t = rnn.merge(mem, on=["unique_id", "fold", "step"], how="inner")
    t = t.merge(ar_forecasts(name, spec, stage), on=["unique_id", "fold", "step"], how="inner")
    df, m = load_panel(spec), season_of(spec)
    ys = {str(sid): g["y"].to_numpy(float) for sid, g in df.groupby("unique_id", sort=False)}
    t["y"] = [ys[s][o + k - 1] for s, o, k in zip(t["unique_id"], t["origin"], t["step"])]
    scale = {(s, o): mase_scale(ys[s][:o], m) for s, o in set(zip(t["unique_id"], t["origin"]))}
    t["scale"] = [scale[(s, o)] for s, o in zip(t["unique_id"], t["origin"])]
    return t


RULES: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "rnn": lambda t: t["rnn"].to_numpy(),
    "ets": lambda t: t["ets"].to_numpy(),
    "theta": lambda t: t["theta"].to_numpy(),
    "mean(ets,theta)": lambda t: t[["ets", "theta"]].mean(axis=1).to_numpy(),
    "mean(rnn,ets)": lambda t: t[["rnn", "ets"]].mean(axis=1).to_numpy(),
    "mean(rnn,theta)": lambda t: t[["rnn", "theta"]].mean(axis=1).to_numpy(),
    "mean(rnn,ets,theta)": lambda t: t[["rnn", "ets", "theta"]].mean(axis=1).to_numpy(),
    "median(rnn,ets,theta)": lambda t: t[["rnn", "ets", "theta"]].median(axis=1).to_numpy(),
    "median(rnn,ets,theta,drift)": lambda t: t[["rnn", "ets", "theta", "drift"]].median(axis=1).to_numpy(),
    "mean(rnn,ets,theta,drift)": lambda t: t[["rnn", "ets", "theta", "drift"]].mean(axis=1).to_numpy(),
    "median(rnn,ets,theta,snaive)": lambda t: t[["rnn", "ets", "theta", "seasonal_naive"]].median(axis=1)
    .to_numpy(),
    "2rnn+ets+theta": lambda t: (2 * t["rnn"] + t["ets"] + t["theta"]).to_numpy() / 4,
}


def _half(stats: tuple[str, ...], w: float = 0.5, how: str = "mean") -> Callable[[pd.DataFrame], np.ndarray]:
    """w * rnn + (1 - w) * mean (or median) of the statistical members ``stats``."""
    def rule(t: pd.DataFrame) -> np.ndarray:
        s = t[list(stats)]
        return w * t["rnn"].to_numpy() + (1 - w) * (s.mean(axis=1) if how == "mean" else s.median(axis=1)).to_numpy()
    return rule


for _st in (("ets", "theta"), ("ets", "theta", "arima"), ("ets", "arima")):
    for _w in (0.5, 2 / 3):
        RULES[f"{_w:.2f}rnn+mean({','.join(_st)})"] = _half(_st, _w)
RULES["0.50rnn+median(ets,theta,arima)"] = _half(("ets", "theta", "arima"), 0.5, "median")


def product_rule(t: pd.DataFrame) -> np.ndarray:
    """What ``forecast train`` does with defaults (autoconfig.forecast_plan + combine.combine_point),
    from the cached members: the blend for panels of at most FORECAST_COMBINE_MAX_SERIES series."""
    from rnnkit.tasks.autoconfig import FORECAST_COMBINE, FORECAST_COMBINE_MAX_SERIES
    from rnnkit.tasks.forecast.combine import MEMBERS, combine_point

    rnn = t["rnn"].to_numpy()[:, None]
    if t["unique_id"].nunique() > FORECAST_COMBINE_MAX_SERIES:
        return rnn[:, 0]
    members = t[list(MEMBERS)].to_numpy()[:, :, None]  # rows as series, one step each: (rows, M, 1)
    return combine_point(rnn, members, FORECAST_COMBINE)[:, 0]


RULES["auto"] = product_rule


def add_rules(t: pd.DataFrame) -> None:
    """Rules that need members only some runs have (the ARIMA-like one)."""
    if "arima" in t:
        RULES.setdefault("mean(rnn,ets,theta,arima)", lambda t: t[["rnn", "ets", "theta", "arima"]].mean(axis=1)
                         .to_numpy())
        RULES.setdefault("median(rnn,ets,theta,arima)", lambda t: t[["rnn", "ets", "theta", "arima"]]
                         .median(axis=1).to_numpy())
        RULES.setdefault("mean(rnn,ets,arima)", lambda t: t[["rnn", "ets", "arima"]].mean(axis=1).to_numpy())
        RULES.setdefault("arima", lambda t: t["arima"].to_numpy())


def mase_per_series(t: pd.DataFrame, yhat: np.ndarray) -> pd.Series:
    """MASE per (series, fold): mean |y - yhat| / scale."""
    err = np.abs(t["y"].to_numpy() - yhat) / t["scale"].to_numpy()
    return pd.Series(err, index=t.index).groupby([t["unique_id"], t["fold"]], sort=False).mean()


def score(stage: str, split: str, max_time: Optional[float], rules: Optional[list[str]], seed: int = 0,
          only: Optional[list[str]] = None) -> dict:
    """Mean MASE per panel of every rule (and the statsforecast baselines), means over panels and series."""
    res: dict = {"stage": stage, "split": split, "max_time": max_time, "panels": {}}
    pooled: dict[str, list] = {}
    for name, spec in panels(split).items():
        if only and name not in only:
            continue
        try:
            t = panel_table(name, spec, stage, max_time, seed)
        except FileNotFoundError:
            print(f"{name}: no cached rnnkit forecasts yet", file=sys.stderr)
            continue
        add_rules(t)
        row = {}
        keys = None
        for rule in rules or list(RULES):
            s = mase_per_series(t, RULES[rule](t))
            keys = s.index
            row[rule] = float(s.mean())
            pooled.setdefault(rule, []).extend(s.to_numpy())
        b = baseline_scores(spec, name, stage)
        for method in ("AutoARIMA", "AutoETS", "AutoTheta"):
            g = b[b["method"] == method].set_index(["unique_id", "fold"])["mase"]
            vals = [g.get(k, np.nan) for k in keys]
            if len(g):
                row[method] = float(np.nanmean(vals))
                pooled.setdefault(method, []).extend(vals)
        res["panels"][name] = {"series": int(t["unique_id"].nunique()), "mase": row}
    names = list(res["panels"])
    cols = list(pooled)
    res["mean_over_panels"] = {c: float(np.mean([res["panels"][n]["mase"].get(c, np.nan) for n in names]))
                               for c in cols}
    res["mean_over_series"] = {c: float(np.nanmean(pooled[c])) for c in cols}
    return res


VALIDATED = {  # name -> (candidate rules, how the validation errors pick among them)
    "pick(rnn|mean|median)": (("rnn", "mean(rnn,ets,theta)", "median(rnn,ets,theta)"), "panel"),
    "pick(rnn|ets|theta|mean)": (("rnn", "ets", "theta", "mean(rnn,ets,theta)"), "panel"),
    "pick(rnn|mean)": (("rnn", "mean(rnn,ets,theta)"), "panel"),
    "inv-mase(rnn,ets,theta)": (("rnn", "ets", "theta"), "inverse"),
    "series-pick(rnn|mean)": (("rnn", "mean(rnn,ets,theta)"), "series"),
    "series-inv(rnn,ets,theta)": (("rnn", "ets", "theta"), "series-inverse"),
}


def validated(t_val: pd.DataFrame, t_test: pd.DataFrame, how: str, cands: tuple[str, ...]) -> np.ndarray:
    """Forecasts for t_test's rows from ``cands`` chosen / weighted by their MASE on t_val
    (validation origins before t_test's): per panel or per series."""
    err = {c: mase_per_series(t_val, RULES[c](t_val)) for c in cands}
    fc = {c: RULES[c](t_test) for c in cands}
    if how == "panel":
        best = min(cands, key=lambda c: err[c].mean())
        return fc[best]
    if how == "inverse":
        w = np.array([1.0 / max(err[c].mean(), 1e-9) for c in cands])
        return sum(w[i] * fc[c] for i, c in enumerate(cands)) / w.sum()
    per = pd.DataFrame({c: err[c].groupby(level=0).mean() for c in cands})  # series x candidate
    sid = t_test["unique_id"].to_numpy()
    if how == "series":
        best = per.idxmin(axis=1)
        pick = best.reindex(sid).fillna(cands[0]).to_numpy()
        return np.select([pick == c for c in cands], [fc[c] for c in cands])
    w = (1.0 / per.clip(lower=1e-9)).reindex(sid).fillna(1.0).to_numpy()
    return (w * np.column_stack([fc[c] for c in cands])).sum(axis=1) / w.sum(axis=1)


def score_validated(split: str, max_time: Optional[float], final: bool) -> dict:
    """Validated rules: ``final`` False = validate on tune fold 1, test on tune fold 2 (choosing the
    rule); True = validate on both tune folds, test on the eval folds (the chosen rule, once)."""
    res: dict = {"final": final, "panels": {}}
    for name, spec in panels(split).items():
        try:
            tt = panel_table(name, spec, "tune", max_time)
            te = panel_table(name, spec, "eval", max_time) if final else None
        except FileNotFoundError:
            continue
        val, test = (tt, te) if final else (tt[tt["fold"] == 1], tt[tt["fold"] == 2].reset_index(drop=True))
        row = {r: float(mase_per_series(test, RULES[r](test)).mean())
               for r in ("rnn", "mean(rnn,ets,theta)", "median(rnn,ets,theta)")}
        for v, (cands, how) in VALIDATED.items():
            row[v] = float(mase_per_series(test, validated(val, test, how, cands)).mean())
        res["panels"][name] = {"series": int(test["unique_id"].nunique()), "mase": row}
    cols = list(next(iter(res["panels"].values()))["mase"])
    res["mean_over_panels"] = {c: float(np.mean([p["mase"][c] for p in res["panels"].values()])) for c in cols}
    res["mean_over_series"] = {c: float(np.average([p["mase"][c] for p in res["panels"].values()],
                                                   weights=[p["series"] for p in res["panels"].values()]))
                               for c in cols}
    return res


def report() -> None:
    """bench/results/forecast_combo.json + Markdown: the RNN alone and the product's rule ("auto") next
    to statsforecast's AutoARIMA / AutoETS / AutoTheta, per panel, for the tune stage, the dev tails
    (seeds 0 and 1) and held-out fpp3. Baseline means: recomputed ones (``baselines`` step, same
    origins) where their files exist, else bench/results/forecast_suite.json's (2026-12-02, same panels
    and origins; where both exist they agree to 1e-3)."""
    from bench.common import RESULTS

    old = json.loads((RESULTS / "forecast_suite.json").read_text())["runs"]
    stored = {"tune": old["tune, automatic defaults"], "dev": old["dev, automatic defaults"],
              "heldout": old["held-out, automatic defaults"]}
    runs = {"tune (training parts; the rule was chosen here), seed 0": ("tune", "dev", 0),
            "dev tails, seed 0": ("eval", "dev", 0), "dev tails, seed 1": ("eval", "dev", 1),
            "dev tails, seed 2": ("eval", "dev", 2),
            "held-out fpp3 (once, after the choice), seed 0": ("eval", "heldout", 0)}
    out: dict = {"runs": {}, "tables": {}}
    for title, (stage, split, seed) in runs.items():
        res = {"panels": {}}
        base = stored["tune" if stage == "tune" else split]
        for name, spec in panels(split).items():
            t = panel_table(name, spec, stage, 60.0, seed, over={} if seed == 1 else None)
            if seed == 1:  # see bench/_forecast_combo_s1.py: that cache holds the blend; invert it
                t = t.assign(rnn=(t["rnn"] - t[["ets", "theta"]].mean(axis=1) / 3) * 1.5
                             if t["unique_id"].nunique() <= 100 else t["rnn"])
            row = {r: float(mase_per_series(t, RULES[r](t)).mean()) for r in ("rnn", "auto")}
            b = baseline_scores(spec, name, stage)
            for m in ("AutoARIMA", "AutoETS", "AutoTheta"):
                g = b[b["method"] == m]
                row[m] = float(g["mase"].mean()) if len(g) else base["panels"][name]["mase"][m]
            res["panels"][name] = {"series": int(t["unique_id"].nunique()), "mase": row,
                                   "pairs": int(t.groupby(["unique_id", "fold"]).ngroups)}
        cols = ["rnn", "auto", "AutoARIMA", "AutoETS", "AutoTheta"]
        res["mean_over_panels"] = {c: float(np.mean([p["mase"][c] for p in res["panels"].values()])) for c in cols}
        res["mean_over_series"] = {c: float(np.average([p["mase"][c] for p in res["panels"].values()],
                                                       weights=[p["pairs"] for p in res["panels"].values()]))
                                   for c in cols}  # pooled over (series, fold) pairs, as forecast_suite.py
        out["runs"][title] = res
        out["tables"][title] = show(res)
        print(f"### {title}\n\n{out['tables'][title]}\n")
    (RESULTS / "forecast_combo.json").write_text(json.dumps(out, indent=2) + "\n")


def show(res: dict) -> str:
    cols = list(res["mean_over_panels"])
    lines = ["| panel | n | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for n, p in res["panels"].items():
        lines.append(f"| {n} | {p['series']} | " + " | ".join(f"{p['mase'].get(c, np.nan):.3f}" for c in cols) + " |")
    for agg in ("mean_over_panels", "mean_over_series"):
        lines.append(f"| *{agg}* | | " + " | ".join(f"{res[agg][c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("members", "score", "validated", "report"))
    ap.add_argument("--stage", default="tune", choices=("tune", "eval"))
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-time", type=float, default=60.0)
    ap.add_argument("--rules", help="rule names separated by ; (default: all)")
    ap.add_argument("--only", help="comma separated panel names")
    ap.add_argument("--seed", type=int, default=0, help="the rnnkit run's seed (cache file)")
    ap.add_argument("--out", help="JSON file for the scores")
    a = ap.parse_args()
    only = a.only.split(",") if a.only else None
    if a.step == "members":
        for name, spec in panels(a.split).items():
            if not only or name in only:
                member_forecasts(name, spec, a.stage)
        return
    if a.step == "report":
        return report()
    if a.step == "validated":
        res = score_validated(a.split, a.max_time, final=a.stage == "eval")
        print(show(res))
        if a.out:
            Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
        return
    res = score(a.stage, a.split, a.max_time, a.rules.split(";") if a.rules else None, a.seed, only=only)
    print(show(res))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
