"""Labelled sequences for classification: reading, validation, stratified splits.

Three on-disk formats (DESIGN §3):
- CSV/TSV with a sequence column and a label column (text, or numbers separated by spaces
  for a univariate numeric series); or one series per row, one value per column: UCR-archive
  ``.tsv`` rows (label first, no header) and wide tables (``rnnkit.data.wide``);
- a folder of one UTF-8 text file per class (``<class>.txt``), one example per line;
- ``.npz`` with ``X (n, time, features)`` (or ``(n, time)``), ``y (n,)`` and optional
  ``lengths (n,)``; also a UEA ``.ts`` / ``.ts.gz`` file.

Everything ends in a ``SequenceData``: token sequences keep their raw strings (the model
tokenises), numeric ones a padded float array with lengths. Problems raise a one-line
``UserError`` naming the file and what is wrong.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from rnnkit.data import wide
from rnnkit.data.checks import bad_mask, describe, first_bad
from rnnkit.data.ragged import offsets_of, pad, ragged_from_padded, take_ragged
from rnnkit.data.text import decode_text
from rnnkit.errors import UserError, exc_summary

TEXT_COLUMNS = ("sequence", "text", "name", "x")
LABEL_COLUMNS = ("label", "class", "y", "target")


@dataclass
class SequenceData:
    """A batch of examples, token or numeric.

    kind "tokens": ``texts`` (n raw strings). kind "numeric": ``steps`` (total, F) float32, every
    sequence's steps end to end (sequence i is ``steps[offsets[i]:offsets[i + 1]]``, ``offsets``
    (n + 1,) int64), so one long recording among many short ones costs its own steps, not n times
    its length. ``labels``: (n,) strings or None (unlabelled).
    """

    kind: str
    texts: Optional[list[str]] = None
    steps: Optional[np.ndarray] = None
    offsets: Optional[np.ndarray] = None
    labels: Optional[list[str]] = None
    source: str = "<memory>"
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts) if self.kind == "tokens" else len(self.offsets) - 1

    @property
    def lengths(self) -> Optional[np.ndarray]:
        """Numeric: steps per sequence (n,) int64; None for tokens."""
        return None if self.offsets is None else np.diff(self.offsets)

    @property
    def n_features(self) -> int:
        return 0 if self.steps is None else int(self.steps.shape[1])

    def padded(self) -> np.ndarray:
        """Numeric: (n, T_max, F) float32, zero after each length (small data and tests: this is the
        n x longest-sequence array the ragged layout avoids)."""
        return pad(self.steps, self.offsets)

    def subset(self, idx: Sequence[int], max_len: Optional[int] = None) -> "SequenceData":
        """Examples ``idx``, in that order; numeric sequences cut to ``max_len`` steps when given."""
        idx = list(idx)
        steps, offsets = (None, None) if self.offsets is None else take_ragged(self.steps, self.offsets, idx, max_len)
        return SequenceData(
            kind=self.kind,
            texts=[self.texts[i] for i in idx] if self.texts is not None else None,
            steps=steps, offsets=offsets,
            labels=[self.labels[i] for i in idx] if self.labels is not None else None,
            source=self.source,
            ids=[self.ids[i] for i in idx] if self.ids else [],
        )


# ----------------------------------------------------------------------------- building
def from_arrays(X, y=None, lengths=None, source: str = "<memory>") -> SequenceData:
    """In-memory input: a list of strings, an array (n, T, F) / (n, T), or a list of (T_i, F) arrays."""
    if isinstance(X, SequenceData):
        return X
    labels = None if y is None else _memory_labels(y, source)
    if isinstance(X, (list, tuple)) and X and all(isinstance(s, str) for s in X):
        data = SequenceData(kind="tokens", texts=list(X), labels=labels, source=source)
    elif isinstance(X, (list, tuple)) and X and all(isinstance(s, np.ndarray) for s in X):
        data = _from_ragged(list(X), labels, source)
    else:
        try:
            X = np.asarray(X)
        except ValueError:  # numpy's "inhomogeneous shape": e.g. strings mixed with arrays
            kinds = sorted({type(s).__name__ for s in X}) if isinstance(X, (list, tuple)) else [type(X).__name__]
            raise UserError(f"{source}: X must be a list of strings, a list of (time, features) arrays or one "
                            f"array (n, time[, features]); got a list of {', '.join(kinds)}") from None
        data = _from_padded(X, labels, lengths, source)
    _check_sizes(data)
    return data


def _memory_labels(y, source: str) -> list[str]:
    """In-memory labels -> strings, with the .npz rules: one label per example (shape (n,)), and
    float labels only when finite (NaN would become a class 'nan')."""
    try:
        a = np.asarray(y) if not isinstance(y, np.ndarray) else y
    except ValueError:  # ragged nested lists
        raise UserError(f"{source}: y must have shape (n,) (one label per example), got nested lists") from None
    if a.ndim != 1:
        raise UserError(f"{source}: y must have shape (n,) (one label per example), got {a.shape}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise UserError(f"{source}: y holds NaN or infinite labels")
    return [str(v) for v in (y.tolist() if isinstance(y, np.ndarray) else y)]


def _from_ragged(arrays: list[np.ndarray], labels, source: str) -> SequenceData:
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    for i, a in enumerate(arrays):
        if not _real_dtype(a):
            raise UserError(f"{source}: sequence {i} must be real numbers, got dtype {a.dtype}")
    feats = {a.shape[1] for a in arrays if a.ndim == 2}
    if len(feats) != 1 or any(a.ndim != 2 for a in arrays):
        raise UserError(f"{source}: every sequence must be (time, features) with the same features, got {sorted(feats)}")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    if lengths.min() < 1:
        raise UserError(f"{source}: sequence {int(lengths.argmin())} is empty")
    for i, a in enumerate(arrays):  # checked before float32 conversion: 1e39 would silently become inf
        bad = first_bad(a)
        if bad is not None:
            raise UserError(f"{source}: example {i}, step {bad[0]}, feature {bad[1]}: {describe(float(a[bad]))}")
    steps = np.concatenate(arrays).astype(np.float32)
    return SequenceData(kind="numeric", steps=steps, offsets=offsets_of(lengths), labels=labels, source=source)


def _real_dtype(a: np.ndarray) -> bool:
    """Integers or floats (not bool, complex, strings or objects)."""
    return a.dtype.kind in "iuf"


def _from_padded(X: np.ndarray, labels, lengths, source: str) -> SequenceData:
    if not _real_dtype(X):
        raise UserError(f"{source}: X must be real numbers (n, time, features), got dtype {X.dtype}")
    if X.ndim == 2:
        X = X[:, :, None]  # (n, time) -> one feature
    if X.ndim != 3:
        raise UserError(f"{source}: X must have shape (n, time, features) or (n, time), got {X.shape}")
    n, T = X.shape[0], X.shape[1]
    if n == 0 or T == 0 or X.shape[2] == 0:
        raise UserError(f"{source}: X is empty, shape {X.shape}")
    if lengths is None:
        lengths = np.full(n, T, dtype=np.int64)
    else:
        lengths = np.asarray(lengths)
        if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
            raise UserError(f"{source}: lengths must be integers of shape ({n},), got {lengths.shape} {lengths.dtype}")
        if lengths.min() < 1 or lengths.max() > T:
            raise UserError(f"{source}: lengths must lie in [1, {T}], got {lengths.min()}..{lengths.max()}")
    lengths = lengths.astype(np.int64)
    _check_values(X, lengths, source)  # before float32 conversion: 1e39 would silently become inf
    steps, offsets = ragged_from_padded(X, lengths)  # whatever the file held after a length is dropped
    return SequenceData(kind="numeric", steps=steps, offsets=offsets, labels=labels, source=source)


def _check_values(X: np.ndarray, lengths: np.ndarray, source: str) -> None:
    """NaN/inf or a huge value inside a sequence's real steps is an error (padding after the length
    is ignored). X: (n, T, F) any real dtype; lengths: (n,)."""
    steps = np.arange(X.shape[1])[None, :] < lengths[:, None]  # (n, T)
    bad = bad_mask(X) & steps[:, :, None]
    if bad.any():
        i, t, f = (int(v[0]) for v in np.nonzero(bad))
        raise UserError(f"{source}: example {i}, step {t}, feature {f}: {describe(float(X[i, t, f]))}")


def _check_sizes(data: SequenceData) -> None:
    if len(data) == 0:
        raise UserError(f"{data.source}: no examples")
    if data.labels is not None and len(data.labels) != len(data):
        raise UserError(f"{data.source}: {len(data)} sequences but {len(data.labels)} labels")


# ----------------------------------------------------------------------------- files
def read_sequences(path: Union[str, Path], text_col: Optional[str] = None, label_col: Optional[str] = None,
                   labelled: bool = True) -> SequenceData:
    """Read CSV/TSV (long, wide or UCR rows), a class folder, ``.npz`` or a UEA ``.ts(.gz)`` file.
    ``labelled=False``: labels optional (a UCR file's first column is its label all the same)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_class_folder(path)
    name = path.name.lower()
    if name.endswith(".npz"):
        return read_npz(path, labelled)
    if name.endswith(".ts") or name.endswith(".ts.gz"):
        from rnnkit.data.uea import read_ts

        ts = read_ts(path)
        return SequenceData(kind="numeric", steps=ts.steps, offsets=ts.offsets, labels=[str(v) for v in ts.y],
                            source=str(path))
    if name.endswith(".csv") or name.endswith(".tsv"):
        return read_csv(path, text_col, label_col, labelled)
    raise UserError(f"{path}: unknown format; give a .csv, .tsv, .npz, .ts file or a folder of <class>.txt files")


def read_csv(path: Path, text_col: Optional[str], label_col: Optional[str], labelled: bool = True) -> SequenceData:
    """CSV/TSV: one example per row. Columns default to the first of sequence/text/name/x and label/class/y/target;
    without a sequence column (and no ``text_col``), a UCR-archive file or a wide table (``rnnkit.data.wide``)."""
    from rnnkit.data.series import check_separator

    if text_col is None and (rows := _read_wide(path, label_col, labelled)) is not None:
        return rows
    df = wide.read_table(path, dtype=str, keep_default_na=False)
    cols = list(df.columns)
    check_separator([str(c) for c in cols], path)
    text_col = _pick_column(path, cols, text_col, TEXT_COLUMNS, "sequence", "--text-col")
    label_present = label_col in cols if label_col else any(c in cols for c in LABEL_COLUMNS)
    labels = None
    if labelled or label_present:
        label_col = _pick_column(path, cols, label_col, LABEL_COLUMNS, "label", "--label-col")
        if label_col == text_col:  # the labels as inputs: a perfect score that means nothing
            raise UserError(f"{path}: column {text_col!r} is both the sequence and the label column; "
                            f"name the other one with --text-col / --label-col")
        labels = [s.strip() for s in df[label_col].tolist()]
        empty = [i for i, s in enumerate(labels) if not s]
        if empty:
            raise UserError(f"{path}: row {empty[0] + 2} has an empty label in column {label_col!r}")
    texts = df[text_col].tolist()
    if not texts:
        raise UserError(f"{path}: no rows")
    empty = [i for i, s in enumerate(texts) if not s.strip()]
    if empty:
        raise UserError(f"{path}: row {empty[0] + 2} has an empty sequence in column {text_col!r}")
    numbers = _as_numbers(texts, path, text_col)
    if numbers is not None:
        for i, a in enumerate(numbers):  # say the CSV line, not the example index
            bad = first_bad(a)
            if bad is not None:
                raise UserError(f"{path}: row {i + 2}, number {bad[0] + 1} in column {text_col!r}: "
                                f"{describe(float(a[bad]))}")
        return _from_ragged(numbers, labels, str(path))
    return SequenceData(kind="tokens", texts=texts, labels=labels, source=str(path))


def _read_wide(path: Path, label_col: Optional[str], labelled: bool) -> Optional[SequenceData]:
    """One series per row, one value per column (UCR archive rows, or a wide table with a header);
    None when the file is in neither layout (the rule: rnnkit.data.wide)."""
    rows = wide.read_wide(path, label_col, labelled, TEXT_COLUMNS, LABEL_COLUMNS)
    if rows is None:
        return None
    return SequenceData(kind="numeric", steps=rows[1], offsets=rows[2], labels=rows[0], source=str(path))


def _pick_column(path: Path, cols: list[str], wanted: Optional[str], defaults: Sequence[str], what: str, flag: str) -> str:
    have = ", ".join(map(str, cols[:12])) + (" ..." if len(cols) > 12 else "")
    if wanted is not None:
        if wanted not in cols:
            raise UserError(f"{path}: no {what} column {wanted!r}; columns are {have}")
        return wanted
    for c in defaults:
        if c in cols:
            return c
    raise UserError(f"{path}: no {what} column (looked for {', '.join(defaults)}); name it with {flag}; columns are {have}")


def _as_numbers(texts: list[str], path: Path, col: str) -> Optional[list[np.ndarray]]:
    """Rows like '0.1 0.5 -2' -> univariate series (T, 1); None (text) if any row is not all numbers,
    unless most rows are series of numbers: then the odd row is a typo or a missing-value mark ('NA',
    '?'), and reading the whole column as characters would train on garbage, so it is an error."""
    out, bad, series = [], None, 0
    for i, s in enumerate(texts):
        parts = s.replace(",", " ").split()
        try:
            out.append(np.array([float(p) for p in parts], dtype=np.float64)[:, None])
        except ValueError:
            if bad is None:
                bad = (i, next(p for p in parts if not wide.is_number(p)))
            continue
        series += len(parts) >= 2
    if bad is None:
        return out
    if series > len(texts) / 2:
        raise UserError(f"{path}: row {bad[0] + 2} in column {col!r}: {bad[1][:40]!r} is not a number, while "
                        f"{series} of {len(texts)} rows are numeric series; fix that value (missing values "
                        f"are not supported)")
    return None


def read_class_folder(path: Path) -> SequenceData:
    """Folder of ``<class>.txt`` files, one example per non-empty line."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".txt")  # Windows: B.TXT
    if not files:
        subs = sorted(p.name for p in path.iterdir() if p.is_dir())[:3]  # aclImdb style: pos/, neg/
        hint = f" (it holds folders {', '.join(subs)}: one example per line of <class>.txt is read)" if subs else ""
        raise UserError(f"{path}: no <class>.txt files in the folder{hint}")
    texts, labels = [], []
    for f in files:
        raw = f.read_bytes()
        lines = [ln.strip() for ln in decode_text(raw, str(f)).splitlines() if ln.strip()] if raw.strip() else []
        if not lines:
            raise UserError(f"{f}: class {f.stem!r} has no examples (empty file)")
        texts += lines
        labels += [f.stem] * len(lines)
    return SequenceData(kind="tokens", texts=texts, labels=labels, source=str(path))


def read_npz(path: Path, labelled: bool = True) -> SequenceData:
    """``X (n, time, features)``, ``y (n,)``, optional ``lengths (n,)``; no pickled objects."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise UserError(f"{path}: cannot read .npz without pickle ({exc}); store numbers/strings, not objects") from None
    except MemoryError:
        raise UserError(f"{path}: an array in the .npz is too large for memory") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, zlib.error, OSError: a broken file
        raise UserError(f"{path}: not a valid .npz file ({type(exc).__name__}: {exc_summary(exc)})") from None
    if "X" not in arrays:
        raise UserError(f"{path}: no array 'X' (found {', '.join(arrays) or 'nothing'})")
    X = arrays["X"]
    if X.ndim not in (2, 3):  # checked first: a scalar X has no examples to count
        raise UserError(f"{path}: X must have shape (n, time, features) or (n, time), got {X.shape}")
    if labelled and "y" not in arrays:
        raise UserError(f"{path}: no array 'y' with the labels (found {', '.join(arrays)})")
    y = arrays.get("y")
    if y is not None:
        if y.ndim != 1:
            raise UserError(f"{path}: y must have shape (n,), got {y.shape}")
        if y.dtype.kind not in "biuUS":  # floats as labels: 1.0 vs 1 would make two classes; NaN no class
            if y.dtype.kind != "f" or not np.all(np.isfinite(y)):
                raise UserError(f"{path}: y must hold integer or string labels, got dtype {y.dtype}")
        if y.shape[0] != X.shape[0]:
            raise UserError(f"{path}: X has {X.shape[0]} examples but y has {y.shape[0]}")
        y = [_label(v, path) for v in y.tolist()]
    return _from_padded(X, y, arrays.get("lengths"), str(path))


def _label(v, path: Path) -> str:
    if isinstance(v, bytes):  # an 'S' array: bytes labels must be text
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path}: y holds a label that is not UTF-8 text: {v!r}") from None
    return str(v)


# ----------------------------------------------------------------------------- labels
def check_labels(labels: Optional[list[str]], source: str, min_per_class: int = 2) -> list[str]:
    """Classes for training, sorted. Needs >= 2 classes, each with >= ``min_per_class`` examples."""
    if labels is None:
        raise UserError(f"{source}: labels are needed for training")
    counts = Counter(labels)
    if len(counts) < 2:
        raise UserError(f"{source}: need at least 2 classes to train, found {len(counts)} ({', '.join(counts)})")
    rare = sorted(c for c, k in counts.items() if k < min_per_class)
    if rare:
        raise UserError(f"{source}: class {rare[0]!r} has {counts[rare[0]]} example(s); every class needs at least "
                        f"{min_per_class} (to train and to validate)")
    return sorted(counts)


def stratified_split(labels: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): each class keeps >= 1 training example and, when val_fraction > 0,
    gives round(fraction * count) (at least 1) to validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"validation fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train, val = [], []
    for c in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = 0 if val_fraction == 0 else min(len(idx) - 1, max(1, int(round(val_fraction * len(idx)))))
        val.extend(idx[:k].tolist())
        train.extend(idx[k:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)
