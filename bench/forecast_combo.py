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
    """Members that exist only once rnnkit has them (an ARIMA-like one, say)."""
    try:
        from rnnkit.tasks.forecast.combine import EXTRA_MEMBERS
    except ImportError:
        return {}
    return dict(EXTRA_MEMBERS)


def panel_table(name: str, spec: dict, stage: str, max_time: Optional[float], seed: int = 0,
                over: Optional[dict] = None) -> pd.DataFrame:
    """One row per (series, fold, step): y, rnn, members; plus origin and the MASE scale."""
    from rnnkit.metrics.forecast import mase_scale

    rnn = pd.read_csv(cache_path(spec, stage, seed, over or {}, max_time), dtype={"unique_id": str})
    mem = member_forecasts(name, spec, stage)
    t = rnn.rename(columns={"yhat": "rnn"}).merge(mem, on=["unique_id", "fold", "step"], how="inner")
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
    ap.add_argument("step", choices=("members", "score"))
    ap.add_argument("--stage", default="tune", choices=("tune", "eval"))
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-time", type=float, default=60.0)
    ap.add_argument("--rules", help="comma separated rule names (default: all)")
    ap.add_argument("--only", help="comma separated panel names")
    ap.add_argument("--out", help="JSON file for the scores")
    a = ap.parse_args()
    only = a.only.split(",") if a.only else None
    if a.step == "members":
        for name, spec in panels(a.split).items():
            if not only or name in only:
                member_forecasts(name, spec, a.stage)
        return
    res = score(a.stage, a.split, a.max_time, a.rules.split(",") if a.rules else None, only=only)
    print(show(res))
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
