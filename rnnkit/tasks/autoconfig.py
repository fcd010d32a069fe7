"""Automatic configuration: data statistics + time budget -> a training plan (issue 14).

Pure functions only (no torch, no training), so every rule is unit-testable and a task calls
them once at the start of ``fit``. Each plan carries a one-line ``reason`` that the task prints.
Tasks add their own ``<task>_stats`` / ``<task>_plan`` pair here; the rules are written down in
docs/decisions.md ("Automatic configuration").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

# ============================================================================================ forecasting
# Forecasting (``forecast_stats`` -> ``forecast_plan``), chosen on the training parts of the dev suite
# (bench/forecast_suite.py tune; numbers in docs/benchmarks.md):
# - anchor: the network's linear path starts at seasonal naive when most series are seasonal at the
#   data's period (ACF test below), else at zero; the network learns the correction;
# - ensemble: members with different initialisations (quantiles averaged); small panels train few
#   optimizer steps per member, so more members cost little and remove most of the seed noise;
# - training length stays in epochs of about one pass over the windows (``steps_per_epoch``).

FORECAST_SEASONAL_SHARE = 0.5  # share of series with significant seasonality that makes the panel seasonal
FORECAST_MAX_ENSEMBLE = 5


@dataclass
class ForecastStats:
    """What the forecasting rule looks at (all from the training series)."""

    n_series: int
    median_length: int
    windows: int            # training (series, origin) pairs
    horizon: int
    season: int
    seasonal_share: float   # share of series whose ACF at lag ``season`` is significant (0 when season 1)


@dataclass
class ForecastPlan:
    """Settings chosen for one training run; ``reason`` is the one line printed at the start."""

    anchor: str
    ensemble: int
    reason: str = ""
    chosen: dict = field(default_factory=dict)  # setting -> value, only those the rule picked

    def values(self) -> dict:
        return {"anchor": self.anchor, "ensemble": self.ensemble}


def is_seasonal(y: np.ndarray, season: int) -> bool:
    """The M4 competition's seasonality test: the autocorrelation at lag ``season`` exceeds
    1.645 sqrt((1 + 2 sum_{k<season} acf_k^2) / n) (90 %, one-sided). Needs 3 seasons of data."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if season <= 1 or n < 3 * season:
        return False
    x = y - y.mean()
    den = float(np.dot(x, x))
    if den <= 0:
        return False
    acf = np.array([np.dot(x[:n - k], x[k:]) / den for k in range(1, season + 1)])
    limit = 1.645 * math.sqrt((1 + 2 * float(np.sum(acf[:-1] ** 2))) / n)
    return bool(abs(acf[-1]) > limit)


def forecast_stats(series: Sequence[np.ndarray], horizon: int, season: int, windows: int) -> ForecastStats:
    """Statistics of the training series (each (n,) values) for ``forecast_plan``."""
    lengths = [len(y) for y in series]
    share = float(np.mean([is_seasonal(y, season) for y in series])) if season > 1 and series else 0.0
    return ForecastStats(n_series=len(series), median_length=int(np.median(lengths)) if lengths else 0,
                         windows=int(windows), horizon=int(horizon), season=int(season), seasonal_share=share)


def forecast_plan(stats: ForecastStats, anchor: Optional[str] = None, ensemble: Optional[int] = None
                  ) -> ForecastPlan:
    """The plan for ``stats``; a value given by the user (not None) is kept as it is."""
    chosen, why = {}, []
    if anchor is None:
        seasonal = stats.season > 1 and stats.seasonal_share >= FORECAST_SEASONAL_SHARE
        anchor = "seasonal" if seasonal else "none"
        chosen["anchor"] = anchor
        why.append(f"anchor {anchor} ({stats.seasonal_share:.0%} of series seasonal at period {stats.season})"
                   if stats.season > 1 else f"anchor {anchor} (no seasonal period)")
    if ensemble is None:
        ensemble = FORECAST_MAX_ENSEMBLE
        chosen["ensemble"] = ensemble
        why.append(f"ensemble {ensemble}")
    reason = ("auto: " + ", ".join(why) + f" [{stats.n_series} series, median length {stats.median_length}, "
              f"{stats.windows} windows]") if why else ""
    return ForecastPlan(anchor=anchor, ensemble=ensemble, reason=reason, chosen=chosen)
