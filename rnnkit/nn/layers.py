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
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnkit.nn import cpu_train
from rnnkit.nn.base import SequenceLayer, StateLike
from rnnkit.nn.cells import Cell, State, gru_step, lstm_step, project, rnn_step


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
        if cpu_train.fast_train_ok(self, x, hx, lengths):  # CPU training: faster than torch's loops
            return cpu_train.forward(self, x, hx, lengths)
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

    def step(self, x_t: Tensor, state: Optional[StateLike] = None) -> tuple[Tensor, StateLike]:
        # Outside autograd on CPU fp32, a C kernel over cached packed weights is ~3x faster
        # than the eager cell (docs/bench/speed.md); it declines (None) everywhere else.
        if isinstance(x_t, Tensor) and x_t.dim() == 2 and x_t.shape[-1] == self.input_size and not torch.is_grad_enabled():
            from rnnkit.nn.fast import lean_lstm_step

            if state is None:
                state = self.init_state(x_t.shape[0], device=x_t.device, dtype=x_t.dtype)
            out = lean_lstm_step(self, x_t, state)
            if out is not None:
                return out
        return super().step(x_t, state)

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
    called once per layer and direction. ``compile=True`` runs inference (autograd off)
    through a compiled scan of each cell (``rnnkit.nn.compiled``: 1.35-1.4x the fused kernel
    instead of 2.1-2.3x for an LSTM-like cell; the first call compiles for ~6-60 s, and the
    first call after a weight update recompiles, ~1-2 s, since the weights run MKL-packed).
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
        compile: bool = False,
    ):
        super().__init__()
        self.num_layers, self.bidirectional, self.dropout, self.batch_first = num_layers, bidirectional, dropout, batch_first
        self.compile = compile
        self._loops: dict[int, object] = {}
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

    def __getstate__(self):
        # compiled loops are a cache tied to this object's cells: copies compile their own
        state = self.__dict__.copy()
        state["_loops"] = {}
        return state

    def _compiled_loop(self, k: int):
        if not self.compile or torch.is_grad_enabled():
            return None
        if k not in self._loops:
            from rnnkit.nn.compiled import CompiledLoop

            self._loops[k] = CompiledLoop(self.cells[k], self.cells[k].project_input)
        return self._loops[k]

    def extra_repr(self) -> str:
        return (f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, batch_first={self.batch_first}"
                + (", compile=True" if self.compile else ""))

