"""``Recurrent(..., compile=True)``: the compiled-scan inference loop equals the eager loop.

Compiling takes seconds per cell (a minute on a cold Inductor cache), so the equality tests
are ``slow``; the default run checks the fallback (a cell that cannot be captured whole
warns once and runs the eager loop) and that training never takes the compiled path.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

import rnnkit.nn as rnn
from rnnkit.nn.compiled import CompiledLoop, _graph_inputs, _pack_scan_linears

H = 6


class TwoLinearLSTM(rnn.Cell):
    def __init__(self, input_size: int):
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, H, H
        self.state_sizes = (H, H)
        self.ih, self.hh = nn.Linear(input_size, 4 * H), nn.Linear(H, 4 * H)

    def project_input(self, x: Tensor) -> Tensor:
        return self.ih(x)

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]):
        i, f, g, o = (x_t + self.hh(state[0])).chunk(4, 1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class DataDependentCell(TwoLinearLSTM):
    """Python control flow on tensor values: cannot be captured as one graph."""

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]):
        h, s = super().forward(x_t, state)
        if float(h.sum()) > 1e9:  # never true; still a graph break
            h = h * 0
        return h, s


class TimeMixingCell(TwoLinearLSTM):
    """A projection that mixes time steps (a running sum): it must stay hoisted."""

    def project_input(self, x: Tensor) -> Tensor:
        return self.ih(x).cumsum(0) * 0.1


def _compare(layer: rnn.Recurrent, x: Tensor, lengths=None, atol: float = 1e-6) -> None:
    y_ref, s_ref = layer(x, lengths=lengths)  # autograd on: the eager loop
    with torch.no_grad():
        y, s = layer(x, lengths=lengths)
    torch.testing.assert_close(y, y_ref.detach(), rtol=0, atol=atol)
    for a, b in zip(s, s_ref):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=atol)


def test_uncompilable_cell_falls_back_to_the_eager_loop_with_one_warning():
    torch.manual_seed(0)
    layer = rnn.Recurrent(DataDependentCell(3), batch_first=True, compile=True)
    x = torch.randn(2, 5, 3)
    with pytest.warns(RuntimeWarning, match="could not be compiled"):
        _compare(layer, x)
    loop = layer._loops[0]
    assert isinstance(loop, CompiledLoop) and loop.failed
    with torch.no_grad():  # no second warning, same eager result
        layer(x)


def test_training_and_compile_false_never_compile():
    layer = rnn.Recurrent(TwoLinearLSTM(3), batch_first=True, compile=True)
    y, _ = layer(torch.randn(2, 4, 3))
    y.sum().backward()
    assert layer._loops == {} and layer.cells[0].hh.weight.grad is not None
    plain = rnn.Recurrent(TwoLinearLSTM(3), batch_first=True)
    with torch.no_grad():
        plain(torch.randn(2, 4, 3))
    assert plain._loops == {} and "compile" not in repr(plain)


def test_per_step_projection_check_tells_stepwise_from_time_mixing_projections():
    torch.manual_seed(3)
    x = torch.randn(5, 2, 3)  # (time, batch, features)
    for cell, expected in ((TwoLinearLSTM(3), True), (TimeMixingCell(3), False), (rnn.GRUCell(3, H), True)):
        with torch.no_grad():
            assert CompiledLoop(cell, cell.project_input)._projects_per_step(x) is expected


@pytest.mark.skipif(not torch._C.has_mkl, reason="MKL-packed weights need a torch built with MKL")
def test_packed_weight_rewrite_of_the_captured_scan_is_exact():
    """The graph rewrite alone (Dynamo capture, no Inductor): same outputs, real weights packed."""
    torch.manual_seed(5)
    cell = TwoLinearLSTM(3)
    loop = CompiledLoop(cell, cell.project_input)
    graphs = []

    def capture(gm, example_inputs):  # Dynamo drops its references to the real inputs after compiling
        graphs.append((gm, _graph_inputs(gm)))
        return gm.forward

    x, state = torch.randn(7, 4, 3), (torch.randn(4, H), torch.randn(4, H))
    fn = torch.compile(loop._scan, backend=capture, fullgraph=True)
    with torch.no_grad():
        y_ref, s_ref = fn(x, state, None, True)
        gm, inputs = graphs[0]
        packs = _pack_scan_linears(gm, inputs, batch=4)
        assert len(packs) == 2 and all(w is p for (w, _), p in zip(packs, (cell.ih.weight, cell.hh.weight)))
        assert not any(n.target is torch._C._nn.linear for m in gm.children() for n in m.graph.nodes)
        names = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
        args = [inputs[n] for n in names]
        y, *s = gm(*args)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6)
    for a, b in zip(s, s_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("factory", [lambda n: TwoLinearLSTM(n), lambda n: rnn.GRUCell(n, H),
                                     lambda n: rnn.I2HCell(n, H, H, log_softmax=True)], ids=["user_lstm", "gru", "i2h"])
def test_compiled_loop_equals_eager_loop_over_shapes_lengths_and_directions(factory):
    torch.manual_seed(1)
    layer = rnn.Recurrent(factory, input_size=3, num_layers=2, bidirectional=True, batch_first=True, compile=True)
    _compare(layer, torch.randn(4, 7, 3))
    _compare(layer, torch.randn(5, 9, 3), lengths=torch.tensor([9, 3, 1, 5, 9]))
    _compare(layer, torch.randn(3, 11, 3))  # another batch and length: dynamic shapes
    assert all(loop.failed is None for loop in layer._loops.values())
    copy.deepcopy(layer)  # the compiled cache is not copied


@pytest.mark.slow
def test_compiled_loop_sees_weight_updates():
    torch.manual_seed(2)
    layer = rnn.Recurrent(TwoLinearLSTM(3), batch_first=True, compile=True)
    x = torch.randn(2, 6, 3)
    _compare(layer, x)
    loop = layer._loops[0]
    if torch._C.has_mkl:  # both linears run from packed copies
        assert [e[0] for e in loop._packs] == ["ih.weight", "hh.weight"]
    with torch.no_grad():
        layer.cells[0].hh.weight.mul_(0.5)  # as an optimizer step does, in place
    _compare(layer, x)
    layer.load_state_dict({k: v * 1.5 for k, v in layer.state_dict().items()})
    _compare(layer, x)
    layer.cells[0].ih.weight = nn.Parameter(torch.randn_like(layer.cells[0].ih.weight))  # a new tensor
    _compare(layer, x)
    _compare(layer, torch.randn(5, 6, 3))  # another batch size than the weights were packed for
    layer.cells[0].hh.weight = nn.Parameter(torch.randn(4 * H, H).t().contiguous().t())  # other strides
    _compare(layer, x)
    assert loop.failed is None


@pytest.mark.slow
def test_projection_inside_the_scan_only_where_it_is_per_step():
    torch.manual_seed(4)
    for cell, per_step in ((TwoLinearLSTM(3), True), (TimeMixingCell(3), False)):
        layer = rnn.Recurrent(cell, batch_first=True, compile=True)
        _compare(layer, torch.randn(2, 1, 3))  # one step: undecided, hoisted projection
        assert layer._loops[0].per_step is None
        _compare(layer, torch.randn(2, 6, 3), lengths=torch.tensor([6, 2]))
        assert layer._loops[0].per_step is per_step and layer._loops[0].failed is None
