"""ETS's sum of squared errors and its exact gradient in one pass over the series.

``baselines._ets_fit`` minimises the one-step sum of squared errors of the ETS recursions with
L-BFGS-B. With a finite-difference gradient every optimiser step costs one pass per free parameter
plus one, in Python: 43 % of a default ``forecast train`` on 5 monthly series went there (the
calibration twins refit ETS at every window of the blend). Here the derivatives of the states with
respect to the six parameters are carried along the recursion (forward mode), so one pass gives the
value and the whole gradient, in C where a compiler is present (``rnnkit.nn.kernels.lazy_library``,
the kernels' build cache) and in Python otherwise; both compute the same numbers up to rounding.

Parameters ``p`` (6,) as in ``baselines._ets_run``: alpha, beta / alpha, gamma / (1 - alpha), phi,
initial level, initial trend; ``trend``: "N" | "A" | "Ad"; ``season0`` (k,) initial seasonal states
(empty: no season).
"""
from __future__ import annotations

import ctypes
from typing import Optional

import numpy as np

from rnnkit.nn.kernels import lazy_library

TRENDS = {"N": 0, "A": 1, "Ad": 2}

SOURCE = r"""
#include <stdint.h>

/* p (6): alpha, beta_f, gamma_f, phi, l0, b0; trend 0 N, 1 A, 2 Ad; k = 0: no season.
   grad (6) out; work: s (max(k, 1)), ds (6 max(k, 1)). Returns the sum of squared one-step errors. */
double ets_sse_grad(const double *p, const double *y, int64_t n, const double *s0, int64_t k, int64_t trend,
                    double *grad, double *s, double *ds) {
    double alpha = p[0], bf = p[1], gf = p[2], phi = p[3], l = p[4], b = p[5];
    double beta = alpha * bf, gamma = (1.0 - alpha) * gf, free_phi = 0.0;
    if (trend == 0) { b = 0.0; beta = 0.0; phi = 0.0; }
    else if (trend == 1) { phi = 1.0; }
    else { free_phi = 1.0; }
    if (k == 0) gamma = 0.0;
    int64_t K = k > 0 ? k : 1;
    for (int64_t j = 0; j < K; j++) {
        s[j] = k > 0 ? s0[j] : 0.0;
        for (int q = 0; q < 6; q++) ds[j * 6 + q] = 0.0;
    }
    double dl[6] = {0, 0, 0, 0, 1, 0}, db[6] = {0, 0, 0, 0, 0, trend ? 1.0 : 0.0};
    double dalpha[6] = {1, 0, 0, 0, 0, 0};
    double dbeta[6] = {trend ? bf : 0.0, trend ? alpha : 0.0, 0, 0, 0, 0};
    double dgamma[6] = {k ? -gf : 0.0, 0, k ? 1.0 - alpha : 0.0, 0, 0, 0};
    double g[6] = {0, 0, 0, 0, 0, 0}, sse = 0.0, de[6];
    for (int64_t t = 0; t < n; t++) {
        int64_t j = t % K;
        double st = s[j], e = y[t] - (l + phi * b + st);
        double *dsj = ds + j * 6;
        sse += e * e;
        for (int q = 0; q < 6; q++) {
            double dpb = phi * db[q] + (q == 3 ? free_phi * b : 0.0);  /* d(phi b) */
            de[q] = -(dl[q] + dpb + dsj[q]);
            g[q] += 2.0 * e * de[q];
            dl[q] = dl[q] + dpb + alpha * de[q] + e * dalpha[q];
            db[q] = dpb + beta * de[q] + e * dbeta[q];
            dsj[q] = dsj[q] + gamma * de[q] + e * dgamma[q];
        }
        l = l + phi * b + alpha * e;
        b = phi * b + beta * e;
        s[j] = st + gamma * e;
    }
    for (int q = 0; q < 6; q++) grad[q] = g[q];
    return sse;
}
"""

_P = ctypes.c_void_p
_I = ctypes.c_int64
_build = lazy_library("ets", SOURCE, [], {"ets_sse_grad": [_P, _P, _I, _P, _I, _I, _P, _P, _P]})


def _lib() -> Optional[ctypes.CDLL]:
    """The compiled kernel (None without a compiler), its return type set once."""
    lib = _build()
    if lib is not None and lib.ets_sse_grad.restype is not ctypes.c_double:
        lib.ets_sse_grad.restype = ctypes.c_double
    return lib


def sse_and_grad(p: np.ndarray, y: np.ndarray, season0: np.ndarray, trend: str) -> tuple[float, np.ndarray]:
    """(sum of squared one-step errors, its gradient (6,) with respect to ``p``). y: (n,) float64."""
    lib = _lib()
    if lib is None:
        return sse_and_grad_python(p, y, season0, trend)
    p = np.ascontiguousarray(p, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    s0 = np.ascontiguousarray(season0, dtype=np.float64)
    K = max(len(s0), 1)
    grad, s, ds = np.empty(6), np.empty(K), np.empty(6 * K)
    sse = lib.ets_sse_grad(p.ctypes.data, y.ctypes.data, len(y), s0.ctypes.data, len(s0), TRENDS[trend],
                           grad.ctypes.data, s.ctypes.data, ds.ctypes.data)
    return float(sse), grad


def sse_and_grad_python(p: np.ndarray, y: np.ndarray, season0: np.ndarray, trend: str) -> tuple[float, np.ndarray]:
    """The same computation as the C kernel, in Python (no compiler, and the test's reference)."""
    alpha, bf, gf, phi, l, b = (float(v) for v in p[:6])
    beta, gamma, free_phi = alpha * bf, (1.0 - alpha) * gf, 0.0
    code = TRENDS[trend]
    if code == 0:
        b, beta, phi = 0.0, 0.0, 0.0
    elif code == 1:
        phi = 1.0
    else:
        free_phi = 1.0
    k = len(season0)
    if k == 0:
        gamma = 0.0
    s = [float(v) for v in season0] or [0.0]
    ds = [[0.0] * 6 for _ in s]
    dl, db = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0 if code else 0.0]
    dalpha = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    dbeta = [bf if code else 0.0, alpha if code else 0.0, 0.0, 0.0, 0.0, 0.0]
    dgamma = [-gf if k else 0.0, 0.0, 1.0 - alpha if k else 0.0, 0.0, 0.0, 0.0]
    g, sse, K = [0.0] * 6, 0.0, len(s)
    for t, yt in enumerate(y.tolist()):
        j = t % K
        st, dsj = s[j], ds[j]
        e = yt - (l + phi * b + st)
        sse += e * e
        for q in range(6):
            dpb = phi * db[q] + (free_phi * b if q == 3 else 0.0)
            de = -(dl[q] + dpb + dsj[q])
            g[q] += 2.0 * e * de
            dl[q] = dl[q] + dpb + alpha * de + e * dalpha[q]
            db[q] = dpb + beta * de + e * dbeta[q]
            dsj[q] = dsj[q] + gamma * de + e * dgamma[q]
        l, b = l + phi * b + alpha * e, phi * b + beta * e
        s[j] = st + gamma * e
    return sse, np.array(g)
