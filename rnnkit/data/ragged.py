"""Ragged storage of variable-length sequences: every sequence's steps end to end plus offsets.

``steps`` (total, F), ``offsets`` (n + 1,) int64; sequence i is ``steps[offsets[i]:offsets[i + 1]]``.
One long sequence among many short ones costs its own steps, not n times its length.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Lengths (n,) -> offsets (n + 1,) int64 of sequences stored end to end (0, l0, l0 + l1, ...)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def take_ragged(steps: np.ndarray, offsets: np.ndarray, idx: Sequence[int], max_len: Optional[int] = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Sequences ``idx`` of a ragged (steps (total, F), offsets (n + 1,)) store, each cut to ``max_len``
    steps when given -> the same layout."""
    idx = np.asarray(idx, dtype=np.int64)
    start = offsets[idx]
    lengths = offsets[idx + 1] - start
    if max_len:
        lengths = np.minimum(lengths, max_len)
    new = offsets_of(lengths)
    pos = np.repeat(start - new[:-1], lengths) + np.arange(int(new[-1]))
    return steps[pos], new


def ragged_from_padded(X: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, F) padded + lengths (n,) -> (steps (total, F) float32, offsets (n + 1,) int64)."""
    return X[np.arange(X.shape[1])[None, :] < lengths[:, None]].astype(np.float32), offsets_of(lengths)


def pad(steps: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Ragged -> (n, T_max, F) float32, zero after each length (small data and tests: this is the
    n x longest-sequence array the ragged layout avoids)."""
    lengths = np.diff(offsets)
    out = np.zeros((len(lengths), int(lengths.max()), steps.shape[1]), dtype=np.float32)
    out[np.arange(out.shape[1])[None, :] < lengths[:, None]] = steps
    return out


def pool_long(steps: np.ndarray, offsets: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Every sequence longer than ``cap`` averaged over windows of ``k = ceil(length / cap)``
    consecutive steps (the last window averages what is left), so it keeps at most ``cap`` steps;
    shorter sequences are unchanged. Ragged (steps (total, F), offsets (n + 1,)) -> the same layout.
    The short sequences between two long ones are copied as one block (the long ones are few: one
    Python step each, no per-step index arrays)."""
    lengths = np.diff(offsets)
    if cap < 1 or len(lengths) == 0 or int(lengths.max()) <= cap:
        return steps, offsets
    parts, start = [], 0
    for i in np.flatnonzero(lengths > cap):
        parts.append(steps[offsets[start]:offsets[i]])
        seq = steps[offsets[i]:offsets[i + 1]]
        windows = np.arange(0, len(seq), -(-len(seq) // cap))
        sums = np.add.reduceat(seq.astype(np.float64), windows, axis=0)
        parts.append((sums / np.diff(np.r_[windows, len(seq)])[:, None]).astype(steps.dtype))
        start = i + 1
    parts.append(steps[offsets[start]:])
    return np.concatenate(parts), offsets_of(pooled_lengths(lengths, cap))


def pooled_lengths(lengths: np.ndarray, cap: int) -> np.ndarray:
    """Lengths (n,) after ``pool_long`` with this ``cap`` (0: unchanged): ceil(length / k) for windows
    of k = ceil(length / cap) steps."""
    if cap < 1:
        return lengths
    return -(-lengths // np.maximum(1, -(-lengths // cap)))
