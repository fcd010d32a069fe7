"""UEA / UCR time-series archive: the `.ts` reader and the shipped multivariate datasets.

The `.ts` format (sktime/aeon's) is a header of ``@key value`` lines then ``@data``;
each data line is one case: dimensions separated by ``:``, values by ``,``, the class
label last. Dimensions of one case share a length; cases may differ (``@equalLength false``).

Shipped (official train/test splits, see ``datasets/uea/LICENSE.txt``):
``BasicMotions`` (6 dims, length 100, 4 classes) and ``JapaneseVowels`` (12 dims,
lengths 7-29, 9 classes).
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from rnnkit.data.checks import describe, first_bad
from rnnkit.data.ragged import offsets_of, pad
from rnnkit.errors import UserError

DATA_DIR = Path(__file__).parent / "datasets" / "uea"
SHIPPED = ("BasicMotions", "JapaneseVowels")


@dataclass
class TSData:
    """One split of a `.ts` file, stored ragged (a case costs its own length, not the longest one's).

    steps: (total, F) float32, the cases end to end (case i is ``steps[offsets[i]:offsets[i + 1]]``);
    offsets: (n + 1,) int64; y: (n,) str labels; class_labels: the header's label order.
    """

    steps: np.ndarray
    offsets: np.ndarray
    y: np.ndarray
    class_labels: list[str]
    name: str

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int64 steps per case."""
        return np.diff(self.offsets)

    @property
    def X(self) -> np.ndarray:
        """(n, T_max, F) float32, zero-padded after each case's length (built on each access)."""
        return pad(self.steps, self.offsets)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, gunzipped when named ``.gz``. A file that is not
    gzip, is truncated or holds bytes that are not UTF-8 raises a UserError saying where."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    offset = 0
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UserError(f"{path}:{lineno}: not valid UTF-8 (byte {offset + exc.start}"
                                    f"{' of the uncompressed data' if opener is gzip.open else ''})") from None
                offset += len(raw)
                yield lineno, line
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # not gzip, truncated, corrupt stream
        raise UserError(f"{path}: not a valid gzip file ({type(exc).__name__}: {exc}); "
                        f"a plain .ts file must not be named .ts.gz") from None


def read_ts(path: Union[str, Path]) -> TSData:
    """Read a (optionally gzipped) `.ts` classification file; missing values ('?') are an error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such .ts file")
    header: dict[str, str] = {}
    cases: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for lineno, raw in _lines(path):
        line = raw.strip()
        if not line or line.startswith(("#", "%")):  # both comment styles occur in archive files
            continue
        if not in_data:
            if not line.startswith("@"):
                raise UserError(f"{path}:{lineno}: expected a '@key value' header line before @data")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                if header.get("timestamps", "").lower() == "true":  # '(time,value)' pairs, not values
                    raise UserError(f"{path}: @timestamps true is not supported; write the values without "
                                    f"time stamps (one comma-separated series per dimension)")
                in_data = True
            else:
                header[key] = value.strip()
            continue
        cases.append(_parse_case(line, path, lineno, labels))
    if not in_data:
        raise UserError(f"{path}: no @data section")
    if not cases:
        raise UserError(f"{path}: no cases after @data")
    if (header.get("classlabel", "").split() or ["false"])[0].lower() != "true":
        raise UserError(f"{path}: not a classification file (@classLabel is not true)")
    class_labels = header["classlabel"].split()[1:]
    unknown = sorted(set(labels) - set(class_labels))
    if class_labels and unknown:
        raise UserError(f"{path}: labels {unknown[:5]} are not in the header's @classLabel list")
    dims = {c.shape[1] for c in cases}
    if len(dims) != 1:
        raise UserError(f"{path}: cases have different numbers of dimensions {sorted(dims)}")
    offsets = offsets_of(np.array([c.shape[0] for c in cases], dtype=np.int64))
    name = header.get("problemname", path.name.split("_")[0])
    return TSData(steps=np.concatenate(cases), offsets=offsets, y=np.array(labels),
                  class_labels=class_labels or sorted(set(labels)), name=name)


def _parse_case(line: str, path: Path, lineno: int, labels: list[str]) -> np.ndarray:
    """One data line -> (T, F) array; appends the label."""
    *dims, label = line.split(":")
    if not dims:
        raise UserError(f"{path}:{lineno}: a case needs at least one dimension and a label")
    if not label.strip():
        raise UserError(f"{path}:{lineno}: the case has an empty class label (the text after the last ':')")
    series = []
    for d, text in enumerate(dims):
        if "?" in text:
            raise UserError(f"{path}:{lineno}: missing value in dimension {d}; fill or drop it first")
        try:
            values = np.array([float(v) for v in text.split(",")], dtype=np.float64)
        except ValueError:
            raise UserError(f"{path}:{lineno}: dimension {d} has a non-numeric value") from None
        bad = first_bad(values)  # before float32: 1e39 would become inf and train to NaN
        if bad is not None:
            raise UserError(f"{path}:{lineno}: dimension {d}, value {bad[0] + 1}: {describe(float(values[bad]))}")
        series.append(values.astype(np.float32))
    if len({len(s) for s in series}) != 1:
        raise UserError(f"{path}:{lineno}: the dimensions of one case have different lengths")
    labels.append(label.strip())
    return np.stack(series, axis=1)


def load_uea(name: str, split: str) -> TSData:
    """A shipped UEA dataset, ``split`` in {'train', 'test'} (the official split)."""
    if name not in SHIPPED:
        raise UserError(f"unknown UEA dataset {name!r}; shipped: {', '.join(SHIPPED)}")
    if split not in ("train", "test"):
        raise UserError(f"split must be 'train' or 'test', got {split!r}")
    return read_ts(DATA_DIR / f"{name}_{split.upper()}.ts.gz")
