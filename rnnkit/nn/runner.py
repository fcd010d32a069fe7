"""Run one cell over time: the single sequence loop every non-fused path uses.

Time-major throughout: ``x: (time, batch, features)``. Variable lengths are handled
by freezing a sequence's state after its last real step and zeroing its outputs.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

State = tuple[Tensor, ...]
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]


def reverse_padded(x: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Reverse each sequence within its own length; padding stays at the end.

    x: (time, batch, ...); lengths: (batch,) or None (then a plain flip over time).
    """
    if lengths is None:
        return x.flip(0)
    T, B = x.shape[0], x.shape[1]
    t = torch.arange(T, device=x.device).unsqueeze(1)  # (T, 1)
    L = lengths.to(x.device).unsqueeze(0)  # (1, B)
    idx = torch.where(t < L, L - 1 - t, t)  # (T, B)
    idx = idx.view(T, B, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)


def run_cell(
    step: StepFn,
    xp: Tensor,
    state: State,
    lengths: Optional[Tensor] = None,
    reverse: bool = False,
) -> tuple[Tensor, State]:
    """Run ``step`` over ``xp: (time, batch, F)`` from ``state`` (tuple of (batch, S)).

    Returns ``y: (time, batch, out)`` and the state at each sequence's last real step.
    With ``reverse`` the cell reads each sequence from its last real step backwards and
    ``y`` is returned in the original time order (as torch's bidirectional layers do).
    """
    if reverse:
        xp = reverse_padded(xp, lengths)
    alive_all = None
    if lengths is not None:
        steps = torch.arange(xp.shape[0], device=xp.device).unsqueeze(1)
        alive_all = (steps < lengths.to(xp.device).unsqueeze(0)).unsqueeze(-1)  # (T, B, 1) bool
    outs = []
    # unbind, not xp[t]: the backward of each xp[t] would allocate a full (T, B, F) zero grad.
    for t, x_t in enumerate(xp.unbind(0)):
        y_t, new = step(x_t, state)
        if alive_all is not None:
            alive = alive_all[t]
            new = tuple(torch.where(alive, n, s) for n, s in zip(new, state))
            y_t = torch.where(alive, y_t, torch.zeros_like(y_t))
        state = new
        outs.append(y_t)
    y = torch.stack(outs)
    if reverse:
        y = reverse_padded(y, lengths)
    return y, state
