"""Forecast accuracy metrics (M4 / Monash definitions).

All take numpy arrays: ``y`` and ``yhat`` of shape (h,) for one series and horizon;
``insample`` is the history before the forecast origin (for MASE's scale).
"""
from __future__ import annotations

import numpy as np


def mase_scale(insample: np.ndarray, season: int = 1) -> float:
    """Mean absolute error of the in-sample seasonal naive forecast (falls back to lag 1,
    then to the mean level, for histories too short or flat to define it)."""
    x = np.asarray(insample, dtype=np.float64)
    for m in (season, 1):
        if m >= 1 and len(x) > m:
            d = np.mean(np.abs(x[m:] - x[:-m]))
            if d > 0:
                return float(d)
    level = float(np.mean(np.abs(x))) if len(x) else 1.0
    return level if level > 0 else 1.0


def mase(y: np.ndarray, yhat: np.ndarray, insample: np.ndarray, season: int = 1) -> float:
    """Mean absolute scaled error (Hyndman & Koehler 2006): MAE / in-sample seasonal-naive MAE."""
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(yhat))) / mase_scale(insample, season))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent, 0..200 (M4 definition); 0/0 terms count as 0."""
    y, yhat = np.asarray(y, np.float64), np.asarray(yhat, np.float64)
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(2.0 * np.abs(y - yhat), den, out=np.zeros_like(den), where=den > 0)
    return float(100.0 * np.mean(ratio))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error, in data units."""
    return float(np.sqrt(np.mean((np.asarray(y, np.float64) - np.asarray(yhat, np.float64)) ** 2)))


def pinball(y: np.ndarray, qhat: np.ndarray, levels) -> float:
    """Mean pinball (quantile) loss. y: (h,); qhat: (h, Q) forecasts for the Q ``levels``."""
    y = np.asarray(y, np.float64)[:, None]
    lv = np.asarray(levels, np.float64)[None, :]
    diff = y - np.asarray(qhat, np.float64)
    return float(np.mean(np.maximum(lv * diff, (lv - 1.0) * diff)))


def coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of actual values inside [lo, hi]."""
    y = np.asarray(y)
    return float(np.mean((y >= lo) & (y <= hi)))
