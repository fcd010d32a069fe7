"""Automatic autoregression: a cheap ARIMA-like per-series forecaster (numpy only). A candidate member
of the forecast combination (bench/forecast_combo.py); tried on the training parts, not chosen.

ARIMA's strength on small panels is the autoregressive part: cycles (sunspots, lynx) and
mean reversion that exponential smoothing and Theta cannot represent. ``auto_ar`` fits
AR(p) with an intercept by least squares on the series after ``d`` ordinary and ``D`` seasonal
differences (d, D in {0, 1}; an intercept after differencing is a drift), chooses p by AICc for
each (d, D), then chooses (d, D) by the error of a forecast of the last ``min(h, n/4)`` points
from the points before them (refitted), and forecasts recursively. Unstable forecasts (far outside
the history's range) fall back to naive. Shapes: ``y`` (n,) -> (h,).
"""
from __future__ import annotations

import math

import numpy as np

MAX_P = 12  # longest lag besides the season's (the season + 1 is allowed for seasonal data)


def _diff(y: np.ndarray, d: int, D: int, m: int) -> np.ndarray:
    z = y
    if D:
        z = z[m:] - z[:-m]
    if d:
        z = np.diff(z)
    return z


def _undiff(y: np.ndarray, fz: np.ndarray, d: int, D: int, m: int) -> np.ndarray:
    """Forecasts of y (h,) from forecasts of the differenced series fz (h,)."""
    h = len(fz)
    if D:
        s = y[m:] - y[:-m]                          # seasonal differences so far
        if d:
            last = s[-1]
            fs = last + np.cumsum(fz)
        else:
            fs = fz
        ext = list(y)
        for i in range(h):
            ext.append(ext[-m] + fs[i])
        return np.array(ext[len(y):])
    if d:
        return y[-1] + np.cumsum(fz)
    return fz


def _design(z: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(z)
    X = np.column_stack([np.ones(n - p)] + [z[p - i - 1:n - i - 1] for i in range(p)])
    return X, z[p:]


def _fit(z: np.ndarray, p_max: int) -> tuple[int, np.ndarray]:
    """(p, coefficients [c, a_1..a_p]) with the smallest AICc; p = 0 is the mean."""
    best = (math.inf, 0, np.array([float(np.mean(z))]))
    for p in range(0, p_max + 1):
        if len(z) - p < p + 4:
            break
        X, t = _design(z, p) if p else (np.ones((len(z), 1)), z)
        # the same rows for every p (from p_max on) would compare better, but short series lose data
        coef, *_ = np.linalg.lstsq(X, t, rcond=None)
        n, k = len(t), p + 2
        sse = float(np.sum((t - X @ coef) ** 2))
        if n - k - 1 <= 0:
            break
        aicc = n * math.log(max(sse / n, 1e-300)) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
        if aicc < best[0]:
            best = (aicc, p, coef)
    return best[1], best[2]


def _forecast(z: np.ndarray, p: int, coef: np.ndarray, h: int) -> np.ndarray:
    hist = list(z[-p:]) if p else []
    out = np.empty(h)
    for i in range(h):
        v = coef[0] + sum(coef[j + 1] * hist[-j - 1] for j in range(p))
        out[i] = v
        hist.append(v)
    return out


def _one(y: np.ndarray, h: int, m: int, d: int, D: int) -> np.ndarray:
    z = _diff(y, d, D, m)
    p_max = min(MAX_P if m <= 1 else max(MAX_P, m + 1), len(z) // 3)
    p, coef = _fit(z, p_max)
    return _undiff(y, _forecast(z, p, coef, h), d, D, m)


def auto_ar(y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """Automatic AR forecast (module docstring)."""
    y = np.asarray(y, dtype=np.float64)
    n, m = len(y), season
    if n < 10:
        return np.full(h, float(y[-1]))
    orders = [(d, 0) for d in (0, 1)]
    if m > 1 and n >= 4 * m:
        orders += [(0, 1), (1, 1)]
    v = max(1, min(h, n // 4))
    scale = float(np.ptp(y)) or 1.0
    best, choice = math.inf, (1, 0)
    for d, D in orders:
        try:
            f = _one(y[:-v], v, m, d, D)
        except (np.linalg.LinAlgError, ValueError):
            continue
        err = float(np.mean(np.abs(f - y[-v:])))
        if np.isfinite(err) and err < best:
            best, choice = err, (d, D)
    f = _one(y, h, m, *choice)
    if not np.all(np.isfinite(f)) or np.max(np.abs(f - y[-1])) > 3 * scale:
        return np.full(h, float(y[-1]))  # an explosive fit: naive instead
    return f
