"""Static covariates: one row per series (category, store, region, size...), keyed by the id column.

A static table has the series id column (the data's ``--id-col``, or ``unique_id``) and any number
of feature columns. A column whose values are all numbers is *numeric* (standardised with the
training mean and std); any other column is *categorical* (its values, as text, get an index into a
learned embedding, and a *level*: the mean target of the training series with that value, a target
encoding the network compares with each window's own level). ``StaticEncoder`` keeps the
vocabularies, levels and scaling (a JSON extra of the model folder); the embeddings (and the
levels again, as buffers) are in the network's state_dict.

Rules for what training did not see (documented in docs/forecast.md):
- a category value unseen in training maps to the reserved index 0, "unknown", whose embedding is
  learned by replacing 10 % of the categories of each training batch with it;
- a series with no row in the static table at predict time gets "unknown" for every category and
  the training mean for every number, and a one-line note says how many series that was; at
  training time every series needs a row (UserError otherwise);
- missing values and duplicate ids are errors (nothing is filled silently).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, TextIO, Union

import numpy as np
import pandas as pd

from rnnkit.data.checks import MAX_MAGNITUDE, describe
from rnnkit.errors import UserError

StaticLike = Union[str, Path, pd.DataFrame]
UNKNOWN = 0  # category index for values (and series) not seen in training


def embedding_size(cardinality: int) -> int:
    """Embedding width for a categorical column with ``cardinality`` known values (fastai's rule
    1.6 n^0.56, capped at 8: static features only condition a small forecaster)."""
    return int(min(8, max(2, round(1.6 * cardinality ** 0.56))))


def read_static(data: StaticLike, id_col: Optional[str]) -> tuple[pd.DataFrame, str]:
    """Load and validate a static table -> (frame indexed by id as text, key column name).

    The key is ``id_col`` when the table has it, else ``unique_id``.
    """
    from rnnkit.data.series import read_csv

    if isinstance(data, pd.DataFrame) and "rnnkit_key" in data.attrs:  # already read and checked
        return data, data.attrs["rnnkit_key"]
    where = "the static table" if isinstance(data, pd.DataFrame) else str(data)
    text_cols = (id_col, "unique_id")  # ids as text: "007" must match the data's "007"
    df = data.reset_index(drop=True) if isinstance(data, pd.DataFrame) else read_csv(data, text_cols)
    if df.empty:
        raise UserError(f"{where} has no rows")
    key = id_col if id_col and id_col in df.columns else ("unique_id" if "unique_id" in df.columns else None)
    if key is None:
        want = f"{id_col!r} or 'unique_id'" if id_col and id_col != "unique_id" else "'unique_id'"
        raise UserError(f"{where} needs the series id column {want} (columns: {', '.join(map(str, df.columns[:12]))})")
    if df.shape[1] < 2:
        raise UserError(f"{where} has no feature columns besides {key!r}")
    ids = df[key].astype(str)
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((ids == ids.iloc[i]).to_numpy())[0])
        raise UserError(f"{where}: series {ids.iloc[i]!r} has two rows (lines {first + 2} and {i + 2})")
    for c in df.columns:
        miss = df[c].isna().to_numpy()
        if miss.any():
            raise UserError(f"column {c!r} in {where} has {int(miss.sum())} missing value(s), first at line "
                            f"{int(np.flatnonzero(miss)[0]) + 2}; fill them first (rnnkit does not guess)")
    for c in df.columns.drop(key):
        if _is_numeric(df[c]):  # a numeric column is standardised: inf or 1e308 would make its std inf / NaN
            v = pd.to_numeric(df[c]).to_numpy(dtype=np.float64)
            bad = ~(np.abs(v) <= MAX_MAGNITUDE)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise UserError(f"column {c!r} in {where}, line {i + 2}: {describe(float(v[i]))}")
    out = df.drop(columns=[key]).set_index(ids.to_numpy())
    out.attrs["where"] = where
    out.attrs["rnnkit_key"] = key
    return out, key


def _is_numeric(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return False
    return bool(pd.to_numeric(col, errors="coerce").notna().all())


@dataclass
class StaticEncoder:
    """Vocabularies and scaling of the static columns seen in training (see module docstring)."""

    key: str
    numeric: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    vocab: list[list[str]] = field(default_factory=list)  # known values; index = position + 1
    level: list[list[float]] = field(default_factory=list)  # per column: [unknown, value 1, ...] mean target

    @classmethod
    def fit(cls, table: pd.DataFrame, key: str, ids: Sequence[str],
            series_level: Optional[Sequence[float]] = None) -> "StaticEncoder":
        """Learn from the rows of the training series ``ids`` (every one must have a row).
        series_level: each series' mean target (for the per-category levels; 0 when not given)."""
        where = table.attrs.get("where", "the static table")
        missing = [i for i in ids if i not in table.index]
        if missing:
            raise UserError(f"{where} has no row for {len(missing)} training series, e.g. {missing[0]!r}; "
                            f"every training series needs its static features")
        rows = table.loc[list(ids)]
        enc = cls(key=key)
        for c in table.columns:
            if _is_numeric(rows[c]):
                v = pd.to_numeric(rows[c]).to_numpy(dtype=np.float64)
                sd = float(v.std())
                enc.numeric.append(str(c))
                enc.mean.append(float(v.mean()))
                enc.std.append(sd if sd > 1e-12 else 1.0)
            else:
                values = rows[c].astype(str).to_numpy()
                vocab = sorted(set(values))
                lv = np.zeros(len(ids)) if series_level is None else np.asarray(series_level, np.float64)
                enc.categorical.append(str(c))
                enc.vocab.append(vocab)
                # the mean over series (not points): a long series does not outweigh its group
                enc.level.append([float(lv.mean())] + [float(lv[values == v].mean()) for v in vocab])
        return enc

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding rows per categorical column (known values + unknown)."""
        return tuple(len(v) + 1 for v in self.vocab)

    def encode(self, table: Optional[pd.DataFrame], ids: Sequence[str], log: Optional[TextIO] = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Features of series ``ids``: numbers (S, N) standardised float32, categories (S, C) int64.
        log: where the note on series missing from the table goes (None: nowhere)."""
        if table is None:
            raise UserError("this model was trained with static covariates: pass the static table "
                            "(--static FILE / static=)")
        where = table.attrs.get("where", "the static table")
        absent = [c for c in self.numeric + self.categorical if c not in table.columns]
        if absent:
            raise UserError(f"{where} lacks the static column(s) {', '.join(map(repr, absent))} the model was "
                            f"trained with")
        known = np.array([i in table.index for i in ids], dtype=bool)
        S = len(ids)
        num = np.zeros((S, len(self.numeric)), np.float32)
        cat = np.full((S, len(self.categorical)), UNKNOWN, np.int64)
        rows = table.loc[[i for i, k in zip(ids, known) if k]]
        for j, c in enumerate(self.numeric):
            v = pd.to_numeric(rows[c], errors="coerce")
            if v.isna().any():
                raise UserError(f"static column {c!r} in {where} was numeric in training but has "
                                f"{rows[c][v.isna()].iloc[0]!r} for series {v.index[v.isna()][0]!r}")
            num[known, j] = (v.to_numpy(np.float64) - self.mean[j]) / self.std[j]
        for j, c in enumerate(self.categorical):
            index = {v: k + 1 for k, v in enumerate(self.vocab[j])}
            cat[known, j] = [index.get(v, UNKNOWN) for v in rows[c].astype(str)]
        if (~known).any() and log is not None:
            first = ids[int(np.flatnonzero(~known)[0])]
            print(f"rnnkit: note: {int((~known).sum())} series (e.g. {first!r}) not in {where}: their static "
                  f"features are set to unknown / the training mean", file=log)
        return num, cat

    def to_dict(self) -> dict:
        return {"key": self.key, "numeric": self.numeric, "mean": self.mean, "std": self.std,
                "categorical": self.categorical, "vocab": self.vocab, "level": self.level}

    @classmethod
    def from_dict(cls, d: dict) -> "StaticEncoder":
        return cls(str(d["key"]), list(d["numeric"]), [float(v) for v in d["mean"]], [float(v) for v in d["std"]],
                   list(d["categorical"]), [list(map(str, v)) for v in d["vocab"]],
                   [[float(x) for x in v] for v in d["level"]])
