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
projection.

The cell's ``linear`` calls on 2-D fp32 weights (``nn.Linear``, ``F.linear``) run from
MKL-packed copies of those weights (``mkl._mkl_linear``, what Inductor's freezing would use;
freezing itself does not reach into the scan's body): a custom Dynamo backend rewrites the
graph before Inductor compiles it, and the packed copies are buffers of the compiled graph.
They are opaque MKL tensors that cannot be refreshed in place, so weights are not frozen
silently: every call compares each packed weight's (tensor, version counter, address) with
what it was packed from, and any change (an optimizer step, ``load_state_dict``) makes that
call recompile (1-2 s with warm Inductor caches). MKL packs for one batch size (the first
call's); other batch sizes take MKL's unpacked path. Each packed copy costs ~8-10 MB (MKL's packed layout), per weight and compiled graph. If the rewrite or its
compilation fails, the plain graph is compiled instead. Results are bit-identical to
``addmm`` here. Measured on the bench cell (bench/custom_cell.py, B=64, T=100, H=256): see
docs/bench/speed.md (1.35-1.4x the fused oneDNN LSTM); the first call compiles (6-14 s
with a warm Inductor cache, about a minute cold), and shapes are dynamic, so new batch sizes or lengths mostly do not
recompile (batch 1 does: torch specialises size-1 dimensions).

Exactness: the same ops in the same order, except that Inductor evaluates ``tanh`` as
``2 / (1 + exp(-2x)) - 1`` (its Sleef ``tanh`` was 5x slower than ATen's here), which
differs from ``torch.tanh`` by ~1e-7 absolute. Any cell that cannot be captured whole
(data-dependent Python control flow, unsupported ops, no C++ compiler) falls back to the
eager loop after one warning.
"""
from __future__ import annotations

import copy
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


def _packed_linear(x: Tensor, packed: Tensor, weight: Tensor, bias: Optional[Tensor], batch: int) -> Tensor:
    """``F.linear(x, weight, bias)`` from MKL-packed weights (bit-identical to MKL's ``addmm``
    here); rows != ``batch`` (the size they were packed for) take the plain path inside."""
    y = torch.ops.mkl._mkl_linear(x.reshape(-1, x.shape[-1]), packed, weight, bias, batch)
    return y.reshape(*x.shape[:-1], weight.shape[0])


def _allow_packed_graph_inputs() -> None:
    """Inductor lowers ``mkl._mkl_linear`` only for packed weights that are frozen constants;
    ours are graph inputs (refreshed in place when the weights change), so route those to the
    plain extern kernel (cpp_wrapper calls it through the C++ dispatcher, no Python)."""
    from torch._inductor import lowering, mkldnn_lowerings  # noqa: F401  (registers the mkl lowering)
    from torch._inductor.virtualized import V

    op = torch.ops.mkl._mkl_linear.default
    frozen_only = lowering.lowerings.get(op)
    if frozen_only is None or getattr(frozen_only, "_rnnkit", False):
        return
    fallback = lowering.fallback_handler(op, add_to_fallback_set=False)

    def lower(x, packed, weight, bias, batch):
        if packed.get_name() in V.graph.constants:
            return frozen_only(x, packed, weight, bias, batch)
        return fallback(x, packed, weight, bias, batch)

    lower._rnnkit = True  # type: ignore[attr-defined]
    lowering.lowerings[op] = lower


def _graph_inputs(gm: torch.fx.GraphModule) -> dict[str, object]:
    """Placeholder name -> the real object Dynamo saw there (a parameter, an input)."""
    return {n.name: getattr(n.meta.get("grapharg"), "example", None) for n in gm.graph.nodes if n.op == "placeholder"}


def _pack_scan_linears(gm: torch.fx.GraphModule, inputs: dict[str, object], batch: int) -> list[tuple[Tensor, Tensor]]:
    """Rewrite ``linear(x, W, b)`` inside the scan bodies of a Dynamo graph, ``W`` a 2-D fp32
    CPU graph input (a parameter), into ``_packed_linear`` on an MKL-packed copy of ``W``:
    the copy becomes a buffer of ``gm`` passed to the scan as one more input. Returns
    ``[(W, packed buffer)]`` for the caller to keep the copies up to date. ``inputs``:
    ``_graph_inputs`` of the graph before any copy (the real parameters, not copies)."""
    packs: list[tuple[Tensor, Tensor]] = []
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.higher_order.scan:
            continue
        body = getattr(gm, node.args[0].target)
        extra = list(node.args[3])
        holders = [n for n in body.graph.nodes if n.op == "placeholder"]
        first_extra = len(holders) - len(extra)  # body inputs: carries, xs slices, then `extra`
        for lin in [n for n in body.graph.nodes if n.op == "call_function" and n.target is torch._C._nn.linear]:
            w_in = lin.args[1] if len(lin.args) > 1 else None
            if w_in not in holders[first_extra:] or lin.kwargs:
                continue
            top = extra[holders.index(w_in) - first_extra]
            w = inputs.get(top.name) if top.op == "placeholder" else None
            if not (isinstance(w, Tensor) and w.dim() == 2 and w.dtype == torch.float32 and w.device.type == "cpu"):
                continue
            name = f"_rnnkit_packed_{len(packs)}"
            gm.register_buffer(name, torch.ops.mkl._mkl_reorder_linear_weight(w.detach(), batch))
            packs.append((w, getattr(gm, name)))
            with gm.graph.inserting_before(node):
                extra.append(gm.graph.get_attr(name))
            with body.graph.inserting_after(holders[-1]):
                holders.append(body.graph.placeholder(name))
            with body.graph.inserting_before(lin):
                bias = lin.args[2] if len(lin.args) > 2 else None
                new = body.graph.call_function(_packed_linear, (lin.args[0], holders[-1], w_in, bias, batch))
            lin.replace_all_uses_with(new)
            body.graph.erase_node(lin)
        node.args = (*node.args[:3], extra, *node.args[4:])
        body.recompile()
    gm.recompile()
    return packs


def _key(w: Tensor) -> tuple[int, int, int]:
    """What identifies a weight's values between calls: the tensor, its in-place version, its memory."""
    return id(w), w._version, w.data_ptr()


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
        self.pack_failed: Optional[str] = None  # why the packed-weight rewrite was not used, if it failed
        # project inside the scan, per step? None until checked on an input of >= 2 steps
        self.per_step: Optional[bool] = None if project is not None else False
        self._fn = self._make_fn()

    def _make_fn(self) -> Callable:
        # MKL-packed copies of the cell's weights used by the compiled graphs:
        # (parameter name in the cell, packed buffer, (id, version, address) it was packed from)
        self._packs: list[tuple[str, Tensor, tuple[int, int, int]]] = []
        self._batch = 0
        # torch.compile caches (and counts recompilations) per code object; one private copy of
        # _scan per loop keeps the cells of a stacked/bidirectional layer from sharing that limit
        fn = CompiledLoop._scan
        code = fn.__code__.replace(co_name=f"_scan_{next(CompiledLoop._count)}")
        own = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
        return torch.compile(types.MethodType(own, self), dynamic=True, fullgraph=True, backend=self._compile_graph)

    def _compile_graph(self, gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
        """Dynamo backend: Inductor, after moving the scan's ``linear``s on the cell's own
        parameters onto packed weights (when that fails, the graph compiles as it is)."""
        from torch._inductor.compile_fx import compile_fx

        params = dict(self.step.named_parameters()) if isinstance(self.step, torch.nn.Module) else {}
        names = {id(p): n for n, p in params.items()}
        if torch._C.has_mkl and self._batch > 0 and names:
            try:
                inputs = {k: v for k, v in _graph_inputs(gm).items() if id(v) in names}
                packed_gm = copy.deepcopy(gm)
                packs = _pack_scan_linears(packed_gm, inputs, self._batch)
                if packs:
                    _allow_packed_graph_inputs()
                    compiled = compile_fx(packed_gm, example_inputs, config_patches=INDUCTOR_OPTIONS)
                    self._packs += [(names[id(w)], p, _key(w)) for w, p in packs]
                    return compiled
            except Exception as exc:  # a faster variant only: the plain graph below is the reference
                self.pack_failed = f"{type(exc).__name__}: {exc}"[:300]  # kept for debugging, no warning
        return compile_fx(gm, example_inputs, config_patches=INDUCTOR_OPTIONS)

    def _refresh_packs(self) -> None:
        """Start over (a fresh compile, seconds) if a packed weight changed since it was packed:
        updated in place (an optimizer step, ``load_state_dict``: its version counter moves),
        replaced or gone. MKL's packed weights are opaque tensors that cannot be updated in
        place or swapped under a compiled graph, so a change means new packed copies and a
        new graph (Inductor's caches make it shorter than the first compile)."""
        step: torch.nn.Module = self.step  # type: ignore[assignment]  (packs exist only for modules)
        for name, _, seen in self._packs:
            try:
                w = step.get_parameter(name)
            except AttributeError:
                w = None
            if w is None or _key(w) != seen:
                self._fn = self._make_fn()
                return

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
            self._refresh_packs()
            if not self._batch:  # weights are packed for the first call's batch size
                self._batch = int(x.shape[1])
            return self._fn(xp, tuple(state), alive, per_step)
        except Exception as exc:  # dynamo/inductor raise many types; any of them means "not compilable"
            self.failed = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            warnings.warn(f"compile=True: the cell {type(self.step).__name__} could not be compiled as one scan "
                          f"({self.failed[:200]}); running the eager loop instead", RuntimeWarning, stacklevel=3)
            return None
