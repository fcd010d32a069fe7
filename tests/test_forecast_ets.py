"""ETS's one-pass value and gradient (ets_kernel): the same sum of squares as the forecasting
recursion, the gradient of that sum (central differences), C and Python alike; and the fit it
drives still beats seasonal naive on airline."""
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.tasks.forecast.baselines import _ets_run, ets, seasonal_naive
from rnnkit.tasks.forecast.ets_kernel import sse_and_grad, sse_and_grad_python


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["N", "A", "Ad"]), st.sampled_from([0, 4, 12]), st.integers(3, 60), st.integers(0, 10_000))
def test_value_and_gradient_match_the_recursion(trend, k, n, seed):
    rng = np.random.default_rng(seed)
    y = np.cumsum(rng.normal(size=n)) + (3 * np.sin(np.arange(n) * 2 * np.pi / k) if k else 0)
    s0 = rng.normal(size=k)
    p = np.array([rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95),
                  rng.uniform(0.8, 0.98), rng.normal(), rng.normal(0, 0.3)])
    value, grad = sse_and_grad(p, y, s0, trend)
    ref = _ets_run(p, list(y), list(s0), trend)[0]
    assert value == pytest.approx(ref, rel=1e-12, abs=1e-12)
    py_value, py_grad = sse_and_grad_python(p, y, s0, trend)
    assert py_value == pytest.approx(value, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(py_grad, grad, rtol=1e-9, atol=1e-9 * (1 + abs(value)))
    for q in range(6):
        h = 1e-6 * max(1.0, abs(p[q]))
        up, down = p.copy(), p.copy()
        up[q] += h
        down[q] -= h
        num = (_ets_run(up, list(y), list(s0), trend)[0] - _ets_run(down, list(y), list(s0), trend)[0]) / (2 * h)
        assert grad[q] == pytest.approx(num, rel=1e-4, abs=1e-5 * (1 + abs(value))), (q, trend, k)


def test_ets_fit_with_the_exact_gradient_beats_seasonal_naive_on_airline():
    path = resources.files("rnnkit.data.datasets") / "airline" / "airline.csv"
    y = pd.read_csv(path)["passengers"].to_numpy(float)
    err, naive_err = [], []
    for cut in (108, 120, 132):
        err.append(np.mean(np.abs(ets(y[:cut], 12, 12) - y[cut:cut + 12])))
        naive_err.append(np.mean(np.abs(seasonal_naive(y[:cut], 12, 12) - y[cut:cut + 12])))
    assert np.mean(err) < 0.8 * np.mean(naive_err), (err, naive_err)
