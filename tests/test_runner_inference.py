"""The generic runner's inference loop (autograd off) computes what its training loop does.

With gradients disabled ``run_cell`` takes a separate loop (``torch.inference_mode``, one
preallocated output tensor); these tests pin it to the autograd loop — outputs and final
states to 1e-6 (float64, so any difference is a logic error, not round-off) — over cells,
stacking, directions, lengths and initial states, and check that what it returns is an
ordinary tensor that autograd can use afterwards.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

import rnnkit.nn as rnn
from rnnkit.nn.runner import run_cell

I, H, B, T = 3, 5, 4, 7


class TwoLinearLSTM(rnn.Cell):
    """A user-style LSTM cell (two nn.Linear), with or without ``project_input``."""

    def __init__(self, input_size: int, hoist: bool = True):
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, H, H
        self.state_sizes = (H, H)
        self.ih, self.hh, self.hoist = nn.Linear(input_size, 4 * H), nn.Linear(H, 4 * H), hoist

    def project_input(self, x: Tensor) -> Tensor:
        return self.ih(x) if self.hoist else x

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]):
        i, f, g, o = ((x_t if self.hoist else self.ih(x_t)) + self.hh(state[0])).chunk(4, 1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


FACTORIES = {
    "lstm_cell": lambda n: rnn.LSTMCell(n, H),
    "gru_cell": lambda n: rnn.GRUCell(n, H),
    "user_lstm": lambda n: TwoLinearLSTM(n),
    "user_lstm_no_hoist": lambda n: TwoLinearLSTM(n, hoist=False),
    "i2h": lambda n: rnn.I2HCell(n, H, H, log_softmax=True),
}


def _layer(kind: str, num_layers: int, bidirectional: bool, batch_first: bool) -> rnn.Recurrent:
    torch.manual_seed(0)
    return rnn.Recurrent(FACTORIES[kind], input_size=I, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first).double()


def _both(layer: nn.Module, *args, **kw):
    """(autograd loop result, inference loop result)."""
    y_ref, s_ref = layer(*args, **kw)
    with torch.no_grad():
        y, s = layer(*args, **kw)
    return (y_ref.detach(), [t.detach() for t in s]), (y, list(s))


@pytest.mark.parametrize("kind,num_layers,bidirectional,lengths",
                         list(itertools.product(FACTORIES, (1, 2), (False, True), (False, True))))
def test_inference_loop_equals_autograd_loop(kind, num_layers, bidirectional, lengths):
    layer = _layer(kind, num_layers, bidirectional, batch_first=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    n = num_layers * (2 if bidirectional else 1)
    h0 = tuple(torch.randn(n, B, s, dtype=torch.float64) for s in layer.state_sizes())
    kw = {"lengths": torch.tensor([T, 3, 1, 5])} if lengths else {}
    (y_ref, s_ref), (y, s) = _both(layer, x, h0 if len(h0) > 1 else h0[0], **kw)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
    for a, b in zip(s, s_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_inference_loop_time_major_and_fused_false_layers_match_fused():
    torch.manual_seed(1)
    ref = nn.LSTM(I, H, num_layers=2, bidirectional=True).double()
    ours = rnn.LSTM(I, H, num_layers=2, bidirectional=True, fused=False).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    with torch.no_grad():
        y_ref, (h_ref, c_ref) = ref(x)
        y, (h, c) = ours(x)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(c, c_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("ctx", ["no_grad", "inference_mode"])
def test_inference_outputs_are_ordinary_tensors(ctx):
    layer = _layer("user_lstm", 1, False, batch_first=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    with (torch.no_grad() if ctx == "no_grad" else torch.inference_mode()):
        y, (h, c) = layer(x)
    if ctx == "no_grad":  # usable by autograd later, e.g. as a frozen encoder's features
        assert not y.is_inference() and not h.is_inference() and not c.is_inference()
        w = torch.randn(H, dtype=torch.float64, requires_grad=True)
        (y * w).sum().backward()
        assert w.grad is not None and torch.isfinite(w.grad).all()
    assert not y.requires_grad


def test_gradients_still_flow_through_the_training_loop():
    """The autograd loop is unchanged: gradients of the user cell equal a hand loop's."""
    layer = _layer("user_lstm", 1, False, batch_first=True)
    cell = layer.cells[0]
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    y, _ = layer(x)
    g = torch.autograd.grad(y.sum(), [x, cell.hh.weight])
    state = (x.new_zeros(B, H), x.new_zeros(B, H))
    outs = []
    for x_t in cell.project_input(x.transpose(0, 1)).unbind(0):
        h, state = cell(x_t, state)
        outs.append(h)
    g_ref = torch.autograd.grad(torch.stack(outs).sum(), [x, cell.hh.weight])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_run_cell_project_argument_equals_projecting_first():
    cell = TwoLinearLSTM(I).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    s0 = (torch.zeros(B, H, dtype=torch.float64),) * 2
    with torch.no_grad():
        y1, st1 = run_cell(cell, x, s0, project=cell.project_input, reverse=True)
        y2, st2 = run_cell(cell, cell.project_input(x), s0, reverse=True)
    torch.testing.assert_close(y1, y2, rtol=0, atol=1e-12)
    torch.testing.assert_close(st1[1], st2[1], rtol=0, atol=1e-12)
