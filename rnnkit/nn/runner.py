"""Run one cell over time: the single sequence loop every non-fused path uses.

Time-major throughout: ``x: (time, batch, features)``. Variable lengths are handled
by freezing a sequence's state after its last real step and zeroing its outputs.

Two loops share the step semantics; both do the input projection for all steps in one
matmul. With autograd on (training) the outputs are collected and stacked. With autograd
off the loop runs under ``torch.inference_mode`` (no version counters or view tracking
per op) and writes each output into one preallocated tensor instead of stacking a list
(together ~3% faster here; docs/bench/speed.md). For a compiled loop see ``rnnkit.nn.compiled``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

State = tuple[Tensor, ...]
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]
ProjectFn = Callable[[Tensor], Tensor]


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
    project: Optional[ProjectFn] = None,
    compiled: Optional[Callable[[Tensor, State, Optional[Tensor]], Optional[tuple[Tensor, State]]]] = None,
) -> tuple[Tensor, State]:
    """Run ``step`` over ``xp: (time, batch, F)`` from ``state`` (tuple of (batch, S)).

    ``project`` (optional): the cell's input-only part (``Cell.project_input``), applied to
    all of ``xp`` once before the steps read it. ``compiled`` (optional, inference only): a
    ``rnnkit.nn.compiled.CompiledLoop`` of the same step and projection, given ``xp`` NOT
    projected (it projects itself, per step where it can), used unless it returns None.
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
    if torch.is_grad_enabled():
        y, state = _run_autograd(step, xp if project is None else project(xp), state, alive_all)
    else:
        done = None
        if compiled is not None:
            done = compiled(xp, state, alive_all)
        y, state = done if done is not None else _run_inference(step, xp, state, alive_all, project)
    if reverse:
        y = reverse_padded(y, lengths)
    return y, state


def _advance(step: StepFn, x_t: Tensor, state: State, alive: Optional[Tensor]) -> tuple[Tensor, State]:
    """One step; with ``alive: (batch, 1)`` finished sequences keep their state and output 0."""
    y_t, new = step(x_t, state)
    if alive is not None:
        new = tuple(torch.where(alive, n, s) for n, s in zip(new, state))
        y_t = torch.where(alive, y_t, torch.zeros_like(y_t))
    return y_t, new


def _run_autograd(step: StepFn, xp: Tensor, state: State, alive_all: Optional[Tensor]) -> tuple[Tensor, State]:
    outs = []
    # unbind, not xp[t]: the backward of each xp[t] would allocate a full (T, B, F) zero grad.
    for t, x_t in enumerate(xp.unbind(0)):
        y_t, state = _advance(step, x_t, state, None if alive_all is None else alive_all[t])
        outs.append(y_t)
    return torch.stack(outs), state


def _run_inference(
    step: StepFn, x: Tensor, state: State, alive_all: Optional[Tensor], project: Optional[ProjectFn]
) -> tuple[Tensor, State]:
    T = x.shape[0]
    out: Optional[Tensor] = None
    with torch.inference_mode():
        xp = x if project is None else project(x)
        for t, x_t in enumerate(xp.unbind(0)):
            y_t, state = _advance(step, x_t, state, None if alive_all is None else alive_all[t])
            if out is None:
                # allocated outside inference mode: callers get a normal tensor back
                with torch.inference_mode(False):
                    out = torch.empty((T, *y_t.shape), dtype=y_t.dtype, device=y_t.device)
            out[t].copy_(y_t)
    if out is None:  # T == 0 is refused by the layers' input checks; keep the contract anyway
        raise ValueError("run_cell needs at least one time step")
    # the state tensors were made in inference mode; copies are normal tensors again
    return out, tuple(s.clone() for s in state)
