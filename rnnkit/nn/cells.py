"""Cell maths: one time step of each recurrent cell, behind one protocol.

A cell maps ``(x_t, state) -> (y_t, state)`` where ``x_t: (batch, input_size)`` and
``state`` is a tuple of ``(batch, size)`` tensors. The runner in ``layers.py`` runs any
cell over time; cells may also split off the part of the step that depends only on
the input (``project_input``) so the runner does it for all steps in one matmul.

Gate orders and parameter names follow ``torch.nn``: LSTM ``i, f, g, o``; GRU ``r, z, n``;
``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = tuple[Tensor, ...]


# --------------------------------------------------------------------------- step maths
# Each function takes the input already projected: ``xp = x @ w_ih.T + b_ih`` of shape
# (batch, gates * hidden). This is what lets the runner hoist the input matmul out of
# the time loop.

def rnn_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor], relu: bool) -> Tensor:
    """Elman step: ``h' = act(xp + h W_hh^T + b_hh)``. Shapes: xp (B, H), h (B, H)."""
    pre = torch.addmm(b_hh, h, w_hh.t()) if b_hh is not None else h @ w_hh.t()
    pre = pre + xp
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_step(
    xp: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Optional[Tensor], w_hr: Optional[Tensor] = None
) -> tuple[Tensor, Tensor]:
    """LSTM step, gates i, f, g, o. xp (B, 4H), h (B, P or H), c (B, H) -> (h', c')."""
    gates = torch.addmm(b_hh, h, w_hh.t()) if b_hh is not None else h @ w_hh.t()
    gates = gates + xp
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    if w_hr is not None:
        h = h @ w_hr.t()
    return h, c


def gru_step(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor]) -> Tensor:
    """GRU step, gates r, z, n (torch / cuDNN convention: ``n = tanh(x_n + r * (W_hn h + b_hn))``)."""
    hp = torch.addmm(b_hh, h, w_hh.t()) if b_hh is not None else h @ w_hh.t()
    x_r, x_z, x_n = xp.chunk(3, dim=1)
    h_r, h_z, h_n = hp.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def project(x: Tensor, w_ih: Tensor, b_ih: Optional[Tensor]) -> Tensor:
    """Input projection for all steps at once: x (..., I) -> (..., G*H)."""
    return F.linear(x, w_ih, b_ih)


# --------------------------------------------------------------------------- cell protocol
class Cell(nn.Module):
    """Base class of every cell. Subclasses set ``input_size``, ``hidden_size``,
    ``output_size``, ``state_sizes`` and implement ``forward(x_t, state)``.

    ``project_input(x)`` may precompute the input-only part of the step for a whole
    sequence (``x: (time, batch, input_size)``); ``forward`` then receives its slices.
    """

    input_size: int
    hidden_size: int
    output_size: int
    state_sizes: tuple[int, ...]

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        return tuple(torch.zeros(batch, s, device=device, dtype=dtype) for s in self.state_sizes)

    def project_input(self, x: Tensor) -> Tensor:
        return x

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:  # pragma: no cover
        raise NotImplementedError


def _uniform_init(module: nn.Module, hidden_size: int) -> None:
    """torch.nn's default RNN init: U(-1/sqrt(H), 1/sqrt(H)) for every parameter."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


class _GatedCell(Cell):
    """Shared parameters of RNN/LSTM/GRU cells, named like torch.nn.*Cell."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, recurrent_size: int | None = None):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rec = recurrent_size or hidden_size
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, rec))
        self.bias_ih = nn.Parameter(torch.empty(g)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(g)) if bias else None
        _uniform_init(self, hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return project(x, self.weight_ih, self.bias_ih)


class RNNCell(_GatedCell):
    """Elman cell ``h' = tanh|relu(W_ih x + b_ih + W_hh h + b_hh)``; same numerics as torch.nn.RNNCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity
        self.output_size, self.state_sizes = hidden_size, (hidden_size,)

    def forward(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        h = rnn_step(xp, state[0], self.weight_hh, self.bias_hh, self.nonlinearity == "relu")
        return h, (h,)


class LSTMCell(_GatedCell):
    """LSTM cell (gates i, f, g, o), optional output projection ``proj_size`` like torch.nn.LSTM."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, proj_size: int = 0):
        super().__init__(input_size, hidden_size, bias, recurrent_size=proj_size or hidden_size)
        self.proj_size = proj_size
        self.weight_hr = nn.Parameter(torch.empty(proj_size, hidden_size)) if proj_size else None
        _uniform_init(self, hidden_size)
        out = proj_size or hidden_size
        self.output_size, self.state_sizes = out, (out, hidden_size)

    def forward(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        h, c = lstm_step(xp, state[0], state[1], self.weight_hh, self.bias_hh, self.weight_hr)
        return h, (h, c)


class GRUCell(_GatedCell):
    """GRU cell (gates r, z, n), same numerics as torch.nn.GRUCell (Keras ``reset_after=True``)."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias)
        self.output_size, self.state_sizes = hidden_size, (hidden_size,)

    def forward(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        h = gru_step(xp, state[0], self.weight_hh, self.bias_hh)
        return h, (h,)


class I2HCell(Cell):
    """The classic PyTorch-tutorial RNN module as a cell.

    ``combined = cat(x_t, h)``; ``h' = act(i2h(combined))``; ``y_t = i2o(combined)``,
    optionally ``log_softmax``-ed. The tutorial uses no activation on ``h'``
    (``nonlinearity=None``); that lets the state grow without bound over long
    sequences, so the default here is ``tanh``.
    Shapes: x_t (B, input_size) -> y_t (B, output_size); state ((B, hidden_size),).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        log_softmax: bool = False,
        nonlinearity: Optional[str] = "tanh",
    ):
        super().__init__()
        if nonlinearity not in (None, "tanh", "relu"):
            raise ValueError(f"nonlinearity must be None, 'tanh' or 'relu', got {nonlinearity!r}")
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.state_sizes = (hidden_size,)
        self.log_softmax, self.nonlinearity = log_softmax, nonlinearity
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)

    def forward(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        combined = torch.cat((x_t, state[0]), dim=1)
        h = self.i2h(combined)
        if self.nonlinearity == "tanh":
            h = torch.tanh(h)
        elif self.nonlinearity == "relu":
            h = torch.relu(h)
        y = self.i2o(combined)
        if self.log_softmax:
            y = F.log_softmax(y, dim=1)
        return y, (h,)
