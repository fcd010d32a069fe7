"""The forecasting part of the automatic configuration (rnnkit/tasks/autoconfig.py): the rule itself,
and that ``Forecaster.fit`` applies it, says so in one line, and keeps every user choice."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rnnkit.tasks.autoconfig import (FORECAST_MIN_EPOCHS, ForecastStats, forecast_budget, forecast_plan,
                                     forecast_stats, is_seasonal)
from rnnkit.tasks.forecast.task import Forecaster


def _seasonal(n: int, seed: int, period: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.3 * t + 10 * np.sin(2 * np.pi * t / period) + rng.normal(0, 1, n)


def _walk(n: int, seed: int) -> np.ndarray:
    return 100 + np.cumsum(np.random.default_rng(seed).normal(0, 1, n))


def test_seasonality_test_separates_seasonal_from_trend_and_noise():
    assert all(is_seasonal(_seasonal(96, s), 12) for s in range(5))
    assert not any(is_seasonal(_walk(96, s), 12) for s in range(5))
    assert not is_seasonal(np.arange(96.0) * 3 + 5, 12)      # a trend alone is not seasonal
    assert not is_seasonal(_seasonal(30, 0), 12)             # fewer than 3 seasons: no verdict
    assert not is_seasonal(np.full(96, 7.0), 12)             # flat
    assert not is_seasonal(_seasonal(96, 0), 1)              # no period


def test_plan_anchor_follows_the_share_of_seasonal_series():
    seasonal = forecast_stats([_seasonal(120, s) for s in range(6)], horizon=12, season=12, windows=600)
    assert seasonal.seasonal_share == 1.0
    plan = forecast_plan(seasonal)
    assert plan.anchor == "seasonal" and "anchor seasonal" in plan.reason and "6 series" in plan.reason
    walks = forecast_stats([_walk(120, s) for s in range(6)], horizon=12, season=12, windows=600)
    assert walks.seasonal_share == 0.0 and forecast_plan(walks).anchor == "none"
    yearly = ForecastStats(n_series=10, median_length=30, windows=200, horizon=6, season=1, seasonal_share=0.0)
    assert forecast_plan(yearly).anchor == "none"
    assert "no seasonal period" in forecast_plan(yearly).reason


def test_plan_keeps_user_values_and_says_nothing_when_all_are_given():
    stats = forecast_stats([_seasonal(120, s) for s in range(3)], horizon=12, season=12, windows=300)
    plan = forecast_plan(stats, anchor="naive", ensemble=2, epochs=7, combine="mean")
    assert (plan.anchor, plan.ensemble, plan.epochs, plan.combine, plan.reason, plan.chosen) == \
        ("naive", 2, 7, "mean", "", {})
    plan = forecast_plan(stats, anchor="none")
    assert plan.anchor == "none" and "anchor" not in plan.chosen and "ensemble" in plan.chosen


def test_budget_cuts_members_first_then_epochs_and_keeps_user_values():
    stats = ForecastStats(n_series=5, median_length=100, windows=400, horizon=6, season=1, seasonal_share=0.0)
    plan = forecast_plan(stats)  # 5 members x 30 epochs
    member_epoch = 10 * 0.01      # 10 steps per epoch at 10 ms: 3 s per member for 30 epochs
    assert forecast_budget(plan, 10, 0.01, budget=100.0) is plan            # 15 s of 80 usable: all of it
    two = forecast_budget(plan, 10, 0.01, budget=8.0)                         # 6.4 s usable: 2 members
    assert (two.ensemble, two.epochs) == (2, 30) and "ensemble 2" in two.reason and "budget of 8 s" in two.reason
    one = forecast_budget(plan, 10, 0.01, budget=2.0)                         # 1.6 s: 1 member, 16 epochs
    assert (one.ensemble, one.epochs) == (1, int(0.8 * 2.0 // member_epoch))
    tiny = forecast_budget(plan, 10, 0.01, budget=0.1)
    assert tiny.epochs == FORECAST_MIN_EPOCHS and "budget too small" in tiny.reason
    mine = forecast_plan(stats, ensemble=4, epochs=50)                      # the user's values stay
    assert forecast_budget(mine, 10, 0.01, budget=0.1) is mine


def test_fit_prints_the_plan_and_stores_resolved_settings(capsys):
    t = pd.date_range("2000-01-01", periods=72, freq="MS")
    df = pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": t, "y": _seasonal(72, i)}) for i in range(3)])
    fc = Forecaster(horizon=6, epochs=1, hidden_size=8, calibrate="none").fit(df)
    err = capsys.readouterr().err
    assert "rnnkit: auto: anchor seasonal" in err and err.count("rnnkit: auto:") == 1
    assert fc.config.anchor == "seasonal" and fc.config.ensemble == fc.plan.ensemble
    assert len(fc.network.members) == fc.plan.ensemble
    fixed = Forecaster(horizon=6, epochs=1, hidden_size=8, calibrate="none", ensemble=1, anchor="none",
                       combine="none").fit(df)
    assert fixed.config.ensemble == 1 and fixed.config.anchor == "none" and fixed.plan.chosen == {}


def test_anchored_linear_path_starts_at_seasonal_naive_and_naive():
    import torch

    from rnnkit.tasks.forecast.network import ForecastModel, NetConfig, anchor_highway

    cfg = NetConfig(context=24, horizon=6, ensemble=2, hidden_size=8)
    y = torch.tensor(_seasonal(24, 0), dtype=torch.float32)[None]
    b = {"y_ctx": y, "m_ctx": torch.ones_like(y), "x_ctx": torch.zeros(1, 24, 0), "f_hor": torch.zeros(1, 6, 0)}
    for kind, want in (("seasonal", y[0, 12:18]), ("naive", y[0, -1].repeat(6))):
        model = ForecastModel(cfg, seed=0)
        anchor_highway(model, kind, season=12)
        for net in model.members:  # silence the recurrent part: only the linear path speaks
            torch.nn.init.zeros_(net.head[-1].weight)
            torch.nn.init.zeros_(net.head[-1].bias)
        q = model.predict(b)[0]
        assert torch.allclose(q, want[:, None].expand(6, len(cfg.quantiles)), rtol=1e-5, atol=1e-3)


def test_a_tight_budget_trains_fewer_members(capsys):
    t = pd.date_range("2000-01-01", periods=72, freq="MS")
    df = pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": t, "y": _walk(72, i)}) for i in range(3)])
    fc = Forecaster(horizon=6, hidden_size=8, calibrate="none", max_time=0.05).fit(df)
    err = capsys.readouterr().err
    assert fc.config.ensemble < 5 and "budget of" in err and len(fc.network.members) == fc.config.ensemble
