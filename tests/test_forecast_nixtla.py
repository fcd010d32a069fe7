"""Issue 17: the Nixtla workflow. Column defaults (unique_id, ds, y), the neuralforecast output
layout read by utilsforecast, utilsforecast's metrics agreeing with rnnkit's, and the interval
calibration's arithmetic. Small real models (seconds each)."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data.series import load_series
from rnnkit.errors import UserError
from rnnkit.tasks.forecast.backtest import run_backtest
from rnnkit.tasks.forecast.calibration import Calibration, conformal_quantile, fit_factors
from rnnkit.tasks.forecast.formats import level_quantiles, levels_from_quantiles, parse_levels, to_nixtla
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster

torch.set_num_threads(1)
SMALL = ["--hidden-size", "16", "--epochs", "3", "--quiet"]
FAST = dict(ensemble=1, hidden_size=16, epochs=4, steps_per_epoch=10, batch_size=32, progress=False)


def _panel(n: int = 48, ids=("a", "b", "c"), seed: int = 0) -> pd.DataFrame:
    """neuralforecast's long format: unique_id, ds (monthly dates), y."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, sid in enumerate(ids):
        walk = np.cumsum(rng.normal(0, 2, n))
        for i, d in enumerate(pd.date_range("2001-01-01", periods=n, freq="MS")):
            rows.append({"unique_id": sid, "ds": d.strftime("%Y-%m-%d"),
                         "y": 100 + 10 * k + walk[i] + 5 * np.sin(2 * np.pi * i / 12)})
    return pd.DataFrame(rows)


def test_nixtla_csv_trains_and_predicts_without_column_flags(tmp_path, capsys):
    data = tmp_path / "nf.csv"
    _panel().to_csv(data, index=False)
    model, pred = tmp_path / "m", tmp_path / "pred.csv"
    assert main(["forecast", "train", "--data", str(data), "--horizon", "3", "--out", str(model), "--cell", "gru",
                 *SMALL]) == 0
    err = capsys.readouterr().err
    notes = [ln for ln in err.splitlines() if "Nixtla column defaults" in ln]
    assert notes == ["rnnkit: note: using the Nixtla column defaults: target 'y', time 'ds', id 'unique_id'"]
    assert (model / "calibration.json").is_file()  # intervals calibrated by default
    assert main(["forecast", "predict", "--model", str(model), "--data", str(data), "--out", str(pred),
                 "--output-format", "nixtla"]) == 0
    df = pd.read_csv(pred)
    assert list(df.columns) == ["unique_id", "ds", "GRU", "GRU-lo-90", "GRU-lo-80", "GRU-hi-80", "GRU-hi-90"]
    assert len(df) == 9 and df["ds"].iloc[0] == "2005-01-01" and list(df["unique_id"].unique()) == ["a", "b", "c"]
    cols = ["GRU-lo-90", "GRU-lo-80", "GRU", "GRU-hi-80", "GRU-hi-90"]
    assert (np.diff(df[cols].to_numpy(), axis=1) >= -1e-9).all()
    # --level picks the bands (within the trained 5..95 range); --quantiles pairs give levels too
    assert main(["forecast", "predict", "--model", str(model), "--data", str(data), "--out", str(pred),
                 "--output-format", "nixtla", "--level", "60"]) == 0
    assert list(pd.read_csv(pred).columns) == ["unique_id", "ds", "GRU", "GRU-lo-60", "GRU-hi-60"]
    # the default format is unchanged
    assert main(["forecast", "predict", "--model", str(model), "--data", str(data), "--out", str(pred)]) == 0
    assert list(pd.read_csv(pred).columns) == ["id", "time", "step", "forecast"]


@pytest.mark.parametrize("extra, message", [
    (["--level", "80"], "--level goes with --output-format nixtla"),
    (["--output-format", "nixtla", "--level", "80,abc"], "--level must be percentages"),
    (["--output-format", "nixtla", "--level", "100"], "strictly between 0 and 100"),
    (["--output-format", "nixtla", "--level", "99"], "outside the trained range"),
])
def test_nixtla_predict_bad_flags_exit_2(tmp_path, capsys, extra, message):
    data = tmp_path / "nf.csv"
    _panel(ids=("a",)).to_csv(data, index=False)
    model, pred = tmp_path / "m", tmp_path / "p.csv"
    assert main(["forecast", "train", "--data", str(data), "--horizon", "2", "--out", str(model), "--calibrate",
                 "none", *SMALL]) == 0
    capsys.readouterr()
    assert main(["forecast", "predict", "--model", str(model), "--data", str(data), "--out", str(pred), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit: error:") and message in err and "\n" not in err, err
    assert not pred.exists()


def test_api_defaults_and_missing_target():
    df = _panel(ids=("a", "b"))
    m = Forecaster(horizon=2, calibrate="none", **FAST).fit(df)
    assert m.schema["target"] == "y" and m.schema["time_col"] == "ds" and m.schema["id_col"] == "unique_id"
    out = m.predict(df, format="nixtla", level=[80])
    assert list(out.columns) == ["unique_id", "ds", "LSTM", "LSTM-lo-80", "LSTM-hi-80"]
    with pytest.raises(UserError, match="no target column given and no 'y' column"):
        Forecaster(horizon=2, **FAST).fit(df.rename(columns={"y": "sales"}))
    with pytest.raises(UserError, match="unknown output format"):
        m.predict(df, format="darts")


def test_level_helpers():
    assert parse_levels("95,80") == (80.0, 95.0)
    assert levels_from_quantiles((0.1, 0.5, 0.9, 0.25)) == (80.0,)
    assert level_quantiles([80, 90]) == [0.1, 0.05, 0.9, 0.95]
    # predict's quantile columns come in level_quantiles' order: lower bounds, then upper ones
    pred = pd.DataFrame({"id": ["a"], "time": [1], "step": [1], "forecast": [5.0], "q0.25": [3.0], "q0.05": [1.0],
                         "q0.75": [7.0], "q0.95": [9.0]})
    out = to_nixtla(pred, "RNN", [50, 90])
    assert list(out.columns) == ["unique_id", "ds", "RNN", "RNN-lo-90", "RNN-lo-50", "RNN-hi-50", "RNN-hi-90"]
    assert out.iloc[0, 3:].tolist() == [1.0, 3.0, 7.0, 9.0]


@pytest.mark.parametrize("kind", ["ratio", "shift"])
@pytest.mark.parametrize("mode", ["quantile", "pair"])
def test_conformal_factors_restore_nominal_coverage(kind, mode):
    """Forecast quantiles half as wide as the truth (N(0, 1) actuals, N(0, 0.25) quantiles) and
    biased by +0.3: calibrated on one sample, every pair's coverage on a fresh one is nominal."""
    from statistics import NormalDist

    rng = np.random.default_rng(0)
    levels = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    H, N = 3, 4000
    z = np.array([NormalDist().inv_cdf(p) for p in levels])
    q = np.broadcast_to(0.3 + 0.5 * z, (N, H, len(levels))).copy()
    f = fit_factors(q, rng.normal(size=(N, H)), np.ones((N, H)), levels, mode=mode, kind=kind)
    cal = Calibration(levels, f, N, 3, kind, mode)
    assert np.allclose(f[:, levels.index(0.5)], 1.0 if kind == "ratio" else 0.0)
    qc = cal.apply(q)
    if not (kind == "shift" and mode == "quantile"):  # (there, shifted neighbours may pass a biased median)
        assert np.allclose(qc[..., 5], q[..., 5])  # the median stays
    y = rng.normal(size=(N, H))
    for lo, hi in ((0, 10), (1, 9), (2, 8), (3, 7), (4, 6)):
        nominal = levels[hi] - levels[lo]
        cov = np.mean((y >= qc[..., lo]) & (y <= qc[..., hi]))
        # pair mode widens symmetrically around a biased median: coverage right, tails uneven
        assert abs(cov - nominal) < 0.03, (levels[lo], cov)
        if mode == "quantile":
            assert abs(np.mean(y < qc[..., lo]) - levels[lo]) < 0.03
    back = Calibration.from_dict(cal.to_dict())
    assert (back.kind, back.mode) == (kind, mode) and np.allclose(back.factor, f, atol=1e-6)
    assert conformal_quantile(np.arange(9.0), 0.9) == 8.0  # rank ceil(10 * 0.9) = 9 of 9


def test_calibration_saved_and_applied(tmp_path):
    df = _panel(n=60)
    m = Forecaster(horizon=3, cell="gru", **FAST).fit(df)
    assert m.calibration is not None and m.calibration.factor.shape == (3, 11)
    ss = m.load_data(df)
    raw, cal = m.predict_quantiles(ss, calibrated=False), m.predict_quantiles(ss)
    med = m.network.cfg.quantiles.index(0.5)
    assert np.allclose(raw[..., med], cal[..., med])  # the point forecast never moves
    assert not np.allclose(raw, cal)
    m.save(tmp_path / "m")
    again = rnnkit.load(tmp_path / "m")
    pd.testing.assert_frame_equal(m.predict(df, quantiles=(0.1, 0.9)), again.predict(df, quantiles=(0.1, 0.9)))


def _small_backtest():
    ss = load_series(_panel(n=40, ids=("a", "b", "c", "d")), "y", "ds", "unique_id", quiet=True)
    cfg = ForecastConfig(horizon=3, cell="gru", **FAST)
    return ss, run_backtest(ss, cfg, folds=2, baselines=("naive", "seasonal_naive"), log=open("/dev/null", "w"))


def test_backtest_reports_every_pair_raw_and_calibrated():
    _, res = _small_backtest()
    assert [lv for lv, _, _ in res.pairs] == [90, 80, 60, 40, 20]
    cov = res.coverage()
    assert list(cov["nominal"]) == [0.9, 0.8, 0.6, 0.4, 0.2]
    assert cov["coverage"].between(0, 1).all() and cov["coverage_raw"].between(0, 1).all()
    # coverage is monotone in the width of the band
    assert (np.diff(cov["coverage"].to_numpy()) <= 1e-12).all()
    assert "cov. 10-90 (80%)" in res.table() and "(raw " in res.table()
    # the fold range brackets the pooled coverage (equal points per fold), over every point scored
    assert ((cov["fold_min"] <= cov["coverage"] + 1e-12) & (cov["coverage"] <= cov["fold_max"] + 1e-12)).all()
    assert (cov["points"] == 4 * 2 * 3).all()
    mine = res.scores[res.scores["method"] == res.model_name]
    assert cov["fold_max"].iloc[1] == pytest.approx(mine.groupby("fold")["coverage80"].mean().max())
    assert "| 10-90 | 0.80 |" in res.coverage_table()
    assert set(res.forecasts.columns) >= {"unique_id", "ds", "cutoff", "y", "rnnkit-gru", "naive",
                                          "rnnkit-gru-lo-80", "rnnkit-gru-hi-80"}


def test_utilsforecast_metrics_agree_with_rnnkit():
    pytest.importorskip("utilsforecast")
    from rnnkit.tasks.forecast.uf_metrics import utilsforecast_summary

    ss, res = _small_backtest()
    ours = res.summary.set_index("method")
    theirs = utilsforecast_summary(res, ss).set_index("method")
    for method in ("rnnkit-gru", "naive", "seasonal_naive"):
        for metric in ("mase", "smape", "rmse"):
            assert theirs.loc[method, metric] == pytest.approx(ours.loc[method, metric], rel=1e-9), (method, metric)
    for lv in ("90", "80", "60", "40", "20"):
        assert theirs.loc["rnnkit-gru", f"coverage{lv}"] == pytest.approx(ours.loc["rnnkit-gru", f"coverage{lv}"])


def test_nixtla_output_reads_into_utilsforecast_evaluate():
    pytest.importorskip("utilsforecast")
    from utilsforecast.evaluation import evaluate
    from utilsforecast.losses import coverage, mae

    df = _panel(n=50)
    df["ds"] = pd.to_datetime(df["ds"])
    train, test = df.groupby("unique_id").head(47), df.groupby("unique_id").tail(3)
    m = Forecaster(horizon=3, cell="gru", calibrate="none", **FAST).fit(train)
    fc = m.predict(train, format="nixtla", level=[80])
    merged = test.merge(fc, on=["unique_id", "ds"], how="left")
    assert merged["GRU"].notna().all()
    ev = evaluate(merged, metrics=[mae, coverage], level=[80])
    assert set(ev["metric"]) == {"mae", "coverage_level80"} and np.isfinite(ev["GRU"]).all()


def test_cli_backtest_utilsforecast_flag(tmp_path, capsys):
    pytest.importorskip("utilsforecast")
    data = tmp_path / "nf.csv"
    _panel(n=30, ids=("a", "b")).to_csv(data, index=False)
    out = tmp_path / "bt"
    assert main(["forecast", "backtest", "--data", str(data), "--horizon", "3", "--folds", "1", "--baselines",
                 "naive", "--utilsforecast", "--calibrate", "none", "--out", str(out), *SMALL]) == 0
    text = capsys.readouterr().out
    assert "scored by utilsforecast.evaluate" in text and "| coverage80 |" in text
    assert (out / "forecasts.csv").is_file()


def test_nixtla_levels_and_quantiles_that_do_not_fit_the_format():
    """Fuzzing: unpaired quantiles fell back to levels 80/90 silently; level= with rnnkit's format
    was ignored; quantiles as a string crashed; level 95 was reported as 'quantile 0.025'; a model
    trained on dates gave integer times 1970 dates."""
    df = _panel(ids=("a",))
    m = Forecaster(horizon=2, calibrate="none", **FAST).fit(df)
    with pytest.raises(UserError, match="quantile 0.3 has no partner 0.7"):
        m.predict(df, format="nixtla", quantiles=[0.3, 0.5])
    assert list(m.predict(df, format="nixtla", quantiles=[0.5]).columns) == ["unique_id", "ds", "LSTM"]
    with pytest.raises(UserError, match="level= goes with format='nixtla'"):
        m.predict(df, level=[80])
    assert list(m.predict(df, quantiles="0.1, 0.9").columns)[-2:] == ["q0.1", "q0.9"]
    with pytest.raises(UserError, match="level 95 needs the quantiles 0.025 and 0.975.*levels up to 90"):
        m.predict(df, format="nixtla", level=[80, 95])
    steps = df.assign(ds=np.arange(len(df)))
    assert m.predict(steps)["time"].tolist() == [48, 49]


@pytest.mark.parametrize("error", [AttributeError("module 'pandas' has no attribute 'NA'"),
                                   ImportError("cannot import name 'x' from 'numpy'"),
                                   ModuleNotFoundError("No module named 'narwhals'", name="narwhals")])
def test_a_broken_utilsforecast_is_one_user_error(monkeypatch, tmp_path, capsys, error):
    """An installed utilsforecast whose import fails (a version clash) gave a traceback: now one
    line naming the package and its error, before any training; a missing one stays 'install it'."""
    import builtins

    from rnnkit.tasks.forecast import uf_metrics

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] == "utilsforecast":
            raise error
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(UserError, match=rf"utilsforecast is installed but cannot be imported \({type(error).__name__}: "):
        uf_metrics.available()
    with pytest.raises(UserError, match="utilsforecast is installed"):
        uf_metrics.utilsforecast_summary(None, None)
    data = tmp_path / "nf.csv"
    _panel(n=30, ids=("a", "b")).to_csv(data, index=False)
    assert main(["forecast", "backtest", "--data", str(data), "--horizon", "3", "--folds", "1", "--utilsforecast",
                 *SMALL]) != 0
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("rnnkit: error:")]
    assert len(errors) == 1 and "utilsforecast" in errors[0] and str(error) in errors[0], err
    assert "Traceback" not in err


def test_a_missing_utilsforecast_says_install_it(monkeypatch):
    from rnnkit.tasks.forecast import uf_metrics

    monkeypatch.setitem(sys.modules, "utilsforecast", None)  # import of utilsforecast halted: not installed
    assert uf_metrics.available() is False
    with pytest.raises(UserError, match="needs it installed"):
        uf_metrics.utilsforecast_summary(None, None)
