"""One univariate series per row, one value per column: the UCR archive's `.tsv` and wide CSV/TSV tables.

Two layouts, told apart from the first row (docs/decisions.md, "UCR and wide tables"):
- **UCR archive** (UCRArchive_2018 ``GunPoint_TRAIN.tsv``): no header; each row is the class label,
  then the values. The first row is read as such when its first cell is not a recognised label
  column name, every value cell is a number (or a trailing NaN / empty pad, at least one number) and
  the row is not a header of column numbers (``0, 1, 2, ...`` or ``1, 2, 3, ...``: the whole row when
  the first cell is a number, as pandas writes an unnamed table; else the cells after the first).
- **wide table**: a header row; the label column (``--label-col`` or the default names) anywhere and
  every other column numeric (checked on the first 50 rows), at least two of them. Without a label
  column the rows are unlabelled (``classify predict``).

In both, trailing NaN or empty cells end a shorter series (the archive pads its variable-length
problems with ``NaN``); a NaN before the last value, a non-number or a row with no values is an
error naming the file line and column. Values are parsed by pandas' C reader straight to float64:
peak memory is about ``rows x widest row x 8`` bytes, twice over while the ragged steps are cut out.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from rnnkit.data.checks import bad_mask, describe
from rnnkit.data.ragged import offsets_of
from rnnkit.data.text_sources import not_utf8_kind
from rnnkit.errors import UserError, exc_summary

NA_MARKS = ("", "NaN", "nan", "NAN")  # the archive writes NaN; empty cells pad spreadsheet exports
HEAD_ROWS = 50  # rows checked to tell a wide table from a long CSV


def separator(path: Path) -> str:
    """Tab for ``.tsv``, comma otherwise."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def read_table(path: Path, **kwargs):
    """``pandas.read_csv(path, sep=<by suffix>, **kwargs)`` with a file that is not UTF-8 text or not
    parseable as a one-line UserError."""
    import pandas as pd

    try:
        return pd.read_csv(path, sep=separator(path), **kwargs)
    except UnicodeDecodeError as exc:
        with open(path, "rb") as fh:
            head = fh.read(4)
        what = not_utf8_kind(head) if head.startswith((b"\xff\xfe", b"\xfe\xff")) else f"not valid UTF-8 (byte {exc.start})"
        raise UserError(f"{path}: {what}; save the CSV as UTF-8") from None
    except (ValueError, pd.errors.EmptyDataError) as exc:  # ParserError is a ValueError
        raise UserError(f"{path}: cannot parse as CSV ({exc_summary(exc)})") from None


def first_row(path: Path) -> list[str]:
    """The file's first row, cells as written (stripped); [] for an empty file."""
    try:
        df = read_table(path, header=None, nrows=1, dtype=str, keep_default_na=False, index_col=False)
    except UserError:
        return []  # the full read says what is wrong
    return [] if df.empty else [str(c).strip() for c in df.iloc[0].tolist()]


def is_number(text: str) -> bool:
    """``float(text)`` succeeds."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_numbers(cells: Sequence[str]) -> bool:
    """Cells ``0, 1, 2, ...`` or ``1, 2, 3, ...``: a header of column numbers (pandas writes them)."""
    try:
        v = [float(c) for c in cells]
    except ValueError:
        return False
    return len(v) >= 2 and v[0] in (0.0, 1.0) and all(b - a == 1.0 for a, b in zip(v, v[1:]))


def is_ucr_row(cells: Sequence[str], label_names: Sequence[str]) -> bool:
    """True when the first row reads as UCR data: a label (not a recognised label column name), then
    value cells that are numbers or trailing NaN / empty pads (at least one number), and not column
    numbers (a header ``0, 1, 2, ...`` or ``1, 2, 3, ...``: the whole row when its first cell is a
    number, else the cells after it)."""
    if len(cells) < 2 or not cells[0] or cells[0] in label_names:
        return False
    values = list(cells[1:])
    while values and values[-1] in NA_MARKS:
        values.pop()
    numbered = _column_numbers(cells if is_number(cells[0]) else cells[1:])  # '0,1,2,3' or 'species,0,1,2'
    return bool(values) and all(is_number(c) for c in values) and not numbered


def read_wide(path: Path, label_col: Optional[str], labelled: bool, text_names: Sequence[str],
              label_names: Sequence[str]) -> Optional[tuple[Optional[list[str]], np.ndarray, np.ndarray]]:
    """(labels (n,) or None, steps (total, 1) float32, offsets (n + 1,) int64) of a UCR-archive file or a
    wide table; None when ``path`` is in neither layout (its first row names a sequence column
    ``text_names``, or it is not one value per column). ``labelled``: a label column is required."""
    from rnnkit.data.series import check_separator

    first = first_row(path)
    check_separator(first, path)
    if any(c in first for c in text_names):
        return None
    if is_ucr_row(first, label_names) and (label_col is None or label_col not in first):
        if label_col is not None:
            raise UserError(f"{path}: no header row (UCR archive layout: the label is the first column); "
                            f"--label-col {label_col!r} names no column")
        return read_rows(path, 0, None)  # the label column is read at predict too: it cannot be told apart
    pos, text = wide_label(path, first, label_col, label_names)
    numeric = len(first) - len(text) - (pos is not None)
    if pos is None and len(text) == 1 and numeric >= 2 and labelled:  # wide, the label column not named
        raise UserError(f"{path}: no label column (looked for {', '.join(label_names)}) among one value per "
                        f"column; name it with --label-col (column {text[0]!r} holds text)")
    if text or numeric < 2:  # not a wide table: the sequence-column reader says what is missing
        return None
    if pos is None and labelled:  # a wide table, or a long one whose sequence column has another name
        raise UserError(f"{path}: no label column {label_col or '(looked for ' + ', '.join(label_names) + ')'}; "
                        f"name it with --label-col (one value per column), or name the sequence column with "
                        f"--text-col; columns are {', '.join(first[:12])}{' ...' if len(first) > 12 else ''}")
    return read_rows(path, pos, first)


def wide_label(path: Path, header: list[str], label_col: Optional[str], label_names: Sequence[str]
               ) -> tuple[Optional[int], list[str]]:
    """(label column position or None, the other columns that are not mostly numbers) of a file whose
    first row is ``header``. A column is numeric when at least half its cells in the first ``HEAD_ROWS``
    rows are numbers or pads (the odd non-number is then an error naming it, in ``read_rows``)."""
    import pandas as pd

    label = label_col if label_col is not None else next((c for c in label_names if c in header), None)
    pos = header.index(label) if label in header else None
    width = max(len(header), _widest(path, HEAD_ROWS + 1))  # a longer row: an error in read_rows
    with warnings.catch_warnings():  # a quote spanning lines: an error in read_rows
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        head = read_table(path, header=None, skiprows=1, names=list(range(width)), nrows=HEAD_ROWS,
                          dtype=str, keep_default_na=False, index_col=False)
    text = []
    for c in (i for i in range(len(header)) if i != pos):
        cells = head[c].fillna("").astype(str).str.strip()
        pads = cells.isin(NA_MARKS)
        numbers = pd.to_numeric(cells.where(~pads, "nan"), errors="coerce").notna()
        if head.empty or 2 * int((numbers | pads).sum()) < len(cells):
            text.append(header[c])
    return pos, text


def read_rows(path: Path, label_pos: Optional[int], header: Optional[list[str]]
              ) -> tuple[Optional[list[str]], np.ndarray, np.ndarray]:
    """Read a UCR file (``header`` None, label first) or a wide table -> (labels (n,) or None,
    steps (total, 1) float32, offsets (n + 1,) int64)."""
    ncols = max(_widest(path), len(header) if header is not None else 0)  # a longer row: error below, not cut
    value_cols = [i for i in range(ncols) if i != label_pos]
    kwargs = dict(header=None, names=list(range(ncols)), skiprows=1 if header is not None else 0, index_col=False,
                  keep_default_na=False, na_values={i: list(NA_MARKS) for i in value_cols}, skip_blank_lines=False)
    dtype = {i: np.float64 for i in value_cols}
    if label_pos is not None:
        dtype[label_pos] = str
    import pandas as pd

    try:
        with warnings.catch_warnings():  # pandas cuts a row longer than ``names`` with only a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = read_table(path, dtype=dtype, **kwargs)
    except UserError as exc:
        if "could not convert" in str(exc):  # a cell that is not a number: find where, then say so
            _first_non_number(path, kwargs, value_cols, header)
        raise
    except pd.errors.ParserWarning:  # a quoted cell spanning lines joined two of them
        raise UserError(f"{path}: a row has more than the {ncols} cells of the widest line (a quote that "
                        f"spans lines?)") from None
    values = df[value_cols].to_numpy(dtype=np.float64)  # (n, m)
    line = np.arange(len(df)) + (2 if header is not None else 1)  # the file line of each row
    if header is not None and ncols > len(header):
        extra = ~np.isnan(values[:, len(header) - (label_pos is not None):])
        if extra.any():
            raise UserError(f"{path}: line {line[int(np.argmax(extra.any(1)))]} has more cells than the header "
                            f"({len(header)} columns)")
        values, value_cols = values[:, :len(header) - (label_pos is not None)], value_cols[:len(header) - (label_pos is not None)]
    labels = None if label_pos is None else df[label_pos].astype(str).str.strip().to_numpy()
    nan = np.isnan(values)
    blank = nan.all(1) & (labels == "" if labels is not None else True)  # blank lines, skipped as the CSV reader does
    if blank.any():
        keep = ~blank
        values, nan, line = values[keep], nan[keep], line[keep]
        labels = labels[keep] if labels is not None else None
    if len(values) == 0:
        raise UserError(f"{path}: no rows")
    where = _where(path, header, value_cols)
    if labels is not None and (labels == "").any():
        i = int(np.argmax(labels == ""))
        raise UserError(f"{path}: line {line[i]} has an empty label")
    lengths = values.shape[1] - np.argmax(~nan[:, ::-1], axis=1)  # last value + 1 (trailing NaN pads)
    lengths[nan.all(1)] = 0
    if (lengths == 0).any():
        raise UserError(f"{path}: line {line[int(np.argmin(lengths))]} has no values")
    inside = np.arange(values.shape[1])[None, :] < lengths[:, None]  # (n, m): the series' own cells
    gap = nan & inside
    if gap.any():
        i, j = (int(v[0]) for v in np.nonzero(gap))
        raise UserError(f"{path}: line {line[i]}, {where(j)}: missing value (NaN or empty) before the series ends; "
                        f"only trailing NaN/empty cells mark a shorter series")
    bad = bad_mask(values) & inside
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise UserError(f"{path}: line {line[i]}, {where(j)}: {describe(float(values[i, j]))}")
    steps = values[inside].astype(np.float32)[:, None]
    return (None if labels is None else labels.tolist()), steps, offsets_of(lengths.astype(np.int64))


def _widest(path: Path, lines: Optional[int] = None) -> int:
    """Cells in the longest row (of the first ``lines``): rows of unpadded series differ. Counts
    separators line by line (a per-line pass; numbers hold no quoted separators)."""
    sep = separator(path).encode()
    with open(path, "rb") as fh:
        return 1 + max((ln.count(sep) for ln in itertools.islice(fh, lines)), default=0)


def _where(path: Path, header: Optional[list[str]], value_cols: list[int]):
    """Value column j (0-based among the values) -> 'column C' (1-based file column, named when a header)."""
    def where(j: int) -> str:
        c = value_cols[j]
        if header is None:
            return f"column {c + 1}"
        return f"column {c + 1} " + (f"({header[c]!r})" if c < len(header) else f"(past the header's {len(header)})")
    return where


def _first_non_number(path: Path, kwargs: dict, value_cols: list[int], header: Optional[list[str]]) -> None:
    """Raise the error naming the first cell (in file order) that is not a number (the error path only:
    the file is read again as text)."""
    import pandas as pd

    df = read_table(path, dtype=str, **{**kwargs, "na_values": None})
    first: Optional[tuple[int, int]] = None
    for j, c in enumerate(value_cols):
        cells = df[c].fillna("").astype(str).str.strip()
        bad = pd.to_numeric(cells.where(~cells.isin(NA_MARKS), "nan"), errors="coerce").isna() & ~cells.isin(NA_MARKS)
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            if first is None or i < first[0]:
                first = (i, j)
    if first is None:
        raise UserError(f"{path}: a value is not a number")
    i, j = first
    raise UserError(f"{path}: line {i + (2 if header is not None else 1)}, {_where(path, header, value_cols)(j)}: "
                    f"{str(df.iloc[i, value_cols[j]])[:40]!r} is not a number")
