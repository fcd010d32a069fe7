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
FORECAST_EPOCHS = 30       # epochs of about one pass over the windows each (5-50 batches)
FORECAST_MIN_EPOCHS = 5    # a budget that pays for fewer is too small: the plan says so
FORECAST_DEFAULT_BUDGET_S = 120.0  # planning budget (not a hard stop) when the user gives no --max-time;
                                   # shared by the model and its calibration twin
FORECAST_BUDGET_USE = 0.8  # share of the budget planned for optimizer steps (the rest: data, prediction, save)


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
    epochs: int
    reason: str = ""
    chosen: dict = field(default_factory=dict)  # setting -> value, only those the rule picked

    def values(self) -> dict:
        return {"anchor": self.anchor, "ensemble": self.ensemble, "epochs": self.epochs}


def is_seasonal(y: np.ndarray, season: int) -> bool:
    """The M4 competition's seasonality test (90 %: the autocorrelation at lag ``season`` exceeds
    1.645 sqrt((1 + 2 sum_{k<season} acf_k^2) / n)), on the first differences: a trend alone makes
    every lag of the raw series' ACF large. Needs 3 seasons of data."""
    y = np.diff(np.asarray(y, dtype=np.float64))
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


def forecast_plan(stats: ForecastStats, anchor: Optional[str] = None, ensemble: Optional[int] = None,
                  epochs: Optional[int] = None) -> ForecastPlan:
    """The plan for ``stats`` before any budget (see ``forecast_budget``); a value the user gave
    (not None) is kept as it is."""
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
    if epochs is None:
        epochs = FORECAST_EPOCHS
        chosen["epochs"] = epochs
        why.append(f"{epochs} epochs")
    return ForecastPlan(anchor=anchor, ensemble=ensemble, epochs=epochs, reason=_reason(why, stats),
                        chosen=chosen)


def _reason(why: list[str], stats: ForecastStats, note: str = "") -> str:
    if not why:
        return ""
    return (f"auto: {', '.join(why)} [{stats.n_series} series, median length {stats.median_length}, "
            f"{stats.windows} windows{note}]")


def forecast_budget(plan: ForecastPlan, steps_per_epoch: int, step_seconds: float, budget: float) -> ForecastPlan:
    """Fit ``plan`` into ``budget`` seconds of training at ``step_seconds`` per step of one member
    (members run one after the other, so a step of E members costs E times that): first fewer
    members, then fewer epochs (never below ``FORECAST_MIN_EPOCHS``), and only where the rule chose
    the value (``plan.chosen``); the user's own values are kept."""
    usable = FORECAST_BUDGET_USE * budget
    member = max(1e-9, steps_per_epoch * step_seconds)  # one member, one epoch
    ensemble, epochs = plan.ensemble, plan.epochs
    if "ensemble" in plan.chosen:
        ensemble = int(max(1, min(ensemble, usable // (member * epochs))))
    if "epochs" in plan.chosen and ensemble * epochs * member > usable:
        epochs = int(max(FORECAST_MIN_EPOCHS, usable // (member * ensemble)))
    if (ensemble, epochs) == (plan.ensemble, plan.epochs):
        return plan
    chosen = {**plan.chosen, "ensemble": ensemble} if "ensemble" in plan.chosen else dict(plan.chosen)
    if "epochs" in chosen:
        chosen["epochs"] = epochs
    need = plan.ensemble * plan.epochs * member / FORECAST_BUDGET_USE
    reason = plan.reason.replace(f"ensemble {plan.ensemble}", f"ensemble {ensemble}").replace(
        f"{plan.epochs} epochs", f"{epochs} epochs")
    reason = reason[:-1] + f"; the budget of {budget:.0f} s pays for this, the full plan needs ~{need:.0f} s]"
    if ensemble * epochs * member > usable:
        reason += f" (budget too small: expect ~{ensemble * epochs * member / FORECAST_BUDGET_USE:.0f} s)"
    return ForecastPlan(anchor=plan.anchor, ensemble=ensemble, epochs=epochs, reason=reason, chosen=chosen)
