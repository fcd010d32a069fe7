"""Forecast combination (rnnkit/tasks/forecast/combine.py): the rule, the quantile shift, the
automatic choice, and a small real training that uses it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnkit.tasks.autoconfig import FORECAST_COMBINE, FORECAST_COMBINE_MAX_SERIES, ForecastStats, forecast_plan
from rnnkit.tasks.forecast.combine import combine_point, combine_quantiles, member_forecasts
from rnnkit.tasks.forecast.task import Forecaster, interpolate_quantiles


def quarterly_panel(n_series: int, seed: int) -> pd.DataFrame:
    """``n_series`` quarterly series of 60 points: a trend per series, a season of 4, noise."""
    t = pd.date_range("2000-01-01", periods=60, freq="QS")
    rng = np.random.default_rng(seed)
    return pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": t,
                                    "y": 50 + (i + 1) * np.arange(60) + 5 * np.sin(np.arange(60) * np.pi / 2)
                                    + rng.normal(0, 1, 60)}) for i in range(n_series)])


def test_rule_mean_and_median_over_finite_members():
    rnn = np.array([[1.0, 2.0], [10.0, 10.0]])
    members = np.array([[[4.0, 2.0], [7.0, 8.0]],        # series 0: ETS, Theta
                        [[np.nan, np.nan], [20.0, 30.0]]])  # series 1: ETS failed -> drops out
    assert np.allclose(combine_point(rnn, members, "mean"), [[4.0, 4.0], [15.0, 20.0]])
    assert np.allclose(combine_point(rnn, members, "median"), [[4.0, 2.0], [15.0, 20.0]])
    # blend: 2/3 RNN + 1/3 mean of the finite members
    assert np.allclose(combine_point(rnn, members, "blend"), [[2.5, 3.0], [40 / 3, 50 / 3]])
    nothing = np.full_like(members, np.nan)
    assert np.allclose(combine_point(rnn, nothing, "blend"), rnn)      # no member: the RNN alone
    assert combine_point(rnn, members, "none") is rnn
    with pytest.raises(ValueError):
        combine_point(rnn, members, "max")


def test_quantiles_move_with_the_median_and_keep_their_widths():
    t = np.arange(48.0)
    hist = [100 + 0.5 * t, 50 + 0.0 * t]                        # a clean trend, a flat line
    levels = (0.1, 0.5, 0.9)
    q = np.stack([np.stack([np.full(6, 80.0), np.full(6, 90.0), np.full(6, 100.0)], -1),
                  np.stack([np.full(6, 49.0), np.full(6, 50.0), np.full(6, 51.0)], -1)])  # (2, 6, 3)
    out = combine_quantiles(q, levels, hist, season=1, rule="median")
    assert out.shape == q.shape and np.all(np.isfinite(out))
    assert np.allclose(np.diff(out, axis=-1), np.diff(q, axis=-1))       # widths kept, order kept
    # ETS and Theta continue the trend (~124..127); the median of {90, ETS, Theta} is pulled up to them
    assert np.all(out[0, :, 1] > 115)
    assert np.allclose(out[1, :, 1], 50.0, atol=0.5)                    # all agree on the flat series
    assert combine_quantiles(q, levels, hist, 1, None) is q             # models saved before the option
    members = member_forecasts([np.array([np.nan, 1.0, 2.0, 3.0, 4.0])], 3, 1)
    assert members.shape == (1, 2, 3) and np.all(np.isfinite(members))


def test_plan_combines_small_panels_and_keeps_the_user_value():
    small = ForecastStats(n_series=10, median_length=100, windows=800, horizon=8, season=4, seasonal_share=1.0)
    plan = forecast_plan(small)
    assert plan.combine == FORECAST_COMBINE and plan.chosen["combine"] == FORECAST_COMBINE
    assert plan.values()["combine"] == FORECAST_COMBINE
    big = ForecastStats(n_series=FORECAST_COMBINE_MAX_SERIES + 1, median_length=30, windows=9000, horizon=6,
                        season=1, seasonal_share=0.0)
    assert forecast_plan(big).combine == "none" and "RNN alone" in forecast_plan(big).reason
    guess = ForecastStats(n_series=3, median_length=300, windows=800, horizon=6, season=1, seasonal_share=0.0,
                          season_known=False)                                   # integer times, no --season
    assert forecast_plan(guess).combine == "none" and "season unknown" in forecast_plan(guess).reason
    mine = forecast_plan(small, combine="none")
    assert mine.combine == "none" and "combine" not in mine.chosen


def test_real_training_uses_the_combination(tmp_path):
    df = quarterly_panel(3, seed=0)
    fc = Forecaster(horizon=4, epochs=2, hidden_size=8, calibrate="none", ensemble=1).fit(df)
    assert fc.config.combine == FORECAST_COMBINE != "none"
    ss = fc.load_data(df)
    q = fc.predict_quantiles(ss)
    fc.config.combine = "none"
    raw = fc.predict_quantiles(ss)
    assert np.all(np.isfinite(q)) and not np.allclose(q, raw)
    assert np.allclose(q - q[..., :1], raw - raw[..., :1])               # the same band, moved
    fc.config.combine = FORECAST_COMBINE
    fc.save(tmp_path / "m")
    import rnnkit

    back = rnnkit.load(tmp_path / "m")
    assert back.config.combine == FORECAST_COMBINE
    pred = back.predict(df)
    mid = interpolate_quantiles(q, fc.network.cfg.quantiles, [0.5])[..., 0].reshape(-1)
    assert np.allclose(pred["forecast"].to_numpy(), mid, rtol=1e-5)


def test_calibration_twins_score_the_combined_forecast():
    """The calibration windows are centred where predict puts the band: on the combination."""
    from rnnkit.tasks.forecast.calibration import holdout_windows
    from rnnkit.tasks.forecast.combine import member_forecasts

    df = quarterly_panel(2, seed=1)
    fc = Forecaster(horizon=4, epochs=2, hidden_size=8, calibrate="none", ensemble=1).fit(df)
    ss = fc.load_data(df)
    q, y, m, used = holdout_windows(fc, ss, 4, span=1)        # one window per series, at its cut
    assert used == 2 and q.shape[:2] == (2, 4)
    mid = list(fc.network.cfg.quantiles).index(0.5)
    hist = [s.y[:56] for s in ss.series]
    members = member_forecasts(hist, 4, fc.season)
    fc.config.combine = "none"                                # the same twin (seeded), RNN alone
    q_rnn, y_rnn, _, _ = holdout_windows(fc, ss, 4, span=1)
    fc.config.combine = FORECAST_COMBINE
    shift = combine_point(q_rnn[:, :, mid], members, FORECAST_COMBINE) - q_rnn[:, :, mid]
    assert np.abs(shift).max() > 1e-3                          # the members do move the point
    assert np.allclose(q, q_rnn + shift[:, :, None], atol=1e-4) and np.allclose(y, y_rnn)
    assert np.all(np.isfinite(q)) and np.allclose(y, np.stack([s.y[56:60] for s in ss.series]))
