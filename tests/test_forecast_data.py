"""Series loading/validation, windows, metrics and baselines (no training: fast)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.data.series import check_lengths, load_series, season_of
from rnnkit.data.windows import Panel, default_context
from rnnkit.errors import UserError
from rnnkit.metrics.forecast import coverage, mase, pinball, rmse, smape
from rnnkit.tasks.forecast.baselines import ets, naive, seasonal_naive, theta
from rnnkit.tasks.forecast.network import window_scale


def test_metrics_known_values():
    assert mase([3, 4], [3, 5], [1, 2, 3]) == pytest.approx(0.5)       # MAE 0.5 / naive MAE 1
    assert mase([3, 5], [3, 5], [1, 2, 3, 4], season=2) == 0.0
    assert smape([1, 2], [1, 2]) == 0.0 and smape([0, 1], [0, 3]) == pytest.approx(50.0)
    assert rmse([1, 2], [2, 2]) == pytest.approx(np.sqrt(0.5))
    # pinball at 0.1 with y above the forecast by 1 -> 0.1; at 0.9 below by 1 -> 0.1
    assert pinball([1.0], [[0.0, 2.0]], [0.1, 0.9]) == pytest.approx(0.1)
    assert coverage([1, 2, 3], [0, 0, 0], [2, 2, 2]) == pytest.approx(2 / 3)


def test_baselines_on_exact_patterns():
    pytest.importorskip("scipy")  # ETS/Theta: the [baselines] extra
    y = np.tile([1.0, 5.0, 3.0, 2.0], 6)
    assert np.allclose(seasonal_naive(y, 6, 4), [1, 5, 3, 2, 1, 5])
    assert np.allclose(naive(y, 3), [2, 2, 2])
    trend = 10 + 2.0 * np.arange(30)
    assert np.allclose(ets(trend, 5, 1), 10 + 2.0 * np.arange(30, 35), rtol=1e-3)
    # Theta halves the slope by design: level + b/2 per step, still rising
    th = theta(trend, 5, 1)
    assert np.all(np.diff(th) > 0) and abs(th[0] - 70) < 3
    seas = 100 + 10 * np.tile([1.0, -1.0, 2.0, -2.0], 10) + np.arange(40)
    fc = ets(seas, 8, 4)
    truth = 100 + 10 * np.tile([1.0, -1.0, 2.0, -2.0], 2) + np.arange(40, 48)
    assert np.max(np.abs(fc - truth)) < 3


def _long(ids=("a", "b"), n=30, freq="MS"):
    rows = []
    for k, sid in enumerate(ids):
        t = pd.date_range("2000-01-01", periods=n, freq=freq)
        rows += [{"id": sid, "date": d.strftime("%Y-%m-%d"), "y": float(i + 10 * k)} for i, d in enumerate(t)]
    return pd.DataFrame(rows)


def test_load_long_dates_frequency_and_season():
    ss = load_series(_long(), "y", "date", "id")
    assert [s.id for s in ss.series] == ["a", "b"]
    assert ss.freq == "MS" and ss.season == 12
    assert season_of("QS-OCT") == 4 and season_of("W-SUN") == 52 and season_of(None) == 1
    nxt = ss.future_times(ss.series[0], 2)
    assert pd.Timestamp(nxt[0]) == pd.Timestamp("2002-07-01")


def test_gaps_are_reported_not_filled(capsys):
    df = _long(ids=("a",), n=24).drop(index=[5, 6]).reset_index(drop=True)
    ss = load_series(df, "y", "date", "id")
    err = capsys.readouterr().err
    assert "2 missing time step(s)" in err and ss.freq == "MS" and len(ss.series[0]) == 22


def test_integer_times_and_sorting():
    df = pd.DataFrame({"t": [3, 1, 2, 5], "v": [30.0, 10.0, 20.0, 50.0]})
    ss = load_series(df, "v", "t", quiet=True)
    assert list(ss.series[0].y) == [10, 20, 30, 50] and ss.freq is None and ss.step == 1
    assert list(ss.future_times(ss.series[0], 2)) == [6, 7]


@pytest.mark.parametrize("df, match", [
    (pd.DataFrame({"y": [1.0, 2.0]}), "column 'price' not found"),
    (pd.DataFrame({"price": ["1", "x", "3"]}), "non-numeric value 'x' at line 3"),
    (pd.DataFrame({"price": [1.0, np.nan, 3.0]}), "missing/non-finite value.*line 3"),
    (pd.DataFrame({"t": [1, 2, 2], "price": [1.0, 2.0, 3.0]}), "duplicate timestamp 2"),
])
def test_bad_input_messages(df, match):
    with pytest.raises(UserError, match=match):
        load_series(df, "price", "t" if "t" in df else None, quiet=True)


def test_short_series_and_horizon_checks():
    ss = load_series(pd.DataFrame({"y": np.arange(5.0)}), "y", quiet=True)
    with pytest.raises(UserError, match="horizon must be a positive"):
        check_lengths(ss, 0)
    with pytest.raises(UserError, match="has 5 points"):
        check_lengths(ss, 6)


def test_windows_pad_and_mask_short_series():
    ss = load_series(pd.DataFrame({"y": np.arange(1.0, 16.0)}), "y", quiet=True)  # 15 points
    panel = Panel.build(ss, context=12, horizon=6)
    b = panel.batch(np.array([[0, 3]]))  # origin after 3 points
    assert b["m_ctx"][0].tolist() == [0.0] * 9 + [1.0] * 3
    assert b["y_ctx"][0, -3:].tolist() == [1.0, 2.0, 3.0]
    assert b["y_hor"][0].tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    b = panel.batch(np.array([[0, 12]]))  # 3 targets left: the rest are masked
    assert b["m_hor"][0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    pairs = panel.cutoffs(min_context=6)
    assert pairs[:, 1].min() == 6 and pairs[:, 1].max() == 14
    assert default_context(6, 1, [15] * 10) <= 12


def test_window_scaling_keeps_big_and_trending_values_small():
    y = torch.tensor([[5000.0, 6000.0, 7000.0, 5500.0], [96.0, 97.0, 98.0, 99.0]])
    m = torch.ones_like(y)
    loc, scale = window_scale(y, m)
    z = (y - loc) / scale
    assert z.abs().max() < 2.0
    one = window_scale(torch.tensor([[0.0, 0.0, 0.0, 250.0]]), torch.tensor([[0.0, 0.0, 0.0, 1.0]]))
    assert torch.isfinite(one[1]).all() and one[1].item() > 0


def test_messy_files_ids_separators_and_mixed_times(tmp_path):
    """Fuzzing the Nixtla CSV path: a missing id was silently merged into another series (factorize's
    code -1); ids such as "007" were read as the number 7; a ';'-separated file was reported as
    lacking its columns; numbers among date strings parsed as nanoseconds after 1970."""
    df = _long()
    df.loc[3, "id"] = np.nan
    with pytest.raises(UserError, match="missing id at line 5"):
        load_series(df, "y", "date", "id", quiet=True)
    path = tmp_path / "zeros.csv"
    pd.DataFrame({"unique_id": ["007"] * 5 + ["7"] * 5, "ds": list(range(5)) * 2, "y": np.arange(10.0)}).to_csv(
        path, index=False)
    assert [s.id for s in load_series(path, "y", "ds", "unique_id", quiet=True).series] == ["007", "7"]
    semi = tmp_path / "semi.csv"
    semi.write_text("unique_id;ds;y\na;1;2.0\n")
    with pytest.raises(UserError, match="looks semicolon-separated"):
        load_series(semi, "y", "ds", "unique_id", quiet=True)
    mixed = _long(ids=("a",), n=6).astype(object)
    mixed.loc[2, "date"] = 5
    with pytest.raises(UserError, match="mixes numbers and text .* line 4"):
        load_series(mixed, "y", "date", "id", quiet=True)
    mixed.loc[2, "date"] = "hello"  # pandas named no line ("Unknown datetime string format"); now the cell and line
    with pytest.raises(UserError, match="neither integers nor dates: 'hello' at line 4"):
        load_series(mixed, "y", "date", "id", quiet=True)


def test_dates_off_the_frequency_grid_are_reported(capsys):
    """Fuzzing: one series written day-first (01/02/2001 = 1 February) in a monthly file parsed as
    January 1..30 without a word; now a warning names it."""
    df = _long(n=12)
    b = df["id"] == "b"
    df.loc[b, "date"] = pd.to_datetime(df.loc[b, "date"]).dt.strftime("%d/%m/%Y")
    ss = load_series(df, "y", "date", "id")
    err = capsys.readouterr().err
    assert ss.freq == "MS" and "1 series (e.g. 'b')" in err and "off that grid" in err, err
    load_series(_long(n=12), "y", "date", "id")
    assert capsys.readouterr().err == ""
