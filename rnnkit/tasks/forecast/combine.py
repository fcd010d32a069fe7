"""Forecast combination: the global RNN's median combined with per-series statistical forecasts.

A global RNN learns what series of a panel share; on a small panel of unrelated series that is
little, and per-series exponential smoothing or Theta often do better. Combinations of forecasts
are robust where each member alone is not (M4's "Comb" and SCUM benchmarks): the combined point
forecast is the ``rule`` (mean or median) over the members, per series and horizon step,
of the RNN's median and rnnkit's own ETS and Theta (baselines.py, fitted on each series' last
``MAX_HISTORY`` points at prediction time); "blend" (the automatic choice for small panels) weighs the RNN 2/3
and the mean of ETS and Theta 1/3. The RNN's quantiles (calibrated or not) are shifted by the
change of the median, so the intervals keep their width and stay centred on the point forecast.

Which rule is used is decided by the automatic configuration (autoconfig.forecast_plan, option
``combine``), from the training data; docs/decisions.md has the measurements.
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np

from rnnkit.tasks.forecast.baselines import available, ets, theta

RULES = ("none", "blend", "mean", "median")
BLEND_RNN = 2 / 3  # "blend": this weight on the RNN, the rest on the mean of the statistical members
MAX_HISTORY = 300  # members see at most the last 300 points: bounds ETS's cost (~0.7 s CPU per series at
                   # 300 monthly points) and is what was measured (bench/forecast_suite.py's MAX_LEN)
FIT_COST_POINTS = 50  # one series' ETS + Theta fits cost about what 50 more points do (~25 ms + ~0.7 ms per
                      # point on a 2-core EPYC): a limit in points alone let thousands of 3-point series through
MEMBERS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {"ets": ets, "theta": theta}


def refit_cost(lengths: Sequence[int]) -> int:
    """What the members refit for series of these lengths, in points: each series' last ``MAX_HISTORY``
    points plus ``FIT_COST_POINTS`` for its fits (the unit of ``rnnkit serve --max-combined-points``)."""
    return int(sum(min(int(n), MAX_HISTORY) + FIT_COST_POINTS for n in lengths))


def member_forecasts(histories: Sequence[np.ndarray], horizon: int, season: int) -> np.ndarray:
    """Statistical members' forecasts, (S, M, horizon); NaN where a member failed or is not finite
    (it then drops out of that series' combination)."""
    out = np.full((len(histories), len(MEMBERS), horizon), np.nan)
    for i, y in enumerate(histories):
        y = np.asarray(y, dtype=np.float64)
        y = y[np.isfinite(y)][-MAX_HISTORY:]
        if len(y) == 0:
            continue
        for j, fn in enumerate(MEMBERS.values()):
            try:
                f = np.asarray(fn(y, horizon, season), dtype=np.float64)
            except (ValueError, FloatingPointError, OverflowError, ZeroDivisionError, np.linalg.LinAlgError):
                continue  # a degenerate series: the member sits this one out
            if f.shape == (horizon,) and np.all(np.isfinite(f)):
                out[i, j] = f
    return out


def combine_point(rnn: np.ndarray, members: np.ndarray, rule: str) -> np.ndarray:
    """Combined point forecast (S, H) from the RNN's median ``rnn`` (S, H) and ``members`` (S, M, H),
    per series and step, over the members that are finite: "blend" = ``BLEND_RNN`` rnn + the rest
    times the members' mean; "mean" / "median" over the RNN and the members. Where no member is
    finite the RNN's forecast stays."""
    if rule == "none":
        return rnn
    if rule not in RULES:
        raise ValueError(f"unknown combination rule {rule!r}; choose from {', '.join(RULES)}")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: handled below
        if rule == "blend":
            out = BLEND_RNN * rnn + (1 - BLEND_RNN) * np.nanmean(members, axis=1)
        else:
            stack = np.concatenate([rnn[:, None, :], members], axis=1)
            out = np.nanmedian(stack, axis=1) if rule == "median" else np.nanmean(stack, axis=1)
    return np.where(np.isfinite(out), out, rnn)


def combine_quantiles(q: np.ndarray, levels: Sequence[float], histories: Sequence[np.ndarray], season: int,
                      rule: Optional[str]) -> np.ndarray:
    """Quantiles ``q`` (S, H, Q) at ``levels`` (0.5 among them) moved so that their median is the
    combined point forecast; every level moves by the same amount (widths kept). Rule None (a model
    saved before the option existed) or "none": ``q`` unchanged."""
    if rule in (None, "none") or not available("ets"):
        return q
    mid = list(levels).index(0.5)
    rnn = q[:, :, mid]
    point = combine_point(rnn, member_forecasts(histories, q.shape[1], season), rule)
    return q + (point - rnn)[:, :, None]
