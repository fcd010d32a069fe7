"""Build a recurrent layer from a cell name: what tasks call for ``--cell``.

Every task builds its recurrent core here, so a new cell (e.g. ``mingru``) registered in
``LAYERS`` becomes available to all of them at once.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from rnnkit.nn.layers import GRU, LSTM, RNN
from rnnkit.nn.scan import MinGRU, MinLSTM

# name -> factory(input_size, hidden_size, num_layers, dropout, bidirectional, batch_first)
LayerFactory = Callable[..., nn.Module]
LAYERS: dict[str, LayerFactory] = {
    "lstm": lambda i, h, **kw: LSTM(i, h, **kw),
    "gru": lambda i, h, **kw: GRU(i, h, **kw),
    "rnn": lambda i, h, **kw: RNN(i, h, nonlinearity="tanh", **kw),
    "rnn_relu": lambda i, h, **kw: RNN(i, h, nonlinearity="relu", **kw),
    "mingru": lambda i, h, **kw: MinGRU(i, h, **kw),
    "minlstm": lambda i, h, **kw: MinLSTM(i, h, **kw),
}


def cell_names() -> list[str]:
    return sorted(LAYERS)


def make_layer(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    batch_first: bool = True,
) -> nn.Module:
    """A layer with the rnnkit interface: ``layer(x, hx=None, lengths=None) -> (y, state)``.

    x: (batch, time, input_size) when batch_first; y: (batch, time, D * hidden_size).
    """
    if cell not in LAYERS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(sorted(LAYERS))}")
    return LAYERS[cell](input_size, hidden_size, num_layers=num_layers, dropout=dropout,
                        bidirectional=bidirectional, batch_first=batch_first)
