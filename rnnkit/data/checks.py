"""Value checks shared by the data loaders: one rule for "too big or not a number".

Training runs in float32. A value whose square overflows float32 (|x| > ~1.8e19) turns the
per-window statistics, the loss or a gradient into inf/NaN, and the run then "succeeds" with
NaN weights or empty forecasts. So every loader rejects, with the position, non-finite
values and values above ``MAX_MAGNITUDE`` (1e15: its square, 1e30, still leaves room for
sums over long windows) instead of training on them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

MAX_MAGNITUDE = 1e15


def bad_mask(values: np.ndarray, limit: float = MAX_MAGNITUDE) -> np.ndarray:
    """Boolean mask, same shape as ``values`` (any real numeric dtype): NaN, inf or |x| > limit."""
    a = np.asarray(values)
    if a.dtype.kind in "biu":  # integers are finite; only their size can be wrong
        return np.abs(a.astype(np.float64)) > limit
    with np.errstate(invalid="ignore", over="ignore"):
        return ~np.isfinite(a) | (np.abs(a) > limit)


def first_bad(values: np.ndarray, limit: float = MAX_MAGNITUDE) -> Optional[tuple[int, ...]]:
    """Index of the first bad value (see ``bad_mask``) in C order, or None when all are fine."""
    mask = bad_mask(values, limit)
    if not mask.any():
        return None
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(mask.ravel())), mask.shape))


def describe(value: float, limit: float = MAX_MAGNITUDE) -> str:
    """What is wrong with one bad value, for an error message."""
    if not np.isfinite(value):
        return f"non-finite value {value!r} (NaN/inf, or beyond the float range)"
    return (f"value {value:.4g} whose magnitude exceeds {limit:.0e} (float32 training would overflow); "
            f"rescale the data, e.g. divide by a constant or take logs")
