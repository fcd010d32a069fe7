"""Rolling-origin backtest: the model against naive, seasonal naive, ETS and Theta.

Fold k of K puts the forecast origin of a series of length n at ``n - horizon * (K - k)``:
the model is retrained on the data before the origin (all series, as a global model),
then every method forecasts the next ``horizon`` points. Metrics per series and fold:
MASE (scale = in-sample seasonal naive), sMAPE, RMSE; the model also gets the pinball loss
and the coverage of its 80 % band. "overall" rows are means over series and folds.
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

    def table(self) -> str:
        """Markdown table of the overall means, best MASE first."""
        s = self.summary.sort_values("mase")
        lines = ["| method | MASE | sMAPE % | RMSE | 80% coverage |", "|---|---:|---:|---:|---:|"]
        for _, r in s.iterrows():
            cov = "" if pd.isna(r.get("coverage80")) else f"{r['coverage80']:.2f}"
            lines.append(f"| {r['method']} | {r['mase']:.3f} | {r['smape']:.2f} | {r['rmse']:.4g} | {cov} |")
        return "\n".join(lines)

    def per_series(self) -> pd.DataFrame:
        """Mean over folds, one row per (series, method)."""
        return self.scores.groupby(["id", "method"], sort=False)[list(METRICS)].mean().reset_index()


def run_backtest(ss: SeriesSet, config: ForecastConfig, folds: int = 3,
                 baselines: Sequence[str] = ("naive", "seasonal_naive", "ets", "theta"),
                 model_name: Optional[str] = None, log=sys.stderr) -> BacktestResult:
    """Retrain ``config``'s model at every fold and score it with the baselines on the same split."""
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
    rows, last = [], {}
    for k in range(folds):
        origin = {s.id: len(s) - H * (folds - k) for s in ss.series}
        train = truncate(ss, origin)
        if ss.future_cols:
            train.horizon_future = {s.id: s.future[origin[s.id]:origin[s.id] + H] for s in ss.series}
        print(f"backtest fold {k + 1}/{folds}: training on {sum(origin.values())} points", file=log)
        fc = Forecaster(config=config)
        fc.fit(train, strict=False)
        q = fc.predict_quantiles(train)
        levels = fc.network.cfg.quantiles
        band = interpolate_quantiles(q, levels, [0.1, 0.5, 0.9])
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
                    row["coverage80"] = coverage(y, band[i, :, 0], band[i, :, 2])
                rows.append(row)
            if k == folds - 1:
                last[s.id] = {"history_t": s.times[:o], "history_y": hist, "t": s.times[o:o + H], "y": y,
                              "forecast": band[i, :, 1], "lo": band[i, :, 0], "hi": band[i, :, 2],
                              "naive": preds.get("naive", BASELINES["naive"](hist, H, season))}
    scores = pd.DataFrame(rows)
    cols = [c for c in ("mase", "smape", "rmse", "pinball", "coverage80") if c in scores]
    summary = scores.groupby("method", sort=False)[cols].mean().reset_index()
    return BacktestResult(scores, summary, H, folds, season, last)


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
    """scores.csv (per series/fold/method), summary.csv, summary.md, forecast.png in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("scores.csv", res.scores), ("summary.csv", res.summary)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)
        written.append(out_dir / name)
    md = out_dir / "summary.md"
    atomic_write_text(md, f"Backtest: {res.folds} fold(s), horizon {res.horizon}, season {res.season}\n\n{res.table()}\n")
    written.append(md)
    written.append(plot_backtest(res, out_dir / "forecast.png", title=title))
    return written

