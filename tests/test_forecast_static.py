"""Static covariates (issue 17): they are used (a static category that decides the level improves
the backtest), stored in the model folder, and every bad or unseen input has a clear rule."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data.series import load_series
from rnnkit.data.static import StaticEncoder, read_static
from rnnkit.data.synthetic import static_level_panel
from rnnkit.errors import UserError
from rnnkit.tasks.forecast.backtest import run_backtest
from rnnkit.tasks.forecast.task import ForecastConfig, Forecaster

torch.set_num_threads(1)
FAST = dict(ensemble=1, hidden_size=16, epochs=3, steps_per_epoch=8, batch_size=32, progress=False, calibrate="none")


def test_static_category_that_decides_the_level_improves_backtest_mase():
    """200 short AR(1) series around one of 4 levels set by a static category: the history alone
    estimates the level poorly, so knowing the category must cut MASE by a real margin (measured:
    about 7 %, bench/results/forecast_intervals.json)."""
    df, table = static_level_panel(n_series=200, length=16, phi=0.7)
    ss = load_series(df, "y", "ds", "unique_id", quiet=True)
    cfg = ForecastConfig(horizon=6, hidden_size=32, epochs=20, progress=False, calibrate="none", ensemble=1)
    mase = {}
    for label, static in (("without", None), ("with", table)):
        res = run_backtest(ss, cfg, folds=2, baselines=("naive",), static=static, log=open("/dev/null", "w"))
        mase[label] = float(res.summary.set_index("method").loc["rnnkit-lstm", "mase"])
    assert mase["with"] < 0.96 * mase["without"], mase


def _data():
    df, table = static_level_panel(n_series=8, length=20)
    return df, table


def test_static_saved_loaded_and_required(tmp_path):
    df, table = _data()
    m = Forecaster(horizon=3, **FAST).fit(df, static=table)
    assert m.static.categorical == ["group"] and m.static.numeric == ["size"]
    assert m.static.vocab == [["a", "b", "c", "d"]] and len(m.static.level[0]) == 5
    a = m.predict(df, static=table)
    m.save(tmp_path / "m")
    assert (tmp_path / "m" / "static.json").is_file()
    b = rnnkit.load(tmp_path / "m").predict(df, static=table)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(UserError, match="trained with static covariates: pass the static table"):
        m.predict(df)
    with pytest.raises(UserError, match="lacks the static column"):
        m.predict(df, static=table.drop(columns=["size"]))
    plain = Forecaster(horizon=3, **FAST).fit(df)
    with pytest.raises(UserError, match="trained without static covariates"):
        plain.predict(df, static=table)
    with pytest.raises(UserError, match="not supported yet"):
        m.network.onnx_specs()


def test_unknown_series_and_categories_follow_the_documented_rule(capsys):
    df, table = _data()
    m = Forecaster(horizon=3, **FAST).fit(df, static=table)
    capsys.readouterr()
    new = df[df["unique_id"] == "s0"].assign(unique_id="new")
    both = pd.concat([df[df["unique_id"] == "s1"], new], ignore_index=True)
    out = m.predict(both, static=table)  # "new" has no static row
    assert np.isfinite(out["forecast"]).all() and len(out) == 6
    assert "1 series (e.g. 'new') not in the static table" in capsys.readouterr().err
    # an unseen category value and a missing row encode the same way: unknown (0), numbers at the mean (0)
    enc = m.static
    t2, _ = read_static(pd.concat([table, pd.DataFrame({"unique_id": ["x"], "group": ["zzz"], "size": [0.5]})]),
                        "unique_id")
    num, cat = enc.encode(t2, ["s1", "x", "gone"])
    assert cat[:, 0].tolist() == [2, 0, 0] and num[2, 0] == 0.0


@pytest.mark.parametrize("table, message", [
    (pd.DataFrame({"store": ["s0"], "group": ["a"]}), "needs the series id column"),
    (pd.DataFrame({"unique_id": ["s0", "s0"], "group": ["a", "b"]}), "has two rows (lines 2 and 3)"),
    (pd.DataFrame({"unique_id": ["s0", "s1"], "group": ["a", None]}), "missing value(s), first at line 3"),
    (pd.DataFrame({"unique_id": ["s0"]}), "no feature columns"),
    (pd.DataFrame({"unique_id": ["s0"], "group": ["a"]}), "has no row for 7 training series"),
    # a numeric column is standardised: inf / 1e308 made its std inf and training diverge (fuzzing)
    (pd.DataFrame({"unique_id": [f"s{i}" for i in range(8)], "size": [1.0] * 7 + [np.inf]}), "line 9: non-finite"),
    (pd.DataFrame({"unique_id": [f"s{i}" for i in range(8)], "size": [1.0] * 7 + [1e308]}),
     "line 9: value 1e.308 whose magnitude"),
])
def test_bad_static_tables(table, message):
    df, _ = _data()
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Forecaster(horizon=3, **FAST).fit(df, static=table)


def test_static_needs_an_id_column():
    with pytest.raises(UserError, match="need an id column"):
        Forecaster(horizon=2, **FAST).fit(pd.DataFrame({"y": np.arange(20.0)}),
                                          static=pd.DataFrame({"unique_id": ["series"], "g": ["a"]}))


def test_encoder_json_round_trip():
    df, table = _data()
    t, key = read_static(table, "unique_id")
    enc = StaticEncoder.fit(t, key, sorted(df["unique_id"].unique()), [1.0] * 8)
    assert StaticEncoder.from_dict(enc.to_dict()) == enc


def test_cli_static_train_predict_backtest(tmp_path, capsys):
    df, table = _data()
    data, st = tmp_path / "d.csv", tmp_path / "static.csv"
    df.to_csv(data, index=False)
    table.to_csv(st, index=False)
    small = ["--hidden-size", "16", "--epochs", "2", "--quiet", "--calibrate", "none"]
    model, pred = tmp_path / "m", tmp_path / "p.csv"
    assert main(["forecast", "train", "--data", str(data), "--static", str(st), "--horizon", "3",
                 "--out", str(model), *small]) == 0
    assert main(["forecast", "predict", "--model", str(model), "--data", str(data), "--static", str(st),
                 "--out", str(pred)]) == 0
    assert len(pd.read_csv(pred)) == 24
    capsys.readouterr()
    assert main(["forecast", "predict", "--model", str(model), "--data", str(data), "--out", str(pred)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit: error:") and "pass the static table" in err and "\n" not in err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sid": ["s0"], "g": ["a"]}).to_csv(bad, index=False)
    out = tmp_path / "m2"
    assert main(["forecast", "train", "--data", str(data), "--static", str(bad), "--horizon", "3",
                 "--out", str(out), *small]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the Nixtla-defaults note, then the error
    assert len(err) == 2 and err[1].startswith("rnnkit: error:") and "needs the series id column" in err[1]
    assert not out.exists()
    assert main(["forecast", "backtest", "--data", str(data), "--static", str(st), "--horizon", "3",
                 "--folds", "1", "--baselines", "naive", *small]) == 0
