"""The Nixtla conventions: ``unique_id, ds, y`` column defaults and neuralforecast-style output.

Users of neuralforecast / statsforecast / darts keep their data in the long format
``unique_id, ds, y``; when no column names are given and those columns exist they are used
(and a one-line note says so). ``to_nixtla`` turns rnnkit's prediction table
(``id, time, step, forecast, q...``) into ``unique_id, ds, <MODEL>, <MODEL>-lo-<L>..., <MODEL>-hi-<L>...``,
the layout utilsforecast's ``evaluate`` and ``plot_series`` read.

Naming (decided in docs/decisions.md, 2026-11-26): the model column is the recurrent cell
upper-cased, as neuralforecast names its models (``LSTM``, ``GRU``, ``RNN``; ``MINGRU``), and
holds the median. Interval columns come in utilsforecast's order: lower bounds from the widest
level in, then upper bounds from the narrowest out (``-lo-95, -lo-80, -hi-80, -hi-95``), which is
also neuralforecast's order (sorted by quantile).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence, TextIO, Union

import numpy as np
import pandas as pd

from rnnkit.data.series import check_separator
from rnnkit.errors import UserError

NIXTLA_COLUMNS = {"target": "y", "time_col": "ds", "id_col": "unique_id"}
DEFAULT_LEVELS = (80, 90)  # neuralforecast's MQLoss default
_ROLE = {"target": "target", "time_col": "time", "id_col": "id"}


def _columns_of(data) -> Optional[list[str]]:
    """Column names of a frame or a CSV's header (None when it cannot be read: the loader reports)."""
    if isinstance(data, pd.DataFrame):
        return [str(c) for c in data.columns]
    p = Path(data)
    if not p.is_file():
        raise UserError(f"data file not found: {p}")
    try:
        cols = [str(c) for c in pd.read_csv(p, nrows=0).columns]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    check_separator(cols, p)
    return cols


def resolve_columns(data, target: Optional[str], time_col: Optional[str], id_col: Optional[str],
                    quiet: bool = False, log: Optional[TextIO] = None) -> tuple[str, Optional[str], Optional[str]]:
    """Fill the column names not given with ``y`` / ``ds`` / ``unique_id`` where those columns exist.

    Each default applies on its own (``--target value`` on a file with ``ds`` and ``unique_id``
    still picks those up). Says which defaults were used in one line on ``log`` unless quiet.
    Raises UserError when no target is given and there is no ``y`` column.
    """
    given = {"target": target, "time_col": time_col, "id_col": id_col}
    if all(v is not None for v in given.values()):
        return target, time_col, id_col
    cols = _columns_of(data)
    if cols is None:  # unreadable: let the loader raise its own error (needs some target name)
        return target or NIXTLA_COLUMNS["target"], time_col, id_col
    used = []
    for key, default in NIXTLA_COLUMNS.items():
        if given[key] is None and default in cols:
            given[key] = default
            used.append(f"{_ROLE[key]} {default!r}")
    if given["target"] is None:
        have = ", ".join(cols[:12])
        raise UserError(f"no target column given and no 'y' column to default to (columns: {have}); "
                        f"pass --target / target=")
    if used and not quiet:
        print(f"rnnkit: note: using the Nixtla column defaults: {', '.join(used)}", file=log or sys.stderr)
    return given["target"], given["time_col"], given["id_col"]


def _numbers(text: Union[str, Sequence[float], None], syntax: str) -> Optional[tuple[float, ...]]:
    """'a,b,c' (or a sequence) -> floats, blank items skipped; None for None or blank text;
    UserError ``syntax`` for anything that is not a number."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        return tuple(float(v) for v in (text.split(",") if isinstance(text, str) else text)
                     if not isinstance(v, str) or v.strip())
    except (TypeError, ValueError):
        raise UserError(f"{syntax}, got {text!r}") from None


def parse_quantiles(text: Union[str, Sequence[float], None]) -> Optional[tuple[float, ...]]:
    """'0.1,0.5,0.9' (or a sequence) -> (0.1, 0.5, 0.9); UserError on anything else."""
    qs = _numbers(text, "--quantiles must be numbers between 0 and 1 separated by commas")
    if qs is None or (not qs and not isinstance(text, str)):  # quantiles=(): no extra columns
        return None
    if not qs or any(not 0 < v < 1 for v in qs):
        raise UserError(f"--quantiles must be numbers strictly between 0 and 1, got {text!r}")
    return qs


def parse_levels(text: Union[str, Sequence[float], None]) -> Optional[tuple[float, ...]]:
    """'80,95' (or a sequence) -> (80.0, 95.0): interval levels in percent, each in (0, 100)."""
    vals = _numbers(text, "--level must be percentages separated by commas, e.g. 80,95")
    if vals is None:
        return None
    if not vals or any(not 0 < v < 100 for v in vals):
        raise UserError(f"--level values must be strictly between 0 and 100, got {text!r}")
    return tuple(sorted(set(vals)))


def levels_from_quantiles(quantiles: Optional[Sequence[float]]) -> Optional[tuple[float, ...]]:
    """The levels of the symmetric pairs among ``quantiles`` (0.1 and 0.9 -> 80); None if none."""
    if not quantiles:
        return None
    qs = [float(q) for q in quantiles]
    levels = sorted({round(100 * (1 - 2 * q), 6) for q in qs if q < 0.5 and any(abs(p - (1 - q)) < 1e-9 for p in qs)})
    return tuple(levels) or None


def nixtla_levels(level, quantiles: Optional[Sequence[float]], trained: Sequence[float]) -> tuple[float, ...]:
    """The interval levels of a nixtla-format prediction: ``level`` (percent), else the symmetric
    pairs in ``quantiles`` (each quantile but 0.5 needs its partner: the format holds intervals),
    else ``DEFAULT_LEVELS``. Each level must lie within the ``trained`` quantiles."""
    if level is not None:
        levels = parse_levels(level)
    elif quantiles:
        alone = [q for q in quantiles if abs(q - 0.5) > 1e-9 and not any(abs(p - (1 - q)) < 1e-9 for p in quantiles)]
        if alone:
            raise UserError(f"the nixtla format holds symmetric intervals: quantile {alone[0]:g} has no partner "
                            f"{1 - alone[0]:g}; pass both, or the levels (--level / level=)")
        levels = levels_from_quantiles(quantiles) or ()
    else:
        levels = DEFAULT_LEVELS
    lo, hi = min(trained), max(trained)
    for lv in levels:
        if (100 - lv) / 200 < lo - 1e-9 or 1 - (100 - lv) / 200 > hi + 1e-9:
            raise UserError(f"level {level_name(lv)} needs the quantiles {(100 - lv) / 200:g} and "
                            f"{1 - (100 - lv) / 200:g}, outside the trained range {lo:g}..{hi:g} (levels up to "
                            f"{level_name(round(100 * (hi - lo), 6))}); train with quantiles covering it")
    return tuple(levels)


def level_name(level: float) -> str:
    """80.0 -> '80', 97.5 -> '97.5' (the suffix in ``-lo-80``)."""
    return f"{int(level)}" if float(level).is_integer() else f"{level:g}"


def level_quantiles(levels: Sequence[float]) -> list[float]:
    """Quantiles needed for ``levels``, lower bounds then upper: [80] -> [0.1, 0.9]."""
    return [(100 - lv) / 200 for lv in levels] + [1 - (100 - lv) / 200 for lv in levels]


def model_column(cell: str) -> str:
    """The model's column name: the cell upper-cased, as neuralforecast names its models."""
    return str(cell).upper()


def to_nixtla(pred: pd.DataFrame, model: str, levels: Sequence[float] = ()) -> pd.DataFrame:
    """rnnkit's prediction table -> ``unique_id, ds, <model>[, <model>-lo-L..., <model>-hi-L...]``.

    pred: ``id, time, step, forecast`` followed by the quantile columns of
    ``level_quantiles(levels)`` as its last columns, in that order.
    """
    out = pd.DataFrame({"unique_id": pred["id"].astype(str).to_numpy(), "ds": pred["time"].to_numpy(),
                        model: pred["forecast"].to_numpy(dtype=np.float64)})
    levels = sorted(levels)
    k = len(levels)
    q = pred.iloc[:, pred.shape[1] - 2 * k:].to_numpy(dtype=np.float64) if k else np.zeros((len(pred), 0))
    for j in reversed(range(k)):
        out[f"{model}-lo-{level_name(levels[j])}"] = q[:, j]
    for j in range(k):
        out[f"{model}-hi-{level_name(levels[j])}"] = q[:, k + j]
    return out
