"""Time series from CSV or pandas: load, validate, infer frequency, pad into windows.

A *series set* is one or more series in long format (neuralforecast's ``unique_id, ds, y``):
an optional id column, an optional time column (dates or integers) and a numeric target,
plus optional covariates. Past covariates are only known up to the forecast origin;
future covariates (calendar, prices set in advance...) are known over the horizon too.

Every problem with the input becomes a one-line ``UserError`` naming the column and line:
missing columns, non-numeric values, missing values, duplicate timestamps. Gaps in dated
series are reported on stderr (not silently filled).
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from rnnkit.data.checks import MAX_MAGNITUDE, describe
from rnnkit.errors import UserError, exc_summary

# Seasonal period per pandas frequency prefix (M4 / Monash conventions).
_MAX_INT_TIME = 2 ** 53  # integer times: exact in float64, and their sums stay far from int64 overflow
_SEASON = {"Y": 1, "A": 1, "Q": 4, "M": 12, "W": 52, "D": 7, "B": 5, "h": 24, "H": 24, "min": 60, "T": 60}


@dataclass
class Series:
    """One series. y: (n,), past: (n, P) past covariates, future: (n, F) known-future covariates."""

    id: str
    times: np.ndarray
    y: np.ndarray
    past: np.ndarray
    future: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class SeriesSet:
    """Series sharing one schema and one frequency (``freq`` is None for integer times)."""

    series: list[Series]
    target: str
    time_col: Optional[str] = None
    id_col: Optional[str] = None
    past_cols: list[str] = field(default_factory=list)
    future_cols: list[str] = field(default_factory=list)
    freq: Optional[str] = None
    step: int = 1  # integer time step when freq is None
    # Known-future covariate rows after the last observed target (predict with future covariates).
    horizon_future: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def season(self) -> int:
        return season_of(self.freq)

    def future_times(self, s: Series, h: int) -> np.ndarray:
        """The h time stamps after the end of series s."""
        last = s.times[-1]
        if self.freq is None:
            if abs(int(last) + self.step * h) >= 2 ** 63:  # int64 arithmetic would wrap silently
                raise UserError(f"series {s.id!r}: the forecast times after {int(last)} (step {self.step}) "
                                f"leave the supported integer time range")
            return np.asarray(last + self.step * np.arange(1, h + 1), dtype=np.int64)
        try:
            return pd.date_range(pd.Timestamp(last), periods=h + 1, freq=self.freq)[1:].values
        except (ValueError, OverflowError) as exc:  # OutOfBoundsDatetime: past the year 2262
            raise UserError(f"series {s.id!r}: cannot extend its dates past {pd.Timestamp(last)} "
                            f"({exc_summary(exc)})") from None

    def schema(self) -> dict:
        return {"target": self.target, "time_col": self.time_col, "id_col": self.id_col,
                "past_cols": list(self.past_cols), "future_cols": list(self.future_cols),
                "freq": self.freq, "step": self.step}


def season_of(freq: Optional[str]) -> int:
    """Seasonal period implied by a pandas frequency alias ('MS' -> 12, 'QS-JAN' -> 4, None -> 1)."""
    if not freq:
        return 1
    head = freq.lstrip("0123456789").split("-")[0]
    for key in sorted(_SEASON, key=len, reverse=True):
        if head.startswith(key):
            return _SEASON[key]
    return 1


def read_csv(path: Union[str, Path], text_cols: Sequence[Optional[str]] = ()) -> pd.DataFrame:
    """Read a CSV with a user-facing error for missing/empty/unparsable files.

    text_cols: columns kept as text (series ids: "007" stays "007", not the number 7).
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data file not found: {p}")
    try:
        df = pd.read_csv(p, dtype={c: str for c in text_cols if c})
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read {p} as CSV: not valid UTF-8 (byte {exc.start}); save it as UTF-8") from None
    except (pd.errors.EmptyDataError, ValueError, OverflowError) as exc:  # ParserError is a ValueError
        raise UserError(f"cannot read {p} as CSV: {exc_summary(exc)}") from None
    check_separator([str(c) for c in df.columns], p)
    if df.empty:
        raise UserError(f"{p} has no data rows")
    return df


def check_separator(columns: Sequence[str], where: object) -> None:
    """A one-column header holding ';' or a tab is a file with another separator: say so, rather
    than that the columns are missing (rnnkit reads comma-separated files only)."""
    if len(columns) == 1:
        for sep, name in ((";", "semicolon"), ("\t", "tab")):
            if sep in columns[0]:
                raise UserError(f"{where} looks {name}-separated (header {columns[0][:60]!r}); rnnkit reads "
                                f"comma-separated CSV: save it with commas")


def _check_columns(df: pd.DataFrame, cols: Sequence[str], where: str) -> None:
    for c in cols:
        if c not in df.columns:
            have = ", ".join(map(str, df.columns[:12]))
            raise UserError(f"column {c!r} not found in {where} (columns: {have})")


def _numeric(df: pd.DataFrame, col: str, where: str, allow_nan_rows: Optional[np.ndarray] = None) -> np.ndarray:
    """Column as float64; non-numeric cells and missing values are errors (line = CSV line)."""
    raw = df[col]
    try:
        num = pd.to_numeric(raw, errors="coerce")
    except (OverflowError, ValueError, TypeError):  # e.g. a 400-digit integer: convert cell by cell
        num = pd.Series([_cell_float(v) for v in raw], index=raw.index, dtype=np.float64)
    bad = num.isna() & raw.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"column {col!r} in {where} has non-numeric value {raw.iloc[i]!r} at line {i + 2}")
    values = num.to_numpy(dtype=np.float64)
    nan = ~np.isfinite(values)
    if allow_nan_rows is not None:
        nan &= ~allow_nan_rows
    if nan.any():
        idx = np.flatnonzero(nan)
        if np.isinf(values[idx[0]]):  # "inf" or a number beyond float range, not a missing value
            raise UserError(f"column {col!r} in {where}, line {idx[0] + 2}: {describe(float(values[idx[0]]))}")
        raise UserError(f"column {col!r} in {where} has {len(idx)} missing/non-finite value(s), first at line "
                        f"{idx[0] + 2}; fill or drop them first (rnnkit does not drop them silently)")
    big = np.abs(np.nan_to_num(values)) > MAX_MAGNITUDE
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise UserError(f"column {col!r} in {where}, line {i + 2}: {describe(float(values[i]))}")
    return values


def _cell_float(v) -> float:
    """One CSV cell as a float: NaN when not a number, inf when a number too big for a float."""
    try:
        return float(v)
    except OverflowError:
        return float("inf")
    except (TypeError, ValueError):
        return float("nan")



def _parse_times(col: pd.Series, name: str, where: str) -> np.ndarray:
    """Integers stay integers; anything else must parse as dates."""
    if pd.api.types.is_integer_dtype(col) or pd.api.types.is_float_dtype(col):
        if col.isna().any():
            raise UserError(f"time column {name!r} in {where} has missing values, first at line "
                            f"{int(np.flatnonzero(col.isna().to_numpy())[0]) + 2}")
        v = col.to_numpy()
        with np.errstate(invalid="ignore"):
            if not np.all(np.mod(v, 1) == 0):
                raise UserError(f"time column {name!r} in {where} has non-integer numbers; use dates or integers")
            big = np.abs(v.astype(np.float64)) > _MAX_INT_TIME
        if big.any():  # differences and future steps must not wrap around in int64
            i = int(np.flatnonzero(big)[0])
            raise UserError(f"time column {name!r} in {where}: integer time {v[i]} at line {i + 2} is out of "
                            f"range (|t| <= 2**53)")
        return v.astype(np.int64)
    is_num = [isinstance(v, (int, float, np.number)) and pd.notna(v) for v in col] if col.dtype == object else []
    if any(is_num) and not all(is_num[i] for i in np.flatnonzero(col.notna().to_numpy())):
        i = int(np.flatnonzero(is_num)[0])  # numbers among dates would parse as nanoseconds after 1970
        raise UserError(f"time column {name!r} in {where} mixes numbers and text (number {col.iloc[i]!r} at line "
                        f"{i + 2}); use dates or integers throughout")
    try:
        t = pd.to_datetime(col, errors="raise", format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:
        bad = np.flatnonzero((pd.to_datetime(col, errors="coerce", format="mixed").isna() & col.notna()).to_numpy())
        at = f"{col.iloc[int(bad[0])]!r} at line {int(bad[0]) + 2}" if len(bad) else None
        raise UserError(f"time column {name!r} in {where} is neither integers nor dates: "
                        f"{at or str(exc).splitlines()[0]}") from None
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise UserError(f"time column {name!r} in {where} has a missing time at line {i + 2}")
    if t.dt.tz is not None:
        t = t.dt.tz_localize(None)
    # pandas parses years such as -27 or 9999 (microsecond unit); nanosecond times would wrap around silently.
    outside = ((t < pd.Timestamp.min) | (t > pd.Timestamp.max)).to_numpy()
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise UserError(f"time column {name!r} in {where}: date {str(col.iloc[i])[:40]!r} at line {i + 2} is outside "
                        f"the supported range {pd.Timestamp.min.date()}..{pd.Timestamp.max.date()}")
    return t.to_numpy(dtype="datetime64[ns]")


def infer_freq(times_list: list[np.ndarray]) -> Optional[str]:
    """A pandas frequency for dated series: ``pd.infer_freq`` where regular, else the typical step."""
    for t in sorted(times_list, key=len, reverse=True):
        if len(t) >= 3:
            with warnings.catch_warnings():  # pandas 3 warns that this will return an offset object
                warnings.simplefilter("ignore")
                f = pd.infer_freq(pd.DatetimeIndex(t))
            if f:
                return f if isinstance(f, str) else f.freqstr
    # Irregular (gaps): use the median spacing to pick a calendar frequency.
    steps = [np.diff(t).astype("timedelta64[s]").astype(np.int64) for t in times_list if len(t) > 1]
    if not steps:  # every series has one point: no spacing to read
        return None
    diffs = np.concatenate(steps)
    days = float(np.median(diffs)) / 86400.0
    first = pd.Timestamp(times_list[0][0])
    for lo, hi, start, end in [(360, 370, "YS", "YE"), (88, 93, "QS", "QE"), (27, 32, "MS", "ME")]:
        if lo <= days <= hi:
            return start if first.is_month_start else end
    if 6.5 <= days <= 7.5:
        return "W-" + first.day_name()[:3].upper()
    if 0.9 <= days <= 1.1:
        weekdays = np.concatenate([pd.DatetimeIndex(t).dayofweek for t in times_list])
        return "B" if weekdays.max() <= 4 else "D"
    return pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=float(np.median(diffs)))).freqstr


def _report_gaps(s: Series, freq: Optional[str], step: int) -> int:
    """Missing time steps in a series (caller reports); negative: more points than the frequency's
    grid holds over its span, i.e. dates off the grid (such as day and month swapped)."""
    if len(s) < 2:
        return 0
    if freq is None:
        return int(((np.diff(s.times) // step) - 1).clip(min=0).sum())
    offset = pd.tseries.frequencies.to_offset(freq)
    if isinstance(offset, pd.offsets.Tick):  # fixed duration: count arithmetically (a 1 s frequency
        span = int((s.times[-1] - s.times[0]).astype("timedelta64[ns]").astype(np.int64))  # over years
        return span // int(offset.nanos) + 1 - len(s)  # would be a huge date_range)
    full = pd.date_range(pd.Timestamp(s.times[0]), pd.Timestamp(s.times[-1]), freq=freq)
    return len(full) - len(s)


def load_series(
    data: Union[str, Path, pd.DataFrame],
    target: str,
    time_col: Optional[str] = None,
    id_col: Optional[str] = None,
    past_cols: Sequence[str] = (),
    future_cols: Sequence[str] = (),
    allow_future_rows: bool = False,
    quiet: bool = False,
) -> SeriesSet:
    """Validate a long table and split it into series sorted by time.

    allow_future_rows: rows after a series' last target value may have an empty target
    (they carry known-future covariates for ``predict``); they go to ``horizon_future``.
    """
    where = str(data) if not isinstance(data, pd.DataFrame) else "the data frame"
    df = read_csv(data, [id_col]) if not isinstance(data, pd.DataFrame) else data.reset_index(drop=True)
    if df.empty:
        raise UserError(f"{where} has no rows")
    past_cols, future_cols = list(past_cols), list(future_cols)
    _check_columns(df, [target] + [c for c in (time_col, id_col) if c] + past_cols + future_cols, where)
    if id_col and df[id_col].isna().any():  # factorize would give the row code -1: another series' id
        i = int(np.flatnonzero(df[id_col].isna().to_numpy())[0])
        raise UserError(f"id column {id_col!r} in {where} has a missing id at line {i + 2}")
    if target in past_cols + future_cols or (time_col and time_col == target):
        raise UserError(f"target {target!r} cannot also be the time column or a covariate")
    # One sort groups every series (a loop over ids that scans all rows would be O(series x rows)).
    codes, uniques = pd.factorize(df[id_col].astype(str) if id_col else pd.Series(np.zeros(len(df), np.int64)))
    codes = np.asarray(codes)
    row = np.arange(len(df))
    # Trailing empty-target rows are allowed only when they are future-covariate rows.
    tail = np.zeros(len(df), dtype=bool)
    if allow_future_rows and future_cols:
        raw = pd.to_numeric(df[target], errors="coerce").to_numpy()
        last = pd.Series(np.where(np.isfinite(raw), row, -1)).groupby(codes).transform("max").to_numpy()
        tail = row > last
    y = _numeric(df, target, where, allow_nan_rows=tail)
    past = np.stack([_numeric(df, c, where, allow_nan_rows=tail) for c in past_cols], 1) if past_cols \
        else np.zeros((len(df), 0))
    fut = np.stack([_numeric(df, c, where) for c in future_cols], 1) if future_cols else np.zeros((len(df), 0))
    times = _parse_times(df[time_col], time_col, where) if time_col else None
    t_all = times if times is not None else pd.Series(codes).groupby(codes).cumcount().to_numpy()
    order = np.lexsort((t_all, codes))  # stable: by series, then time, then file order
    sc, st = codes[order], t_all[order]
    dup = np.flatnonzero((sc[1:] == sc[:-1]) & (st[1:] == st[:-1]))
    if len(dup):
        a, b, sid, t0 = order[dup[0]], order[dup[0] + 1], uniques[sc[dup[0]]], st[dup[0]]
        shown = pd.Timestamp(t0) if times is not None and st.dtype.kind == "M" else t0
        name = sid if id_col else "series"
        raise UserError(f"duplicate timestamp {shown} in series {name!r} (lines {min(a, b) + 2} and {max(a, b) + 2})")
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    bounds = np.r_[starts, len(order)]

    out: list[Series] = []
    horizon_future: dict[str, np.ndarray] = {}
    for k in range(len(starts)):
        rows, t = order[bounds[k]:bounds[k + 1]], st[bounds[k]:bounds[k + 1]]
        sid = str(uniques[sc[bounds[k]]]) if id_col else "series"
        obs = ~tail[rows]
        if not obs.any():
            raise UserError(f"series {sid!r} has no observed {target!r} values")
        if not obs.all():
            horizon_future[sid] = fut[rows[~obs]]
        r = rows[obs]
        out.append(Series(id=sid, times=t[obs], y=y[r], past=past[r], future=fut[r]))

    ss = SeriesSet(out, target, time_col, id_col, past_cols, future_cols, horizon_future=horizon_future)
    if times is not None and times.dtype.kind == "M":
        ss.freq = infer_freq([s.times for s in out])
    elif times is not None:
        diffs = np.concatenate([np.diff(s.times) for s in out if len(s) > 1]) if any(len(s) > 1 for s in out) else []
        ss.step = int(np.gcd.reduce(diffs.astype(np.int64))) if len(diffs) else 1
    counts = {s.id: _report_gaps(s, ss.freq, ss.step) for s in out}
    off = [k for k, g in counts.items() if g < 0]
    if off and not quiet:  # e.g. 01/02/2020 read as January 2 in one series of a monthly file
        print(f"rnnkit: warning: {len(off)} series (e.g. {off[0]!r}) have more points than frequency {ss.freq} "
              f"allows over their span: their dates are off that grid (day and month swapped?)", file=sys.stderr)
    gaps = {k: max(0, g) for k, g in counts.items()}
    n_gap = sum(gaps.values())
    if n_gap and not quiet:
        worst = max(gaps, key=gaps.get)
        print(f"rnnkit: warning: {n_gap} missing time step(s) in {sum(g > 0 for g in gaps.values())} series "
              f"(frequency {ss.freq or ss.step}; most in {worst!r}: {gaps[worst]}); values are used in order, "
              f"gaps are not filled", file=sys.stderr)
    return ss


def check_lengths(ss: SeriesSet, horizon: int, need: int = 1) -> None:
    """Every series needs more points than the horizon (``need`` extra folds for backtests)."""
    if horizon <= 0:
        raise UserError(f"horizon must be a positive integer, got {horizon}")
    for s in ss.series:
        if len(s) < horizon * need + 1:
            raise UserError(f"series {s.id!r} has {len(s)} points; it needs at least {horizon * need + 1} "
                            f"for horizon {horizon}" + (f" and {need} fold(s)" if need > 1 else ""))


def truncate(ss: SeriesSet, cut: dict[str, int]) -> SeriesSet:
    """A copy where series ``id`` keeps its first ``cut[id]`` points (backtest origins)."""
    new = [Series(s.id, s.times[:cut[s.id]], s.y[:cut[s.id]], s.past[:cut[s.id]], s.future[:cut[s.id]])
           for s in ss.series if s.id in cut]
    return SeriesSet(new, ss.target, ss.time_col, ss.id_col, ss.past_cols, ss.future_cols, ss.freq, ss.step)
