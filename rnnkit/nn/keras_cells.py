"""Cells that reproduce Keras layers torch has no kernel for.

``KerasGRUCell``: Keras ``GRU(reset_after=False)``, run through ``rnnkit.nn.Recurrent``
(used by ``rnnkit.nn.interop.from_keras``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn.cells import Cell, State, _uniform_init, project


class KerasGRUCell(Cell):
    """GRU with the reset gate applied before the recurrent matmul (Keras ``reset_after=False``,
    the original Cho et al. 2014 form). Gates r, z, n like torch; parameters named like torch.

    ``r = σ(x_r + W_hr h + b_hr)``, ``z = σ(x_z + W_hz h + b_hz)``,
    ``n = tanh(x_n + W_hn (r ⊙ h) + b_hn)``, ``h' = (1 - z) ⊙ n + z ⊙ h``,
    where ``x_* = W_i* x + b_i*`` is precomputed for all steps by ``project_input``.
    Shapes: x_t (B, input_size) -> y_t (B, hidden_size); state ((B, hidden_size),).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.output_size, self.state_sizes = hidden_size, (hidden_size,)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size)) if bias else None
        _uniform_init(self, hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        return project(x, self.weight_ih, self.bias_ih)

    def forward(self, xp: Tensor, state: State) -> tuple[Tensor, State]:
        h = state[0]
        H = self.hidden_size
        b_hh = self.bias_hh
        # r and z see h directly; only n sees the reset state, so split the recurrent matmul.
        hp_rz = F.linear(h, self.weight_hh[: 2 * H], None if b_hh is None else b_hh[: 2 * H])
        x_r, x_z, x_n = xp.chunk(3, dim=1)
        h_r, h_z = hp_rz.chunk(2, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + F.linear(r * h, self.weight_hh[2 * H:], None if b_hh is None else b_hh[2 * H:]))
        h = (1 - z) * n + z * h
        return h, (h,)
