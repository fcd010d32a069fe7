"""The shipped calibration arithmetic (issue 17): one factor for every level ("common"), scores pooled
over the horizon steps, twins weighted by recency (weighted conformal quantile). Numbers only: fast."""
from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from rnnkit.tasks.forecast import calibration as cal
from rnnkit.tasks.forecast.calibration import Calibration, conformal_quantile, fit_factors

LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
Z = np.array([NormalDist().inv_cdf(p) for p in LEVELS])


def test_weighted_conformal_quantile_equals_the_plain_one_for_equal_weights_and_follows_heavy_scores():
    rng = np.random.default_rng(1)
    for n in (1, 7, 20, 101):
        t = rng.normal(size=n)
        for beta in (0.2, 0.5, 0.8, 0.9, 0.95):
            assert conformal_quantile(t, beta) == conformal_quantile(t, beta, np.full(n, 0.25))
    # 100 scores near 0 weighing 1, 100 near 10 weighing 1e-6: the quantile is (almost) that of the first
    t = np.concatenate([rng.uniform(0, 1, 100), rng.uniform(10, 11, 100)])
    w = np.concatenate([np.ones(100), np.full(100, 1e-6)])
    assert conformal_quantile(t, 0.8, w) < 1.0 < 10.0 < conformal_quantile(t, 0.8)
    # and weight 1 out of (total + the test point's 1): the largest score once the rank share is out of reach
    assert conformal_quantile(np.array([1.0, 2.0]), 0.9, np.ones(2)) == 2.0


def test_common_mode_scales_every_pair_by_one_factor_and_restores_nominal_coverage():
    """Quantiles half as wide as the truth (N(0, 1) actuals): one factor ~2 for every level and every
    step; every pair then covers its nominal share of fresh actuals."""
    rng = np.random.default_rng(0)
    H, N = 4, 3000
    q = np.broadcast_to(0.5 * Z, (N, H, len(LEVELS))).copy()
    f = fit_factors(q, rng.normal(size=(N, H)), np.ones((N, H)), LEVELS, mode="common", kind="ratio")
    others = [j for j in range(len(LEVELS)) if LEVELS[j] != 0.5]
    assert np.allclose(f[:, LEVELS.index(0.5)], 1.0) and np.ptp(f[:, others]) == 0.0  # one value everywhere
    assert 1.9 < f[0, 0] < 2.1
    c = Calibration(LEVELS, f, N, 3, "ratio", "common")
    qc, y = c.apply(q), rng.normal(size=(N, H))
    for lo in range(5):
        hi = len(LEVELS) - 1 - lo
        assert abs(np.mean((y >= qc[..., lo]) & (y <= qc[..., hi])) - (LEVELS[hi] - LEVELS[lo])) < 0.03
    back = Calibration.from_dict(c.to_dict())
    assert back.mode == "common" and np.allclose(back.factor, f, atol=1e-6)
    with pytest.raises(ValueError):
        fit_factors(q, y, np.ones((N, H)), LEVELS, mode="common", kind="shift")


def test_steps_are_pooled_and_recent_twins_weigh_more():
    """Step 1's errors are twice as large as step 2's, relative to the model's spread: pooled (the
    default n0 = inf), both steps get one factor between the two; with n0 = 0 each its own. Windows of
    an older twin (index 1) with larger errors widen the bands less at weight TWIN_DECAY than at 1."""
    rng = np.random.default_rng(2)
    N = 4000
    q = np.broadcast_to(Z, (N, 2, len(LEVELS))).copy()
    y = rng.normal(size=(N, 2)) * np.array([2.0, 1.0])
    m = np.ones((N, 2))
    own = fit_factors(q, y, m, LEVELS, n0=0, mode="common")
    pooled = fit_factors(q, y, m, LEVELS, mode="common")
    assert own[0, 0] > 1.8 and own[1, 0] < 1.2
    assert pooled[0, 0] == pooled[1, 0] and own[1, 0] < pooled[0, 0] < own[0, 0]
    # twins: 4000 recent windows at scale 1, 1000 older ones at scale 3
    y2 = np.concatenate([rng.normal(size=(N, 2)), 3 * rng.normal(size=(N // 4, 2))])
    q2, m2 = np.concatenate([q, q[: N // 4]]), np.ones((len(y2), 2))
    twin = np.concatenate([np.zeros(N), np.ones(N // 4)])
    equal = fit_factors(q2, y2, m2, LEVELS, mode="common")
    decayed = fit_factors(q2, y2, m2, LEVELS, mode="common", weights=cal.TWIN_DECAY ** twin)
    assert 1.0 < decayed[0, 0] < equal[0, 0]


def test_pair_mode_fixes_a_band_of_the_wrong_shape_where_one_factor_cannot():
    """The model's quantiles are Gaussian but the errors are Laplace (peaked, heavy tails: what a
    single series' good years and one bad year look like). One common factor leaves the inner pairs
    over-covering; a factor per pair (NEAR_MODE, used with near twins) restores every pair."""
    rng = np.random.default_rng(3)
    H, N = 3, 4000
    q = np.broadcast_to(Z, (N, H, len(LEVELS))).copy()
    fit_y, y = rng.laplace(size=(N, H)), rng.laplace(size=(N, H))
    cover = {}
    for mode in ("common", cal.NEAR_MODE):
        c = Calibration(LEVELS, fit_factors(q, fit_y, np.ones((N, H)), LEVELS, mode=mode), N, 3, "ratio", mode)
        qc = c.apply(q)
        cover[mode] = [np.mean((y >= qc[..., lo]) & (y <= qc[..., -1 - lo])) - (LEVELS[-1 - lo] - LEVELS[lo])
                       for lo in range(5)]
    assert max(abs(e) for e in cover[cal.NEAR_MODE]) < 0.03
    assert cover["common"][-1] > 0.05  # the 40-60 band far too wide under one factor
