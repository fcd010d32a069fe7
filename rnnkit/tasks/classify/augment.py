"""Training-batch augmentation for numeric series (small data): noise, amplitude scaling, crops.

All functions take a normalised batch ``x: (B, T, F)`` with ``lengths: (B,)`` and return a new
batch of the same layout; padded steps stay zero. They run inside the training loss only, so
validation and prediction see the data as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.tasks.classify.frontend import step_mask


@dataclass
class Augment:
    """``noise``: Gaussian std in per-feature standard deviations; ``scale``: log-normal std of a
    per-series, per-channel amplitude factor around the series' own mean; ``crop``: the largest
    share of a series cut off (split at random between start and end)."""

    noise: float = 0.0
    scale: float = 0.0
    crop: float = 0.0

    @property
    def active(self) -> bool:
        return self.noise > 0 or self.scale > 0 or self.crop > 0

    def __call__(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.crop > 0:
            x, lengths = random_crop(x, lengths, self.crop)
        m = step_mask(lengths, x.shape[1], x)
        if self.scale > 0:
            n = m.sum(1, keepdim=True).clamp_min(1.0)
            mean = (x * m).sum(1, keepdim=True) / n  # (B, 1, F)
            a = torch.exp(self.scale * torch.randn(x.shape[0], 1, x.shape[2], device=x.device, dtype=x.dtype))
            x = mean + (x - mean) * a  # shape scaled, level kept
        if self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        return x * m, lengths


def random_crop(x: Tensor, lengths: Tensor, share: float) -> tuple[Tensor, Tensor]:
    """Cut ``u * share * length`` steps (u ~ U(0, 1)) per series, a random part of them from the start.

    Series of fewer than 8 steps are left whole (a crop there removes most of the signal)."""
    B, T, _ = x.shape
    L = lengths.to(x.device)
    cut = (torch.rand(B, device=x.device) * share * L).floor().long()
    cut = torch.where(L >= 8, cut, torch.zeros_like(cut))
    start = (torch.rand(B, device=x.device) * (cut + 1)).floor().long().clamp(max=cut)
    new_L = (L - cut).clamp_min(1)
    idx = (torch.arange(T, device=x.device)[None, :] + start[:, None]).clamp(max=T - 1)  # (B, T)
    out = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))
    return out, new_L.to(lengths.dtype).to(lengths.device)
