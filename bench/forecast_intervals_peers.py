"""rnnkit's bands against statsforecast's on the same backtests (issue 17, item 4: how good is "calibrated"?).

The splits of ``bench/forecast_intervals.py`` (M1 yearly 181 series x 1 fold x 6, airline 3 folds x 12,
stocks 5 series x 4 folds x 6; origins ``n - H (K - k)`` per series, every model refit per fold). Peers:
statsforecast 2.1.1's AutoETS, AutoARIMA and AutoTheta with their own prediction intervals (``level``),
and SeasonalNaive's. Scores per quantile pair: coverage, and the interval score (Gneiting & Raftery
2007: width + 2/alpha x the miss) divided by the series' in-sample seasonal-naive MAE (M4's MSIS), so
a band that covers by being wide pays for it. Nothing here is tuned: every method runs with defaults.

Three stages, because statsforecast needs pandas < 3 (its own venv) and rnnkit pins pandas 3:

    nice .venv/bin/python bench/forecast_intervals_peers.py rnnkit          # rnnkit's backtests -> runs/
    nice /work/venv-sf/bin/python bench/forecast_intervals_peers.py peers   # statsforecast's   -> runs/
    .venv/bin/python bench/forecast_intervals_peers.py score                # -> bench/results/forecast_intervals_peers.json

Each stage writes frames in utilsforecast's cross-validation layout (unique_id, ds, cutoff, y, <model>,
<model>-lo-<level>, <model>-hi-<level>), which ``score`` reads for every method alike.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "rnnkit" / "data" / "datasets"
OUT = ROOT / "runs" / "forecast_intervals_peers"
SETS = {  # name: (file, target, time, id, horizon, folds, season), as bench/forecast_intervals.py
    "m1_yearly": ("m1_yearly/m1_yearly.csv", "value", "year", "series", 6, 1, 1),
    "airline": ("airline/airline.csv", "passengers", "month", None, 12, 3, 12),
    "stocks": ("stocks/stocks.csv", "price", "date", "symbol", 6, 4, 12),
}
LEVELS = (90, 80, 60, 40, 20)
PEERS = ("AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive")


def long_frame(name: str) -> pd.DataFrame:
    """The shipped file as unique_id, ds (an integer step per series), y."""
    file, target, time_col, id_col, *_ = SETS[name]
    df = pd.read_csv(DATA / file)
    df["unique_id"] = df[id_col].astype(str) if id_col else "airline"
    df = df.sort_values(["unique_id", time_col], kind="stable")
    df["ds"] = df.groupby("unique_id").cumcount() + 1  # positions: M1's series end in different years
    return df[["unique_id", "ds"]].assign(y=df[target].astype(float).to_numpy())


def run_rnnkit() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.common import setup
    from rnnkit.data.series import load_series
    from rnnkit.tasks.forecast.backtest import run_backtest
    from rnnkit.tasks.forecast.task import ForecastConfig

    setup(threads=1)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (file, target, time_col, id_col, horizon, folds, _) in SETS.items():
        t0 = time.perf_counter()
        ss = load_series(DATA / file, target, time_col, id_col, quiet=True)  # its own times: seasons are inferred
        res = run_backtest(ss, ForecastConfig(horizon=horizon, progress=False), folds=folds, baselines=(),
                           log=open(os.devnull, "w"))
        f = res.forecasts.rename(columns=lambda c: c.replace(res.model_name, "rnnkit"))
        ids, ds, cut = [], [], []  # positions, in run_backtest's order (fold, series, step), as long_frame numbers them
        for k in range(folds):
            for s in ss.series:
                o = len(s) - horizon * (folds - k)
                ids += [str(s.id)] * horizon
                ds += list(range(o + 1, o + horizon + 1))
                cut += [o] * horizon
        assert [str(v) for v in f["unique_id"]] == ids
        f = f.assign(unique_id="airline" if id_col is None else f["unique_id"].astype(str), ds=ds, cutoff=cut)
        f.to_csv(OUT / f"{name}_rnnkit.csv", index=False)
        print(f"{name}: rnnkit {time.perf_counter() - t0:.0f} s", flush=True)


def run_peers() -> None:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    OUT.mkdir(parents=True, exist_ok=True)
    for name, (_, _, _, _, horizon, folds, season) in SETS.items():
        df = long_frame(name)
        for model in (AutoETS(season_length=season), AutoARIMA(season_length=season),
                      AutoTheta(season_length=season), SeasonalNaive(season_length=season)):
            t0 = time.perf_counter()
            sf = StatsForecast(models=[model], freq=1, n_jobs=1)
            cv = sf.cross_validation(df=df, h=horizon, n_windows=folds, step_size=horizon, level=list(LEVELS))
            label = repr(model) if not hasattr(model, "alias") else model.alias
            cv.to_csv(OUT / f"{name}_{label}.csv", index=False)
            print(f"{name}: {label} {time.perf_counter() - t0:.0f} s", flush=True)


def scale_of(df: pd.DataFrame, season: int) -> dict[tuple[str, int], float]:
    """(series, cutoff) -> in-sample seasonal-naive MAE of the history up to the cutoff (MSIS's scale)."""
    out = {}
    for sid, g in df.groupby("unique_id"):
        y = g.sort_values("ds")["y"].to_numpy()
        for c in range(2, len(y) + 1):
            m = season if c > season else 1
            out[(str(sid), c)] = float(np.mean(np.abs(y[m:c] - y[:c - m]))) if c > m else float("nan")
    return out


def score_frame(cv: pd.DataFrame, model: str, scale: dict) -> dict:
    """Coverage and scaled interval score per pair, pooled over every forecast point."""
    s = np.array([scale[(str(u), int(c))] for u, c in zip(cv["unique_id"], cv["cutoff"])])
    y = cv["y"].to_numpy(float)
    out = {}
    for lv in LEVELS:
        lo, hi = cv[f"{model}-lo-{lv}"].to_numpy(float), cv[f"{model}-hi-{lv}"].to_numpy(float)
        a = 1 - lv / 100
        iscore = (hi - lo) + 2 / a * np.maximum(lo - y, 0) + 2 / a * np.maximum(y - hi, 0)
        ok = np.isfinite(s) & (s > 0)
        out[str(lv)] = {"coverage": round(float(np.mean((lo <= y) & (y <= hi))), 3),
                        "msis": round(float(np.mean(iscore[ok] / s[ok])), 3)}
    return out


def score() -> dict:
    sys.path.insert(0, str(ROOT))
    from bench.common import RESULTS, machine_info, markdown_table

    res: dict = {"machine": machine_info(), "levels": list(LEVELS), "sets": {}}
    rows = []
    for name, (*_, season) in SETS.items():
        df = long_frame(name)
        scale = scale_of(df, season)
        res["sets"][name] = {}
        for model in ("rnnkit",) + PEERS:
            path = OUT / f"{name}_{model}.csv"
            if not path.is_file():
                continue
            got = score_frame(pd.read_csv(path), model, scale)
            off = sum(abs(got[str(lv)]["coverage"] - lv / 100) > 0.05 + 1e-9 for lv in LEVELS)
            mean_msis = float(np.mean([got[str(lv)]["msis"] for lv in LEVELS]))
            res["sets"][name][model] = {"pairs": got, "pairs_more_than_5_off": int(off),
                                        "mean_msis": round(mean_msis, 3)}
            rows.append([name, model] + [f"{got[str(lv)]['coverage']:.3f}" for lv in LEVELS]
                        + [off, f"{got['80']['msis']:.2f}", f"{mean_msis:.2f}"])
    res["table"] = markdown_table(["data", "method"] + [f"{lv} %" for lv in LEVELS]
                                  + ["pairs > 5 points off", "MSIS 80 %", "MSIS mean over pairs"], rows)
    (RESULTS / "forecast_intervals_peers.json").write_text(json.dumps(res, indent=2) + "\n")
    print(res["table"])
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("rnnkit", "peers", "score"))
    stage = ap.parse_args().stage
    {"rnnkit": run_rnnkit, "peers": run_peers, "score": score}[stage]()
