"""Opt-in compiled inference loop for any cell: the whole recurrence as one compiled scan.

``Recurrent(cell, ..., compile=True)`` runs inference (autograd off) through
``torch._higher_order_ops.scan`` over the cell's step, compiled by Inductor with its C++
wrapper: the time loop runs in C++, each step is the cell's matmuls plus one fused
elementwise kernel, and no Python runs per step. The cell's input projection
(``project_input``) runs inside the scan, one time step at a time, instead of once over the
whole sequence: for a small input the hoisted projection is a memory-bound pass that writes
(and the steps read back) the whole (time, batch, 4H) pre-activation tensor, a third of the
fused kernel's time here, while per step its (batch, 4H) result stays in cache. That
needs ``project_input`` to act on each time step alone; it is checked once, on the first
input with two or more steps, and a cell whose projection mixes time steps keeps the hoisted
projection. Measured on the bench cell (bench/custom_cell.py, B=64, T=100, H=256): see
docs/bench/speed.md; the first call compiles (10-14 s with a warm Inductor cache, about a
minute cold), and shapes are dynamic, so new batch sizes or lengths mostly do not
recompile (batch 1 does: torch specialises size-1 dimensions).

Exactness: the same ops in the same order, except that Inductor evaluates ``tanh`` as
``2 / (1 + exp(-2x)) - 1`` (its Sleef ``tanh`` was 5x slower than ATen's here), which
differs from ``torch.tanh`` by ~1e-7 absolute. Any cell that cannot be captured whole
(data-dependent Python control flow, unsupported ops, no C++ compiler) falls back to the
eager loop after one warning.
"""
from __future__ import annotations

import itertools
import types
import warnings
from typing import Callable, Optional

import torch
from torch import Tensor

State = tuple[Tensor, ...]
StepFn = Callable[[Tensor, State], tuple[Tensor, State]]
ProjectFn = Callable[[Tensor], Tensor]

# cpp_wrapper: the while-loop of the scan in generated C++ instead of Python (~12% faster
# here); decompose_tanh: see the module docstring.
INDUCTOR_OPTIONS = {"cpp_wrapper": True, "cpp.use_decompose_tanh": True}


class CompiledLoop:
    """The recurrence of one cell (one layer, one direction) as a compiled scan.

    ``loop(x, state, alive)`` with ``x: (time, batch, F)`` NOT yet projected (``project``,
    the cell's ``project_input``, is applied here), ``state`` a tuple of (batch, S) and
    ``alive: (time, batch, 1)`` bool or None returns ``(y: (time, batch, out), final state)``
    — the eager runner's results — or None when this cell could not be compiled (the caller
    then runs the eager loop).
    """

    _count = itertools.count()

    def __init__(self, step: StepFn, project: Optional[ProjectFn] = None):
        self.step, self.project = step, project
        self.failed: Optional[str] = None
        # project inside the scan, per step? None until checked on an input of >= 2 steps
        self.per_step: Optional[bool] = None if project is not None else False
        # torch.compile caches (and counts recompilations) per code object; one private copy of
        # _scan per loop keeps the cells of a stacked/bidirectional layer from sharing that limit
        fn = CompiledLoop._scan
        code = fn.__code__.replace(co_name=f"_scan_{next(CompiledLoop._count)}")
        own = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
        self._fn = torch.compile(types.MethodType(own, self), dynamic=True, fullgraph=True, options=INDUCTOR_OPTIONS)

    def _scan(self, xp: Tensor, state: State, alive: Optional[Tensor], per_step: bool) -> tuple[Tensor, State]:
        from torch._higher_order_ops.scan import scan

        cell_step, project = self.step, self.project

        def step(x_t: Tensor, carry: State) -> tuple[Tensor, State]:
            if per_step:  # project_input's contract is (time, batch, F): a one-step sequence
                x_t = project(x_t.unsqueeze(0)).squeeze(0)
            return cell_step(x_t, carry)

        def plain(carry: State, x_t: Tensor):
            y, new = step(x_t, carry)
            return tuple(new), y.clone()  # scan refuses an output that aliases the carry

        def masked(carry: State, xs: tuple[Tensor, Tensor]):
            x_t, a = xs
            y, new = step(x_t, carry)
            new = tuple(torch.where(a, n, s) for n, s in zip(new, carry))
            return new, torch.where(a, y, torch.zeros_like(y))

        if alive is None:
            final, ys = scan(plain, tuple(state), xp)
        else:
            final, ys = scan(masked, tuple(state), (xp, alive))
        return ys, tuple(final)

    def _projects_per_step(self, x: Tensor) -> bool:
        """Does ``project`` give the same on each step alone as on the sequence? ``x: (T>=2, B, F)``."""
        whole = self.project(x[:2])
        parts = torch.cat([self.project(x[t:t + 1]) for t in range(2)])
        return whole.shape == parts.shape and torch.allclose(whole, parts, rtol=1e-5, atol=1e-6)

    def __call__(self, x: Tensor, state: State, alive: Optional[Tensor]) -> Optional[tuple[Tensor, State]]:
        if self.failed is not None:
            return None
        try:
            if self.per_step is None and x.shape[0] >= 2:
                self.per_step = self._projects_per_step(x)
            per_step = bool(self.per_step)  # undecided (one-step input): hoisted, as the eager loop
            xp = x if per_step or self.project is None else self.project(x)
            return self._fn(xp, tuple(state), alive, per_step)
        except Exception as exc:  # dynamo/inductor raise many types; any of them means "not compilable"
            self.failed = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            warnings.warn(f"compile=True: the cell {type(self.step).__name__} could not be compiled as one scan "
                          f"({self.failed[:200]}); running the eager loop instead", RuntimeWarning, stacklevel=3)
            return None
