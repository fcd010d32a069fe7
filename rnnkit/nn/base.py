"""The interface every rnnkit recurrent layer shares (fused, generic, minGRU).

Input checks that name the expected shape, variable lengths (``lengths`` or a right-padded
``mask``), the Keras options (``return_sequences``, ``return_state``, ``go_backwards``), the
generic multi-layer/bidirectional path over the one runner, and streaming ``step``.

Shapes: ``x: (batch, time, input_size)`` with ``batch_first=True``, else
``(time, batch, input_size)``; ``lengths: (batch,)``; ``mask: (batch, time)`` bool,
True on real steps; state tensors ``(num_layers * directions, batch, size)``.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.cells import State
from rnnkit.nn.runner import reverse_padded, run_cell

StateLike = Union[Tensor, tuple[Tensor, ...]]


class SequenceLayer(nn.Module):
    """Shared interface of every rnnkit recurrent layer (a mixin over nn.Module).

    Subclasses provide ``input_size``, ``batch_first``, ``num_layers``, ``directions``,
    ``state_sizes()``, ``_run(x, hx, lengths)`` and the state tuple conversions.
    """

    input_size: int
    batch_first: bool
    num_layers: int

    def _init_api(self, return_sequences: bool, return_state: bool, go_backwards: bool) -> None:
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards

    @property
    def directions(self) -> int:
        return 2 if getattr(self, "bidirectional", False) else 1

    # ------------------------------------------------------------------ state helpers
    def state_sizes(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_tuple(self, hx: StateLike) -> tuple[Tensor, ...]:
        return hx if isinstance(hx, tuple) else (hx,)

    def _state_out(self, parts: tuple[Tensor, ...]) -> StateLike:
        return parts if len(parts) > 1 else parts[0]

    def init_state(self, batch: int, device=None, dtype=None) -> StateLike:
        """Zero state: tensors of shape (num_layers * directions, batch, size)."""
        n = self.num_layers * self.directions
        return self._state_out(tuple(torch.zeros(n, batch, s, device=device, dtype=dtype) for s in self.state_sizes()))

    # ------------------------------------------------------------------ checks
    def _name(self) -> str:
        return type(self).__name__

    def _expected(self) -> str:
        layout = "(batch, time, {I})" if self.batch_first else "(time, batch, {I})"
        return layout.format(I=self.input_size)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"{self._name()} expects a tensor of shape {self._expected()}, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{self._name()} expects input of shape {self._expected()} (or unbatched (time, {self.input_size})), "
                f"got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{self._name()} expects a floating-point input, got dtype {x.dtype}")

    def _check_state(self, hx: StateLike, batch: int) -> None:
        parts = self._state_tuple(hx)
        n = self.num_layers * self.directions
        expected = [(n, batch, s) for s in self.state_sizes()]
        got = [tuple(p.shape) for p in parts]
        if len(parts) != len(expected) or got != expected:
            want = expected[0] if len(expected) == 1 else tuple(expected)
            raise ValueError(f"{self._name()} expects an initial state of shape {want}, got {got[0] if len(got) == 1 else got}")

    def _lengths(self, x: Tensor, lengths: Optional[Tensor], mask: Optional[Tensor]) -> Optional[Tensor]:
        B, T = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if mask is not None:
            if lengths is not None:
                raise ValueError("give either lengths or mask, not both")
            if tuple(mask.shape) != (B, T):
                raise ValueError(f"mask must have shape (batch, time) = {(B, T)}, got {tuple(mask.shape)}")
            mask = mask.bool()
            lengths = mask.sum(1)
            prefix = torch.arange(T, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
            if not torch.equal(prefix, mask):
                raise ValueError("mask must mark each sequence's real steps from the start (right padding)")
        if lengths is None:
            return None
        lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.shape[0] != B or lengths.is_floating_point():
            raise ValueError(f"lengths must be an integer tensor of shape ({B},), got {tuple(lengths.shape)} {lengths.dtype}")
        if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"lengths must lie in [1, {T}] (the time dimension), got min {int(lengths.min())} max {int(lengths.max())}")
        return lengths.long()

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input: Tensor,
        hx: Optional[StateLike] = None,
        lengths: Optional[Tensor] = None,
        mask: Optional[Tensor] = None,
    ):
        """Run the layer over a sequence.

        input: (batch, time, I) if batch_first else (time, batch, I); or unbatched (time, I).
        Returns ``(output, state)`` (``output`` only if ``return_state=False``); ``output`` is
        (batch, time, D*H) [or time-major], or (batch, D*H) with ``return_sequences=False``.
        """
        unbatched = isinstance(input, Tensor) and input.dim() == 2
        if unbatched:
            if lengths is not None or mask is not None:
                raise ValueError("lengths/mask need a batched input")
            input = input.unsqueeze(0 if self.batch_first else 1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in self._state_tuple(hx))
                hx = self._state_out(hx)
        self._check_input(input)
        lengths = self._lengths(input, lengths, mask)
        batch = input.shape[0] if self.batch_first else input.shape[1]
        if hx is not None:
            self._check_state(hx, batch)
        if self.go_backwards:
            input = self._time_reverse(input, lengths)
        y, state = self._run(input, hx, lengths)
        if not self.return_sequences:
            y = self._last_output(y, lengths)
        if unbatched:
            y = y.squeeze(0) if (self.batch_first or not self.return_sequences) else y.squeeze(1)
            state = self._state_out(tuple(s.squeeze(1) for s in self._state_tuple(state)))
        return (y, state) if self.return_state else y

    def _time_reverse(self, x: Tensor, lengths: Optional[Tensor]) -> Tensor:
        if self.batch_first:
            return reverse_padded(x.transpose(0, 1), lengths).transpose(0, 1)
        return reverse_padded(x, lengths)

    def _last_output(self, y: Tensor, lengths: Optional[Tensor]) -> Tensor:
        """Output after the last real step: forward half at len-1, backward half at 0 (Keras)."""
        yb = y if self.batch_first else y.transpose(0, 1)  # (B, T, D*O)
        B, T = yb.shape[0], yb.shape[1]
        O = yb.shape[-1] // self.directions
        last = (lengths.to(yb.device) - 1) if lengths is not None else torch.full((B,), T - 1, device=yb.device)
        fwd = yb[torch.arange(B, device=yb.device), last, :O]
        return fwd if self.directions == 1 else torch.cat([fwd, yb[:, 0, O:]], dim=-1)

    def _run(self, x: Tensor, hx: Optional[StateLike], lengths: Optional[Tensor]):  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ generic path
    def _step_fns(self) -> list[tuple[Callable[[Tensor], Tensor], Callable[[Tensor, State], tuple[Tensor, State]]]]:
        """Per (layer, direction): (input projection, step)."""
        raise NotImplementedError  # pragma: no cover

    def _compiled_loop(self, k: int):
        """The compiled inference loop of cell ``k`` (layer * directions + direction), or None."""
        return None

    def _run_generic(self, x: Tensor, hx: Optional[StateLike], lengths: Optional[Tensor]):
        # contiguous time-major: the projection of a 3-D contiguous input folds its bias into
        # one addmm, and every step's slice is contiguous (a strided view costs a bias pass)
        x_tm = x.transpose(0, 1).contiguous() if self.batch_first else x
        B = x_tm.shape[1]
        if hx is None:
            hx = self.init_state(B, device=x.device, dtype=x.dtype)
        parts = self._state_tuple(hx)
        fns = self._step_fns()
        D = self.directions
        layer_in, finals = x_tm, []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                proj, step = fns[k]
                y, s = run_cell(step, layer_in, tuple(p[k] for p in parts), lengths, reverse=d == 1, project=proj,
                                compiled=self._compiled_loop(k))
                outs.append(y)
                finals.append(s)
            layer_in = torch.cat(outs, dim=-1) if D > 1 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
        state = self._state_out(tuple(torch.stack([f[i] for f in finals]) for i in range(len(parts))))
        y = layer_in.transpose(0, 1) if self.batch_first else layer_in
        return y, state

    # ------------------------------------------------------------------ streaming
    def step(self, x_t: Tensor, state: Optional[StateLike] = None) -> tuple[Tensor, StateLike]:
        """Advance one time step. x_t: (batch, I) -> y_t: (batch, H_out); state as in forward.

        Equal to running ``forward`` over the sequence one step at a time (unidirectional).
        """
        if self.directions != 1:
            raise ValueError(f"{self._name()}.step needs a unidirectional layer: a bidirectional one reads the future")
        if not isinstance(x_t, Tensor) or x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            shape = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"{self._name()}.step expects x_t of shape (batch, {self.input_size}), got {shape}")
        if state is None:
            state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
        parts = self._state_tuple(state)
        new_parts: list[list[Tensor]] = [[] for _ in parts]
        inp = x_t
        for layer, cell_step in enumerate(self._cell_steps()):
            y, s = cell_step(inp, tuple(p[layer] for p in parts))
            for i, si in enumerate(s):
                new_parts[i].append(si)
            inp = y
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, training=True)
        return inp, self._state_out(tuple(torch.stack(p) for p in new_parts))

    def _cell_steps(self):
        """Per layer: a full step ``(x_t, state) -> (y_t, state)`` (input projection included)."""
        return [lambda x, s, proj=proj, step=step: step(proj(x), s) for proj, step in self._step_fns()]
