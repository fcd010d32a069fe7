"""Input front end of the classifier for numeric series: per-series standardisation and a
(strided) convolution that shortens long series instead of truncating them.

Shapes: ``h: (B, T, F)`` with ``lengths: (B,)``; padded steps (t >= length) are zero on input
and never influence real steps.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def step_mask(lengths: Tensor, T: int, like: Tensor) -> Tensor:
    """(B, T, 1) mask of real steps, dtype and device of ``like``."""
    return (torch.arange(T, device=like.device)[None, :] < lengths.to(like.device)[:, None]).unsqueeze(-1).to(like.dtype)


def series_standardise(h: Tensor, lengths: Tensor, eps: float = 1e-3) -> Tensor:
    """Each series and channel minus its own mean over real steps, divided by its own std.

    Why: offsets and scales that differ from series to series (sensor gain, baseline) swamp the
    shape after a global scaling; this view is invariant to them, while the globally scaled view
    next to it keeps the level for problems where the level is the signal. ``eps`` (in global
    standard deviations, squared) keeps a flat series at ~0 instead of amplifying its noise.
    """
    m = step_mask(lengths, h.shape[1], h)
    n = m.sum(1, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
    mean = (h * m).sum(1, keepdim=True) / n
    var = (((h - mean) * m) ** 2).sum(1, keepdim=True) / n
    return (h - mean) / torch.sqrt(var + eps) * m


def conv_front(conv: nn.Conv1d, h: Tensor, lengths: Tensor, stride: int,
               more: Sequence[nn.Conv1d] = ()) -> tuple[Tensor, Tensor]:
    """``[raw (average-pooled by stride), relu(conv(raw))]`` -> ((B, ceil(T/s), F + C), new lengths).

    ``more``: further same-length convs applied (ReLU, padding re-zeroed) to the conv's features.
    The conv has padding ``k // 2`` with an odd ``k``, so its output has ``ceil(T / s)`` steps and a
    series of length L keeps ``ceil(L / s)`` real steps. The raw input is kept beside the learned
    features (pooled over each stride window, padding excluded) so nothing the conv misses is lost.
    """
    m = step_mask(lengths, h.shape[1], h)
    h = h * m  # padded steps are zero: they never leak into real steps' windows
    c = torch.relu(conv(h.transpose(1, 2))).transpose(1, 2)  # (B, T', C)
    if stride > 1 or more:
        lengths_out = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
        m_out = step_mask(lengths_out, c.shape[1], c)
        for layer in more:
            c = torch.relu(layer((c * m_out).transpose(1, 2))).transpose(1, 2)
    if stride > 1:
        num = F.avg_pool1d((h * m).transpose(1, 2), stride, stride, ceil_mode=True)
        den = F.avg_pool1d(m.transpose(1, 2), stride, stride, ceil_mode=True).clamp_min(1e-6)
        h = (num / den).transpose(1, 2)  # (B, T', F): mean of each window's real steps
        lengths = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
    T = min(h.shape[1], c.shape[1])
    return torch.cat([h[:, :T], c[:, :T]], dim=-1), lengths
