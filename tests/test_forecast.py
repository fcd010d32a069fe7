"""Forecaster quality on small real models: sine, scaling, trend, airline vs seasonal naive,
short series, covariates, quantiles, save/load. Small models and few steps (seconds each)."""
from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit.data.series import load_series
from rnnkit.errors import UserError
from rnnkit.metrics.forecast import rmse
from rnnkit.tasks.forecast.backtest import run_backtest
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster

torch.set_num_threads(1)
# interval calibration (a second training) is tested in test_forecast_nixtla.py; point forecasts don't need it
FAST = dict(ensemble=1, hidden_size=32, epochs=8, steps_per_epoch=25, batch_size=32, progress=False, calibrate="none")


def _airline() -> pd.DataFrame:
    path = resources.files("rnnkit.data.datasets") / "airline" / "airline.csv"
    return pd.read_csv(path)


def test_sine_one_step_rmse_small():
    t = np.arange(400)
    df = pd.DataFrame({"y": np.sin(2 * np.pi * t / 25)})
    m = Forecaster(horizon=1, cell="lstm", **FAST).fit(df.iloc[:-40], target="y")
    preds = []
    for end in range(360, 400):  # one-step forecasts over the last 40 points, from true history
        preds.append(m.predict(df.iloc[:end])["forecast"].iloc[0])
    assert rmse(df["y"].to_numpy()[360:], preds) < 0.08


@pytest.mark.parametrize("offset, amp", [(5000.0, 1000.0), (0.0, 0.001)])
def test_scale_does_not_matter(offset, amp):
    """A series in the thousands (or in thousandths) is forecast as well as one near 1."""
    t = np.arange(300)
    y = offset + amp * np.sin(2 * np.pi * t / 12)
    m = Forecaster(horizon=6, cell="gru", **FAST).fit(pd.DataFrame({"y": y[:-6]}), target="y")
    f = m.predict(pd.DataFrame({"y": y[:-6]}))["forecast"].to_numpy()
    assert rmse(y[-6:], f) / amp < 0.15


def test_trend_extrapolates_beyond_training_range():
    df = pd.DataFrame({"y": np.arange(1.0, 101.0)})
    m = Forecaster(horizon=5, cell="lstm", **FAST).fit(df, target="y")
    f = m.predict(df)["forecast"].to_numpy()
    assert np.max(np.abs(f - np.arange(101.0, 106.0))) < 3.0
    # a far larger, unseen trend: per-window scaling keeps the cells in range
    big = pd.DataFrame({"y": 1000.0 + 10.0 * np.arange(60)})
    g = m.predict(big)["forecast"].to_numpy()
    assert np.max(np.abs(g - (1000.0 + 10.0 * np.arange(60, 65)))) < 30.0


def test_airline_beats_seasonal_naive_in_backtest():
    ss = load_series(_airline(), "passengers", "month", quiet=True)
    # the defaults (lstm, 30 epochs of 5 batches, anchor chosen from the data) but one member, for time
    cfg = ForecastConfig(horizon=12, progress=False, calibrate="none", ensemble=1)
    res = run_backtest(ss, cfg, folds=2, baselines=("naive", "seasonal_naive"), log=open("/dev/null", "w"))
    s = res.summary.set_index("method")["mase"]
    assert s["rnnkit-lstm"] < 0.9 * s["seasonal_naive"] and s["seasonal_naive"] < s["naive"], s.to_dict()


def test_short_series_global_model_and_unseen_series():
    rng = np.random.default_rng(0)
    rows = []
    for k in range(20):  # 15 annual points each, horizon 6
        level, slope = rng.uniform(50, 500), rng.uniform(-2, 8)
        for i in range(15):
            rows.append({"id": f"s{k}", "year": 1990 + i, "v": level + slope * i + rng.normal(0, 2)})
    df = pd.DataFrame(rows)
    m = Forecaster(horizon=6, cell="gru", **FAST).fit(df, target="v", time_col="year", id_col="id")
    out = m.predict(df)
    assert len(out) == 20 * 6 and np.isfinite(out["forecast"]).all()
    assert out["time"].iloc[0] == 2005
    # an unseen, 3-point series still gets a forecast (padded and masked)
    new = pd.DataFrame({"id": ["new"] * 3, "year": [2000, 2001, 2002], "v": [10.0, 11.0, 12.0]})
    f = m.predict(new)["forecast"].to_numpy()
    assert len(f) == 6 and np.all(np.abs(f - 12) < 10)


def test_future_covariate_is_used():
    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(size=n)  # known in advance (e.g. a promotion plan), drives the target
    df = pd.DataFrame({"x": x, "y": 5.0 * x + 0.1 * rng.normal(size=n)})
    train = df.iloc[:-3]
    m = Forecaster(horizon=3, cell="gru", **FAST).fit(train, target="y", future_covariates=["x"])
    fut = df.copy()
    fut.loc[fut.index[-3:], "y"] = np.nan  # the horizon rows carry only the covariate
    f = m.predict(fut)["forecast"].to_numpy()
    assert rmse(df["y"].to_numpy()[-3:], f) < 1.0  # the target's own std is 5
    with pytest.raises(UserError, match="needs 3 future rows"):
        m.predict(train)


def test_quantiles_ordered_and_save_load_identical(tmp_path):
    df = _airline()
    m = Forecaster(horizon=4, cell="gru", **{**FAST, "ensemble": 2, "epochs": 3, "calibrate": "holdout"}).fit(
        df, target="passengers", time_col="month")
    assert m.calibration is not None
    a = m.predict(df, quantiles=(0.1, 0.5, 0.9))
    assert (a["q0.1"] <= a["q0.5"]).all() and (a["q0.5"] <= a["q0.9"]).all()
    assert np.allclose(a["q0.5"], a["forecast"])
    m.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} >= {"config.json", "model.safetensors", "scaler.json"}
    b = rnnkit.load(tmp_path / "model").predict(df, quantiles=(0.1, 0.5, 0.9))
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(UserError, match="outside the trained range"):
        m.predict(df, quantiles=(0.01,))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru"])
def test_every_registered_cell_trains(cell):
    from rnnkit.nn.registry import cell_names

    if cell not in cell_names():
        pytest.skip(f"{cell} not registered")
    df = pd.DataFrame({"y": np.sin(np.arange(200) / 4)})
    m = Forecaster(horizon=3, cell=cell, hidden_size=16, epochs=2, steps_per_epoch=10, progress=False,
                   calibrate="none").fit(df, target="y")
    assert np.isfinite(m.predict(df)["forecast"]).all()
    with pytest.raises(UserError, match="unknown cell"):
        Forecaster(horizon=3, cell="nope", progress=False).fit(df, target="y")


@pytest.mark.slow
def test_m1_yearly_beats_ets_and_naive():
    """The competition benchmark (Monash split, h=6): default settings beat our ETS (3.62; the
    archive's ETS is 3.771) and naive (4.89). About a minute on one core."""
    path = resources.files("rnnkit.data.datasets") / "m1_yearly" / "m1_yearly.csv"
    ss = load_series(pd.read_csv(path), "value", "year", "series", quiet=True)
    res = run_backtest(ss, ForecastConfig(horizon=6, progress=False, calibrate="none"), folds=1,
                       baselines=("naive", "ets"),
                       log=open("/dev/null", "w"))
    s = res.summary.set_index("method")["mase"]
    assert s["rnnkit-lstm"] < s["ets"] < s["naive"], s.to_dict()
    assert s["rnnkit-lstm"] < 3.5


def test_past_covariate_that_leads_the_target_is_used():
    """x_t = y_{t+3}: with horizon 3 the future is in the past covariate; without it, it is noise."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=403)
    df = pd.DataFrame({"y": z[:400], "lead": z[3:403]})
    m = Forecaster(horizon=3, cell="gru", **{**FAST, "epochs": 20}).fit(df.iloc[:-3], target="y",
                                                                        covariates=["lead"])
    f = m.predict(df.iloc[:-3])["forecast"].to_numpy()
    assert rmse(df["y"].to_numpy()[-3:], f) < 0.5  # the target's std is 1
