"""Classical baselines the RNN must beat: naive, seasonal naive, ETS and Theta.

Own numpy/scipy implementations (``statsforecast`` 2.1.1 requires pandas < 3 and was left
out, see docs/decisions.md); ETS and Theta need scipy, the ``[baselines]`` extra.
Each baseline maps a history ``y: (n,)`` and a horizon to ``(h,)``.

- ETS: additive-error exponential smoothing (Hyndman et al. 2008) with no / additive /
  damped trend and optional additive seasonality, fitted on y or on log y (which gives
  multiplicative seasonality), parameters and initial states by least squares, the model
  chosen by AICc (likelihoods of log fits corrected by the Jacobian so they compare).
- Theta: the M3 winner (Assimakopoulos & Nikolopoulos 2000) as in R's ``forecast::thetaf``:
  classical multiplicative de-seasonalising when the lag-m autocorrelation is significant,
  SES plus half the linear-regression slope.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from rnnkit.tasks.forecast.ets_kernel import sse_and_grad


def naive(y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """Last value repeated."""
    return np.full(h, float(y[-1]))


def seasonal_naive(y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """Value one season earlier; naive when the history is shorter than a season."""
    m = season if season > 1 and len(y) >= season else 1
    last = np.asarray(y[-m:], dtype=np.float64)
    return last[np.arange(h) % m]


def _ets_run(params, y: list, season0: list, trend: str, h: int = 0):
    """One pass of the recursions over y (a list of floats); returns (sse, forecasts (h,)).

    params = alpha, beta/alpha, gamma/(1-alpha), phi, l0, b0 (keeps 0 < beta <= alpha and
    gamma <= 1 - alpha); season0: initial seasonal states ([] for none).
    """
    alpha, beta_f, gamma_f, phi, l, b = (float(v) for v in params[:6])
    beta = alpha * beta_f
    gamma = (1.0 - alpha) * gamma_f
    if trend == "N":
        b, beta, phi = 0.0, 0.0, 0.0
    elif trend == "A":
        phi = 1.0
    s = list(season0) or [0.0]
    if not season0:
        gamma = 0.0
    k = len(s)
    sse = 0.0
    for t, yt in enumerate(y):
        j = t % k
        st = s[j]
        e = yt - (l + phi * b + st)
        sse += e * e
        l = l + phi * b + alpha * e
        b = phi * b + beta * e
        s[j] = st + gamma * e
    n = len(y)
    fc = np.empty(h)
    damp = 0.0
    for i in range(h):
        damp = damp + phi ** (i + 1) if trend == "Ad" else (i + 1.0 if trend == "A" else 0.0)
        fc[i] = l + damp * b + s[(n + i) % k]
    return sse, fc


def _ets_fit(y: np.ndarray, m: int, trend: str, seasonal: bool) -> tuple[float, np.ndarray, list]:
    """Least-squares fit of smoothing parameters and initial level/trend (initial seasonal
    states from the first season, to keep the optimiser small); returns (AICc, params, season0)."""
    n = len(y)
    if seasonal:
        base = float(y[:m].mean())
        s0 = [float(v) for v in y[:m] - base]
        b0 = float(y[m:2 * m].mean() - base) / m if n >= 2 * m else 0.0
    else:
        base, s0 = float(y[0]), []
        b0 = float(y[1] - y[0]) if n > 1 else 0.0
    x0 = np.array([0.3, 0.1, 0.1, 0.95, base, b0])
    bounds = [(1e-4, 0.9999), (1e-4, 0.9999), (1e-4, 0.9999), (0.8, 0.98), (None, None), (None, None)]
    from scipy.optimize import minimize  # scipy comes with the [baselines] extra

    # Only the parameters this model uses are optimised (the others have a zero gradient). The value
    # and its exact gradient come from one pass over y (ets_kernel: forward-mode derivatives, in C).
    active = [0] + [1] * (trend != "N") + [2] * seasonal + [3] * (trend == "Ad") + [4] + [5] * (trend != "N")
    full = x0.copy()
    yy, season0 = np.ascontiguousarray(y, dtype=np.float64), np.asarray(s0, dtype=np.float64)

    def sse(p: np.ndarray) -> tuple[float, np.ndarray]:
        full[active] = p
        value, grad = sse_and_grad(full, yy, season0, trend)
        return value, grad[active]

    res = minimize(sse, x0[active], jac=True, method="L-BFGS-B", bounds=[bounds[i] for i in active],
                   options={"maxiter": 100})
    params = x0.copy()
    params[active] = res.x
    k = 2 + (trend != "N") * 2 + (trend == "Ad") + (m if seasonal else 0)
    sse = max(float(res.fun), 1e-12 * n)
    aic = n * math.log(sse / n) + 2 * k
    aicc = aic + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else 1e9)
    return aicc, params, s0


def ets(y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """Automatic ETS forecast (see module docstring)."""
    with _one_blas_thread():
        return _ets(y, h, season)


def _one_blas_thread():
    """L-BFGS-B on tiny problems is 30x slower when BLAS spins up threads on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _ets(y: np.ndarray, h: int, season: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 3:
        return naive(y, h)
    scale = float(np.mean(np.abs(y))) or 1.0  # conditioning: fit on y / mean|y|
    candidates = []
    transforms = [("id", y / scale)]
    if np.all(y > 0):
        transforms.append(("log", np.log(y / scale)))
    for name, z in transforms:
        jac = 2.0 * float(np.sum(z)) if name == "log" else 0.0  # -2 log|d log y / dy|, in scaled units
        for trend in ("N", "A", "Ad"):
            for seasonal in ([False, True] if season > 1 and len(y) >= 2 * season + 2 else [False]):
                if trend != "N" and len(y) < 5:
                    continue
                aicc, p, s0 = _ets_fit(z, season, trend, seasonal)
                candidates.append((aicc + jac, name, trend, s0, p, z))
    _, name, trend, s0, p, z = min(candidates, key=lambda c: c[0])
    fc = _ets_run(p, [float(v) for v in z], s0, trend, h)[1]
    return (np.exp(fc) if name == "log" else fc) * scale


def _acf(x: np.ndarray, k: int) -> np.ndarray:
    x = x - x.mean()
    d = float(np.dot(x, x)) or 1.0
    return np.array([np.dot(x[: len(x) - j], x[j:]) / d for j in range(1, k + 1)])


def theta(y: np.ndarray, h: int, season: int = 1) -> np.ndarray:
    """Standard Theta method (``forecast::thetaf``)."""
    y = np.asarray(y, dtype=np.float64)
    n, m = len(y), season
    if n < 3:
        return naive(y, h)
    idx = np.ones(m if m > 1 else 1)
    if m > 1 and n >= 2 * m and np.all(y > 0):
        r = _acf(y, m)
        if abs(r[-1]) > 1.645 * math.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / n):
            # classical multiplicative decomposition: ratio to a centred moving average
            w = np.ones(m + 1) / m if m % 2 == 0 else np.ones(m) / m
            if m % 2 == 0:
                w[0] = w[-1] = 0.5 / m
            trend = np.convolve(y, w, mode="valid")
            off = (len(w) - 1) // 2
            ratio = y[off:off + len(trend)] / trend
            idx = np.array([ratio[(j - off) % m::m].mean() for j in range(m)])
            idx = idx / idx.mean()
    k = len(idx)
    x = y / idx[np.arange(n) % k]
    slope = np.polyfit(np.arange(n), x, 1)[0]

    def sse(a: float) -> float:
        level, tot = x[0], 0.0
        for v in x[1:]:
            tot += (v - level) ** 2
            level += a * (v - level)
        return tot

    from scipy.optimize import minimize_scalar

    alpha = float(minimize_scalar(sse, bounds=(1e-3, 0.999), method="bounded").x)
    level = x[0]
    for v in x[1:]:
        level += alpha * (v - level)
    steps = np.arange(h)
    fc = level + slope / 2 * (steps + (1 - (1 - alpha) ** n) / alpha)
    return fc * idx[(n + steps) % k]


def available(name: str) -> bool:
    """ETS and Theta need scipy (``pip install rnnkit[baselines]``); the naive ones need nothing."""
    if name in ("ets", "theta"):
        try:
            import scipy.optimize  # noqa: F401
        except ImportError:
            return False
    return True


BASELINES: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "naive": naive, "seasonal_naive": seasonal_naive, "ets": ets, "theta": theta,
}
