"""Recurrent layers: run cells over time, stacked and bidirectional.

``LSTM``, ``GRU`` and ``RNN`` are ``torch.nn`` layers (same parameters, names, init and
fused kernels, cuDNN included) with what users of sequence models also need:
variable lengths (``lengths`` or ``mask``), the Keras vocabulary (``return_sequences``,
``return_state``, ``go_backwards``), a streaming ``step`` and input checks that say
what shape was expected. ``Recurrent`` runs any ``Cell`` (the classic ``i2h``/``i2o``
cell, or a user cell) with the same interface through the one generic runner.

Shapes: ``x: (batch, time, input_size)`` with ``batch_first=True``, else
``(time, batch, input_size)``; ``lengths: (batch,)``; ``mask: (batch, time)`` bool,
True on real steps; state tensors ``(num_layers * directions, batch, size)``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.nn.cells import Cell, State, gru_step, lstm_step, project, rnn_step
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

    def _run_generic(self, x: Tensor, hx: Optional[StateLike], lengths: Optional[Tensor]):
        x_tm = x.transpose(0, 1) if self.batch_first else x
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
                y, s = run_cell(step, proj(layer_in), tuple(p[k] for p in parts), lengths, reverse=d == 1)
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


# =============================================================================== fused layers
class _TorchLayer(SequenceLayer):
    """Mixin for layers backed by a torch.nn RNN class (set ``_torch_cls``)."""

    _torch_cls: type

    def _setup(self, fused: bool, return_sequences: bool, return_state: bool, go_backwards: bool) -> None:
        self.fused = fused
        self._init_api(return_sequences, return_state, go_backwards)

    def _param(self, name: str, layer: int, direction: int) -> Optional[Tensor]:
        return getattr(self, f"{name}_l{layer}{'_reverse' if direction else ''}", None)

    def _run(self, x: Tensor, hx: Optional[StateLike], lengths: Optional[Tensor]):
        if not self.fused:
            return self._run_generic(x, hx, lengths)
        if lengths is None:
            return self._torch_cls.forward(self, x, hx)
        T = x.shape[1] if self.batch_first else x.shape[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=False)
        y, state = self._torch_cls.forward(self, packed, hx)
        y, _ = pad_packed_sequence(y, batch_first=self.batch_first, total_length=T)
        return y, state

    def _step_fns(self):
        fns = []
        for layer in range(self.num_layers):
            for d in range(self.directions):
                w_ih, b_ih = self._param("weight_ih", layer, d), self._param("bias_ih", layer, d)
                fns.append((lambda x, w=w_ih, b=b_ih: project(x, w, b), self._recurrent_step(layer, d)))
        return fns

    def extra_repr(self) -> str:
        s = super().extra_repr()
        extras = [k for k in ("go_backwards",) if getattr(self, k)]
        if not self.return_sequences:
            extras.append("return_sequences=False")
        if not self.return_state:
            extras.append("return_state=False")
        if not self.fused:
            extras.append("fused=False")
        return ", ".join([s] + extras)


class LSTM(_TorchLayer, nn.LSTM):
    """LSTM layer; ``torch.nn.LSTM`` arguments plus ``return_sequences``, ``return_state``,
    ``go_backwards`` and ``fused`` (False runs the generic runner over the same weights).
    State: ``(h, c)`` with h (L*D, B, proj_size or H), c (L*D, B, H)."""

    _torch_cls = nn.LSTM

    def __init__(self, *args, return_sequences: bool = True, return_state: bool = True,
                 go_backwards: bool = False, fused: bool = True, **kwargs):
        nn.LSTM.__init__(self, *args, **kwargs)
        self._setup(fused, return_sequences, return_state, go_backwards)

    def state_sizes(self) -> tuple[int, ...]:
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def _recurrent_step(self, layer: int, d: int):
        w_hh, b_hh, w_hr = (self._param(n, layer, d) for n in ("weight_hh", "bias_hh", "weight_hr"))

        def step(xp: Tensor, s: State) -> tuple[Tensor, State]:
            h, c = lstm_step(xp, s[0], s[1], w_hh, b_hh, w_hr)
            return h, (h, c)

        return step

    def _cell_steps(self):
        # torch's fused single-step kernel (what nn.LSTMCell runs): the fastest eager path.
        steps = []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh, w_hr = (self._param(n, layer, 0) for n in
                                            ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"))

            def step(x, s, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr):
                if w_hr is None:
                    h, c = torch._VF.lstm_cell(x, (s[0], s[1]), w_ih, w_hh, b_ih, b_hh)
                else:  # the fused cell kernel has no projection
                    h, c = lstm_step(project(x, w_ih, b_ih), s[0], s[1], w_hh, b_hh, w_hr)
                return h, (h, c)

            steps.append(step)
        return steps


class GRU(_TorchLayer, nn.GRU):
    """GRU layer; ``torch.nn.GRU`` arguments plus the Keras/rnnkit options (see LSTM)."""

    _torch_cls = nn.GRU

    def __init__(self, *args, return_sequences: bool = True, return_state: bool = True,
                 go_backwards: bool = False, fused: bool = True, **kwargs):
        nn.GRU.__init__(self, *args, **kwargs)
        self._setup(fused, return_sequences, return_state, go_backwards)

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def _recurrent_step(self, layer: int, d: int):
        w_hh, b_hh = self._param("weight_hh", layer, d), self._param("bias_hh", layer, d)
        return lambda xp, s: ((h := gru_step(xp, s[0], w_hh, b_hh)), (h,))

    def _cell_steps(self):
        steps = []
        for layer in range(self.num_layers):
            w = [self._param(n, layer, 0) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            steps.append(lambda x, s, w=w: ((h := torch._VF.gru_cell(x, s[0], *w)), (h,)))
        return steps


class RNN(_TorchLayer, nn.RNN):
    """Elman RNN layer (``nonlinearity='tanh'|'relu'``); ``torch.nn.RNN`` arguments plus the
    Keras/rnnkit options (see LSTM)."""

    _torch_cls = nn.RNN

    def __init__(self, *args, return_sequences: bool = True, return_state: bool = True,
                 go_backwards: bool = False, fused: bool = True, **kwargs):
        nn.RNN.__init__(self, *args, **kwargs)
        self._setup(fused, return_sequences, return_state, go_backwards)

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def _recurrent_step(self, layer: int, d: int):
        w_hh, b_hh = self._param("weight_hh", layer, d), self._param("bias_hh", layer, d)
        relu = self.nonlinearity == "relu"
        return lambda xp, s: ((h := rnn_step(xp, s[0], w_hh, b_hh, relu)), (h,))

    def _cell_steps(self):
        kernel = torch._VF.rnn_relu_cell if self.nonlinearity == "relu" else torch._VF.rnn_tanh_cell
        steps = []
        for layer in range(self.num_layers):
            w = [self._param(n, layer, 0) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            steps.append(lambda x, s, w=w: ((h := kernel(x, s[0], *w)), (h,)))
        return steps


SimpleRNN = RNN  # Keras name


# =============================================================================== generic layer
class Recurrent(SequenceLayer):
    """Run any ``Cell`` over time, stacked and/or bidirectional, with the same interface as
    the fused layers (lengths, masks, Keras options, ``step``).

    ``cell`` is a Cell (one layer, one direction) or a factory ``input_size -> Cell``
    called once per layer and direction.
    """

    def __init__(
        self,
        cell: Union[Cell, Callable[[int], Cell]],
        input_size: Optional[int] = None,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = False,
        return_sequences: bool = True,
        return_state: bool = True,
        go_backwards: bool = False,
    ):
        super().__init__()
        self.num_layers, self.bidirectional, self.dropout, self.batch_first = num_layers, bidirectional, dropout, batch_first
        self._init_api(return_sequences, return_state, go_backwards)
        D = 2 if bidirectional else 1
        if isinstance(cell, Cell):
            if num_layers != 1 or bidirectional:
                raise ValueError("pass a cell factory (input_size -> Cell) for several layers or directions")
            cells: Sequence[Cell] = [cell]
        else:
            if input_size is None:
                raise ValueError("input_size is required with a cell factory")
            cells, size = [], input_size
            for _ in range(num_layers):
                layer_cells = [cell(size) for _ in range(D)]
                cells += layer_cells
                size = D * layer_cells[0].output_size
        self.cells = nn.ModuleList(cells)
        self.input_size = self.cells[0].input_size
        sizes = {c.state_sizes for c in self.cells}
        if len(sizes) != 1:
            raise ValueError(f"all cells must share state sizes to stack, got {sorted(sizes)}")

    def state_sizes(self) -> tuple[int, ...]:
        return self.cells[0].state_sizes

    def _run(self, x, hx, lengths):
        return self._run_generic(x, hx, lengths)

    def _step_fns(self):
        return [(c.project_input, c) for c in self.cells]

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, batch_first={self.batch_first}"

