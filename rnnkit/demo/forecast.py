"""Demo section: forecast real monthly stock prices (AAPL, AMZN, GOOG, IBM, MSFT, 2000-2010)
with one global model, a quantile band and a rolling-origin backtest against naive."""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import pandas as pd

from rnnkit.data.series import load_series
from rnnkit.io import save_figure
from rnnkit.tasks.forecast.backtest import plot_backtest, run_backtest
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster


def stock_csv() -> Path:
    """The shipped Vega stocks file: symbol, date, price (monthly closes)."""
    return Path(str(resources.files("rnnkit.data.datasets") / "stocks" / "stocks.csv"))


def stock_demo(out_dir: Path, quick: bool) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    ss = load_series(stock_csv(), "price", "date", "symbol", quiet=True)
    horizon, folds = 6, (2 if quick else 4)
    # the CLI defaults; --quick trains one member and one calibration twin (about 8x less work)
    cfg = ForecastConfig(horizon=horizon, cell="lstm", progress=not quick,
                         **({"ensemble": 1, "calib_twins": 1} if quick else {}))
    print(f"forecast: backtest on {len(ss.series)} stocks, {folds} folds, horizon {horizon}", file=sys.stderr)
    res = run_backtest(ss, cfg, folds=folds, baselines=("naive", "seasonal_naive", "ets", "theta"))
    bt_png = plot_backtest(res, out_dir / "forecast_backtest.png", title="monthly close, last fold:")

    # The forecast itself: train on all data, predict the 6 months after March 2010.
    fc = Forecaster(config=cfg).fit(ss)
    pred = fc.predict(ss, quantiles=(0.1, 0.5, 0.9))
    fut_png = _plot_future(ss, pred, out_dir / "forecast_future.png")
    msft = pred[pred["id"] == "MSFT"][["time", "forecast", "q0.1", "q0.9"]]
    msft = msft.assign(time=pd.to_datetime(msft["time"]).dt.strftime("%Y-%m"))
    lines = [
        "Monthly closing prices of five stocks (Vega datasets, 2000-2010), one global "
        f"`{cfg.cell}` model over all five, horizon {horizon} months, rolling-origin backtest over {folds} folds. "
        "**Stock prices are close to a random walk**: the last price (naive) is very hard to beat, and a "
        "model that merely matches it is doing as well as can be expected; the quantile band is the "
        "useful output. A win over naive on a few folds is luck, not skill: over 4 folds "
        "(docs/bench/forecast.md) naive is as good or better.",
        "",
        res.table(),
        "",
        f"![backtest]({bt_png.name})  ![forecast]({fut_png.name})",
        "",
        "MSFT, next 6 months (median and 10-90 % band):",
        "",
        "| month | median | q0.1 | q0.9 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {t} | {f:.2f} | {lo:.2f} | {hi:.2f} |" for t, f, lo, hi in msft.itertuples(index=False, name=None)]
    return "\n".join(lines)


def _plot_future(ss, pred: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(ss.series), 1, figsize=(9, 2.2 * len(ss.series)), squeeze=False)
    for ax, s in zip(axes[:, 0], ss.series):
        p = pred[pred["id"] == s.id]
        t = pd.to_datetime(p["time"])
        ax.plot(s.times[-36:], s.y[-36:], color="black", lw=1.2, label="history")
        ax.fill_between(t, p["q0.1"], p["q0.9"], color="tab:blue", alpha=0.25, label="10-90% band")
        ax.plot(t, p["forecast"], color="tab:blue", lw=1.6, label="median forecast")
        ax.set_title(f"{s.id}: next 6 months", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)
