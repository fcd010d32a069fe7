"""Multi-origin calibration (issue 17): twins at successive cuts, each forecasting the holdout after
its own cut. Small real models (seconds)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rnnkit.data.series import load_series
from rnnkit.tasks.forecast.calibration import (default_holdout, holdout_windows, multi_origin_windows,
                                               near_twins, panel_carries_twin)
from rnnkit.tasks.forecast.task import Forecaster

FAST = dict(ensemble=1, hidden_size=8, epochs=2, steps_per_epoch=5, batch_size=16, progress=False, calibrate="none")


def _panel(lengths: list[int]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": np.arange(n), "y": 50 + np.cumsum(rng.normal(0, 1, n))})
                      for i, n in enumerate(lengths)])


def test_twins_add_windows_from_earlier_periods_and_skip_what_is_too_short():
    ss = load_series(_panel([40, 40, 14]), "y", "ds", "unique_id", quiet=True)
    fc = Forecaster(horizon=3, **FAST).fit(ss, strict=False)
    one = holdout_windows(fc, ss, 5)
    q, y, m, used = one
    assert q.shape == (3 * 5, 3, len(fc.network.cfg.quantiles)) and used == 3
    # the first twin's windows: the last 5 origins of every series, so the actual of step 1 at origin
    # o is y[o]; the next twin's come 5 points earlier
    two = holdout_windows(fc, ss, 10, span=5)
    assert two[0].shape[0] == 3 * 5
    ys = [s.y for s in ss.series]
    assert np.allclose(one[1][:5, 0], ys[0][35:40]) and np.allclose(two[1][:5, 0], ys[0][30:35])
    multi = multi_origin_windows(fc, ss, 5, twins=3)
    # series s2 (14 points) has no room for the third twin (needs 2 points before a cut 15 short)
    assert multi[0].shape[0] == 3 * 5 + 3 * 5 + 2 * 5
    assert np.isfinite(multi[0]).all() and multi[3] == 3
    assert multi_origin_windows(fc, ss, 39, twins=2) is None  # no series is long enough for any twin


def test_default_model_is_calibrated_from_three_twins_unless_they_lose_half_the_series():
    m = Forecaster(horizon=3, **{**FAST, "calibrate": "holdout"}).fit(_panel([120] * 4))
    R = m.calibration.holdout  # 3 + 64 / 4 - 1 = 18: cuts 18, 36, 54 all keep half of 120 points
    assert m.config.calib_twins == 3 and R == 18 and m.calibration.windows == 4 * R * 3
    short = Forecaster(horizon=3, **{**FAST, "calibrate": "holdout"}).fit(_panel([60] * 4))
    # R = 18 would allow one twin (a cut of 36 leaves less than half): twins cut 3, 6, 9 short instead
    assert short.calibration.holdout == 3 and short.calibration.windows == 4 * 3 * 3
    assert short.calibration.mode == "pair" and m.calibration.mode == "common"


def test_twins_are_cut_horizons_short_where_the_third_rule_would_leave_one_twin():
    assert default_holdout(12, [144]) == 48 and near_twins(12, [144])  # airline: not one twin 48 short
    assert not near_twins(6, [99, 99, 44, 99, 99])   # stocks: cuts 18 and 36 both keep half the series
    assert not near_twins(6, [20] * 181)             # M1-like: 64+ series carry the later twins
    assert not near_twins(12, [144], twins=1)        # one twin asked for: the third rule


def test_twins_past_the_half_length_cap_are_kept_while_64_series_carry_them():
    # 70 series of 14 points, h = 3: R = 3, half the median length = 7; the third twin's cut (9) is past
    # it, but every series keeps 5 points before that cut, so a panel of >= 64 of them still trains it
    assert panel_carries_twin([14] * 70, 9) and not panel_carries_twin([14] * 63, 9)
    assert not panel_carries_twin([14] * 70, 13)  # one point left before the cut is not enough
    ss = load_series(_panel([14] * 70), "y", "ds", "unique_id", quiet=True)
    fc = Forecaster(horizon=3, **FAST).fit(ss, strict=False)
    assert multi_origin_windows(fc, ss, 3, twins=3)[0].shape[0] == 70 * 3 * 3
    few = load_series(_panel([14] * 8), "y", "ds", "unique_id", quiet=True)
    fc = Forecaster(horizon=3, **FAST).fit(few, strict=False)
    assert multi_origin_windows(fc, few, 3, twins=3)[0].shape[0] == 8 * 3 * 2  # capped: cuts 3 and 6 only
