"""Build a recurrent layer from a cell name: what tasks call for ``--cell``.

Every task builds its recurrent core here, so a new cell (e.g. ``mingru``) registered in
``LAYERS`` becomes available to all of them at once.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from rnnkit.nn.layers import GRU, LSTM, RNN

# name -> factory(input_size, hidden_size, num_layers, dropout, bidirectional, batch_first)
LayerFactory = Callable[..., nn.Module]
LAYERS: dict[str, LayerFactory] = {
    "lstm": lambda i, h, **kw: LSTM(i, h, **kw),
    "gru": lambda i, h, **kw: GRU(i, h, **kw),
    "rnn": lambda i, h, **kw: RNN(i, h, nonlinearity="tanh", **kw),
    "rnn_relu": lambda i, h, **kw: RNN(i, h, nonlinearity="relu", **kw),
}


def cell_names() -> list[str]:
    _load_optional()
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
    _load_optional()
    if cell not in LAYERS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(sorted(LAYERS))}")
    return LAYERS[cell](input_size, hidden_size, num_layers=num_layers, dropout=dropout,
                        bidirectional=bidirectional, batch_first=batch_first)


def _load_optional() -> None:
    """Cells defined in other modules register themselves on import."""
    try:
        import rnnkit.nn.scan  # noqa: F401  (minGRU / minLSTM)
    except ModuleNotFoundError as exc:
        if exc.name != "rnnkit.nn.scan":
            raise
