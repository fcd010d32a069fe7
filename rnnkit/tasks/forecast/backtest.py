"""Rolling-origin backtest: the model against naive, seasonal naive, ETS and Theta.

Fold k of K puts the forecast origin of a series of length n at ``n - horizon * (K - k)``:
the model is retrained on the data before the origin (all series, as a global model),
then every method forecasts the next ``horizon`` points. Metrics per series and fold:
MASE (scale = in-sample seasonal naive), sMAPE, RMSE; the model also gets the pinball loss
and the coverage of every symmetric pair of its trained quantiles (``coverage90`` = 5-95 %,
``coverage80`` = 10-90 %, ...), calibrated (what predict returns) and raw (``coverage80_raw``:
before the interval calibration). "overall" rows are means over series and folds.
``forecasts`` keeps every fold's forecasts in utilsforecast's cross-validation layout
(``unique_id, ds, cutoff, y, <method>..., <model>-lo-L, <model>-hi-L``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from rnnkit.data.series import SeriesSet, check_lengths, truncate
from rnnkit.errors import UserError
from rnnkit.io import atomic_path, atomic_write_text, save_figure
from rnnkit.metrics.forecast import coverage, mase, pinball, rmse, smape
from rnnkit.tasks.forecast.formats import level_name
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster, interpolate_quantiles
from rnnkit.tasks.forecast.baselines import BASELINES, available

METRICS = ("mase", "smape", "rmse")


@dataclass
class BacktestResult:
    """scores: one row per (series, fold, method); summary: mean per method (overall)."""

    scores: pd.DataFrame
    summary: pd.DataFrame
    horizon: int
    folds: int
    season: int
    # last fold, for plots: id -> dict(history_t, history_y, t, y, forecast, lo, hi, naive)
    last_fold: dict = field(default_factory=dict)
    pairs: list = field(default_factory=list)   # (level %, lower quantile, upper quantile), widest first
    forecasts: pd.DataFrame = field(default_factory=pd.DataFrame)
    model_name: str = ""

    def table(self) -> str:
        """Markdown table of the overall means, best MASE first, with the coverage of every quantile
        pair (nominal in the header; raw = before calibration, when the model was calibrated)."""
        s = self.summary.sort_values("mase")
        raw = any(f"coverage{level_name(lv)}_raw" in s for lv, _, _ in self.pairs)
        head = "| method | MASE | sMAPE % | RMSE |" + "".join(
            f" cov. {100 * lo:g}-{100 * hi:g} ({level_name(lv)}%) |" for lv, lo, hi in self.pairs)
        lines = [head, "|---|---:|---:|---:|" + "---:|" * len(self.pairs)]
        for _, r in s.iterrows():
            cells = []
            for lv, _, _ in self.pairs:
                c, cr = r.get(f"coverage{level_name(lv)}"), r.get(f"coverage{level_name(lv)}_raw")
                cells.append("" if c is None or pd.isna(c) else
                             f"{c:.2f}" + (f" (raw {cr:.2f})" if raw and cr is not None and not pd.isna(cr) else ""))
            lines.append(f"| {r['method']} | {r['mase']:.3f} | {r['smape']:.2f} | {r['rmse']:.4g} |"
                         + "".join(f" {c} |" for c in cells))
        return "\n".join(lines)

    def coverage(self) -> pd.DataFrame:
        """The model's coverage per quantile pair: level, lower, upper, nominal, coverage (calibrated),
        coverage_raw, fold_min / fold_max (the lowest and highest fold: one period's coverage scatters
        far more than a binomial count suggests, because a period's errors share its surprises) and
        points (forecast points scored)."""
        r = self.summary.set_index("method").loc[self.model_name]
        mine = self.scores[self.scores["method"] == self.model_name]
        rows = []
        for lv, lo, hi in self.pairs:
            col = f"coverage{level_name(lv)}"
            per_fold = mine.groupby("fold")[col].mean()
            rows.append({"level": lv, "lower": lo, "upper": hi, "nominal": lv / 100, "coverage": float(r[col]),
                         "coverage_raw": float(r.get(f"{col}_raw", float("nan"))),
                         "fold_min": float(per_fold.min()), "fold_max": float(per_fold.max()),
                         "points": int(len(mine) * self.horizon)})
        return pd.DataFrame(rows)

    def coverage_table(self) -> str:
        """Markdown table of ``coverage()``: every pair against its nominal level, with the fold range."""
        lines = ["| band | nominal | coverage | raw | folds (min-max) |", "|---|---:|---:|---:|---:|"]
        for _, c in self.coverage().iterrows():
            raw = "" if pd.isna(c["coverage_raw"]) else f"{c['coverage_raw']:.2f}"
            lines.append(f"| {100 * c['lower']:g}-{100 * c['upper']:g} | {c['nominal']:.2f} | {c['coverage']:.2f} "
                         f"| {raw} | {c['fold_min']:.2f}-{c['fold_max']:.2f} |")
        return "\n".join(lines)

    def per_series(self) -> pd.DataFrame:
        """Mean over folds, one row per (series, method)."""
        return self.scores.groupby(["id", "method"], sort=False)[list(METRICS)].mean().reset_index()


def quantile_pairs(levels: Sequence[float]) -> list[tuple[float, float, float]]:
    """Symmetric pairs among trained levels: [(level %, lower, upper)], widest first."""
    pairs = [(round(100 * (1 - 2 * p), 6), p, 1 - p) for p in levels
             if p < 0.5 and any(abs(q - (1 - p)) < 1e-9 for q in levels)]
    return sorted(pairs, reverse=True)


def run_backtest(ss: SeriesSet, config: ForecastConfig, folds: int = 3,
                 baselines: Sequence[str] = ("naive", "seasonal_naive", "ets", "theta"),
                 model_name: Optional[str] = None, log=sys.stderr, static=None) -> BacktestResult:
    """Retrain ``config``'s model at every fold and score it with the baselines on the same split.
    static: static covariate table (rnnkit.data.static) used in every fold's training and forecast."""
    H = config.horizon
    if folds < 1:
        raise UserError(f"--folds must be at least 1, got {folds}")
    for b in baselines:
        if b not in BASELINES:
            raise UserError(f"unknown baseline {b!r}; choose from {', '.join(BASELINES)}")
    missing = [b for b in baselines if not available(b)]
    if missing:
        print(f"rnnkit: note: skipping {', '.join(missing)} (needs scipy: pip install 'rnnkit[baselines]')", file=log)
        baselines = [b for b in baselines if b not in missing]
    check_lengths(ss, H, need=folds)
    season = config.season or ss.season
    name = model_name or f"rnnkit-{config.cell}"
    rows, last, frames = [], {}, []
    pairs = quantile_pairs(sorted(config.quantiles))
    for k in range(folds):
        origin = {s.id: len(s) - H * (folds - k) for s in ss.series}
        train = truncate(ss, origin)
        if ss.future_cols:
            train.horizon_future = {s.id: s.future[origin[s.id]:origin[s.id] + H] for s in ss.series}
        print(f"backtest fold {k + 1}/{folds}: training on {sum(origin.values())} points", file=log)
        fc = Forecaster(config=config)
        fc.fit(train, strict=False, static=static)
        q = fc.predict_quantiles(train, static=static)
        q_raw = fc.predict_quantiles(train, static=static, calibrated=False) if fc.calibration else None
        levels = fc.network.cfg.quantiles
        band = interpolate_quantiles(q, levels, [0.1, 0.5, 0.9])
        idx = {p: levels.index(p) for _, lo, hi in pairs for p in (lo, hi)}
        for i, s in enumerate(ss.series):
            o = origin[s.id]
            hist, y = s.y[:o], s.y[o:o + H]
            preds = {name: band[i, :, 1]}
            for b in baselines:
                preds[b] = BASELINES[b](hist, H, season)
            for method, yhat in preds.items():
                row = {"id": s.id, "fold": k + 1, "origin": str(s.times[o - 1]), "method": method,
                       "mase": mase(y, yhat, hist, season), "smape": smape(y, yhat), "rmse": rmse(y, yhat)}
                if method == name:
                    row["pinball"] = pinball(y, q[i], levels)
                    for lv, lo, hi in pairs:
                        row[f"coverage{level_name(lv)}"] = coverage(y, q[i, :, idx[lo]], q[i, :, idx[hi]])
                        if q_raw is not None:
                            row[f"coverage{level_name(lv)}_raw"] = coverage(y, q_raw[i, :, idx[lo]],
                                                                            q_raw[i, :, idx[hi]])
                rows.append(row)
            frame = {"unique_id": s.id, "ds": s.times[o:o + H], "cutoff": s.times[o - 1], "y": y,
                     **preds}
            for lv, lo, _ in pairs:  # utilsforecast's column order: lower bounds widest first
                frame[f"{name}-lo-{level_name(lv)}"] = q[i, :, idx[lo]]
            for lv, _, hi in reversed(pairs):
                frame[f"{name}-hi-{level_name(lv)}"] = q[i, :, idx[hi]]
            frames.append(pd.DataFrame(frame))
            if k == folds - 1:
                last[s.id] = {"history_t": s.times[:o], "history_y": hist, "t": s.times[o:o + H], "y": y,
                              "forecast": band[i, :, 1], "lo": band[i, :, 0], "hi": band[i, :, 2],
                              "naive": preds.get("naive", BASELINES["naive"](hist, H, season))}
    scores = pd.DataFrame(rows)
    cols = [c for c in scores.columns if c in ("mase", "smape", "rmse", "pinball") or c.startswith("coverage")]
    summary = scores.groupby("method", sort=False)[cols].mean().reset_index()
    return BacktestResult(scores, summary, H, folds, season, last, pairs, pd.concat(frames, ignore_index=True),
                          name)


def plot_backtest(res: BacktestResult, path: Path, ids: Optional[Sequence[str]] = None, max_series: int = 4,
                  history: Optional[int] = None, title: str = "") -> Path:
    """PNG of the last fold: history, actual, median forecast, 10-90 % band, naive. Atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = list(ids or list(res.last_fold)[:max_series])
    fig, axes = plt.subplots(len(ids), 1, figsize=(9, 2.8 * len(ids)), squeeze=False)
    keep = history or max(4 * res.horizon, 3 * res.season)
    for ax, sid in zip(axes[:, 0], ids):
        d = res.last_fold[sid]
        ax.plot(d["history_t"][-keep:], d["history_y"][-keep:], color="black", lw=1.2, label="history")
        ax.plot(d["t"], d["y"], color="black", lw=1.2, ls=":", marker=".", label="actual")
        ax.fill_between(d["t"], d["lo"], d["hi"], color="tab:blue", alpha=0.25, label="10-90% band")
        ax.plot(d["t"], d["forecast"], color="tab:blue", lw=1.6, label="rnnkit median")
        ax.plot(d["t"], d["naive"], color="tab:orange", lw=1.0, ls="--", label="naive")
        ax.set_title(f"{title} {sid}".strip(), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)


def write_outputs(res: BacktestResult, out_dir: Path, title: str = "") -> list[Path]:
    """scores.csv (per series/fold/method), summary.csv, summary.md, forecast.png and forecasts.csv
    (every fold's forecasts in utilsforecast's cross-validation layout) in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("scores.csv", res.scores), ("summary.csv", res.summary), ("forecasts.csv", res.forecasts)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)
        written.append(out_dir / name)
    md = out_dir / "summary.md"
    cov = f"\nCoverage of {res.model_name}'s bands ({int(res.coverage()['points'].iloc[0])} points):\n\n" \
        f"{res.coverage_table()}\n" if res.pairs else ""
    atomic_write_text(md, f"Backtest: {res.folds} fold(s), horizon {res.horizon}, season {res.season}\n\n"
                          f"{res.table()}\n{cov}")
    written.append(md)
    written.append(plot_backtest(res, out_dir / "forecast.png", title=title))
    return written

