"""Generated data for the tutorial examples: a sine wave and counting sequences.

Everything here is computed, never downloaded; shapes follow rnnkit's batch-first
convention ``(batch, time, features)``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def sine_series(t_end: float = 30.0, step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``(t, sin(t))`` for t = 0, step, ..., t_end (inclusive): 301 points by default."""
    n = int(round(t_end / step)) + 1
    t = np.arange(n, dtype=np.float64) * step  # exact grid, no accumulated float drift
    return t, np.sin(t)


def next_value_windows(series: np.ndarray, window: int, first_target: int, end: int) -> tuple[Tensor, Tensor]:
    """Sliding windows for next-value prediction over ``series[:end]``.

    Window ``i`` has inputs ``series[i : i+window]`` and targets ``series[i+1 : i+window+1]``
    (the next value at every step). Only windows whose LAST target index lies in
    ``[first_target, end)`` are kept, so with ``first_target = split`` every evaluated
    prediction is of a held-out value, and with ``end = split`` no held-out value is touched.

    Returns ``x, y`` of shape ``(n_windows, window, 1)`` as float32.
    """
    if window < 1 or end > len(series) or first_target < window:
        raise ValueError(f"bad window {window} / range [{first_target}, {end}) for a series of {len(series)}")
    starts = range(first_target - window, end - window)
    x = np.stack([series[s : s + window] for s in starts])
    y = np.stack([series[s + 1 : s + window + 1] for s in starts])
    return (torch.tensor(x, dtype=torch.float32).unsqueeze(-1), torch.tensor(y, dtype=torch.float32).unsqueeze(-1))


def count_pairs(starts: tuple[int, ...] = (1, 6), length: int = 5) -> tuple[Tensor, Tensor]:
    """The counting task: ``[s .. s+length-1] -> [s+length .. s+2*length-1]`` for each start.

    Default: ``[1..5] -> [6..10]`` and ``[6..10] -> [11..15]``. Returns ``x, y`` of shape
    ``(len(starts), length, 1)`` as float32 (raw counts, not scaled: scaling is the model's job).
    """
    x = torch.tensor([[s + i for i in range(length)] for s in starts], dtype=torch.float32)
    return x.unsqueeze(-1), (x + length).unsqueeze(-1)


def static_level_panel(n_series: int = 40, length: int = 40, levels: tuple[float, ...] = (20.0, 40.0, 60.0, 80.0),
                       phi: float = 0.9, noise: float = 3.0, seed: int = 0):
    """A panel where a static category decides each series' level: ``y = level[cat] + x``, x an AR(1)
    (coefficient ``phi``, innovations N(0, noise)) that wanders far from the level for long stretches,
    so the history alone estimates the level poorly. Returns (long frame ``unique_id, ds, y``,
    static frame ``unique_id, group, size``); ``size`` is numeric noise, unrelated to y."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, static = [], []
    for i in range(n_series):
        k = i % len(levels)
        x = rng.normal(0.0, noise / np.sqrt(1 - phi ** 2))
        for t in range(length):
            x = phi * x + rng.normal(0.0, noise)
            rows.append((f"s{i}", t, levels[k] + x))
        static.append((f"s{i}", "abcdefghijklmnopqrstuvwxyz"[k], float(rng.uniform(0, 1))))
    return (pd.DataFrame(rows, columns=["unique_id", "ds", "y"]),
            pd.DataFrame(static, columns=["unique_id", "group", "size"]))
