"""The CPU training path of rnnkit.nn.GRU/RNN (rnnkit/nn/cpu_train.py) equals torch.nn in float32:
outputs, final state and every gradient, over layers, directions, layouts, bias and states."""
from __future__ import annotations

import itertools

import pytest
import torch

import rnnkit.nn as rnn
from rnnkit.nn import cpu_train

pytestmark = pytest.mark.skipif(cpu_train._lib() is None, reason="no C compiler for the training kernels")
KINDS = {"gru": ("GRU", {}), "rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"})}
WITH_LENGTHS = {**KINDS, "lstm": ("LSTM", {})}  # the LSTM takes the path only with lengths

GRID = list(itertools.product([1, 2], [False, True], [False, True], [True, False], [True, False]))


def _pair(I, H, kind="gru", **kw):
    torch.manual_seed(0)
    cls, extra = WITH_LENGTHS[kind]
    ref = getattr(torch.nn, cls)(I, H, **extra, **kw)
    ours = getattr(rnn, cls)(I, H, **extra, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _grads(layer, x, h0, loss):
    for p in layer.parameters():
        p.grad = None
    x = x.detach().requires_grad_()
    h0 = h0.detach().requires_grad_() if h0 is not None else None
    y, hn = layer(x, h0)
    loss(y, hn).backward()
    return [y, hn, x.grad] + ([h0.grad] if h0 is not None else []) + [p.grad for p in layer.parameters()]


def _close(a_list, b_list):
    for a, b in zip(a_list, b_list, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-6 * max(1.0, b.abs().max().item()))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,bias,with_h0", GRID)
def test_equals_torch_float32(kind, num_layers, bidirectional, batch_first, bias, with_h0):
    I, H, T, B = 5, 7, 9, 3
    ref, ours = _pair(I, H, kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                      bias=bias)
    g = torch.Generator().manual_seed(1)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=g)
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), B, H, generator=g) if with_h0 else None
    w_y = torch.randn(ref(x)[0].shape, generator=g)

    def loss(y, hn):
        return (y * w_y).sum() + hn.square().sum()

    _close(_grads(ours, x, h0, loss), _grads(ref, x, h0, loss))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", ["output", "state"])
def test_loss_on_output_or_state_only(kind, which):
    ref, ours = _pair(4, 16, kind)
    x = torch.randn(20, 6, 4)

    def loss(y, hn):
        return y.tanh().sum() if which == "output" else hn.sum()

    _close(_grads(ours, x, None, loss), _grads(ref, x, None, loss))


def test_realistic_size_and_unbatched():
    ref, ours = _pair(32, 256)
    x = torch.randn(100, 16, 32)
    _close(_grads(ours, x, None, lambda y, hn: y.sin().sum()), _grads(ref, x, None, lambda y, hn: y.sin().sum()))
    xu = torch.randn(12, 32, requires_grad=True)
    y, hn = ours(xu)
    y_ref, hn_ref = ref(xu)
    _close([y, hn], [y_ref, hn_ref])


def test_path_is_taken_only_where_it_applies(monkeypatch):
    calls = []
    real = cpu_train._GRU.apply
    monkeypatch.setattr(cpu_train._GRU, "apply", lambda *a: calls.append(1) or real(*a))
    layer = rnn.GRU(3, 4)
    x = torch.randn(5, 2, 3)
    layer(x)
    assert len(calls) == 1  # training, float32, CPU
    with torch.no_grad():
        layer(x)  # inference: torch's kernel
    layer.double()(x.double())  # float64: torch's kernel
    layer.float().fast_train = False
    layer(x)
    assert len(calls) == 1
    rnn.LSTM(3, 4)(x)  # LSTM training without lengths stays on oneDNN (faster there)
    assert len(calls) == 1
    lstm_calls = []
    real_lstm = cpu_train._LSTM.apply
    monkeypatch.setattr(cpu_train._LSTM, "apply", lambda *a: lstm_calls.append(1) or real_lstm(*a))
    rnn.LSTM(3, 4)(x, lengths=torch.tensor([5, 3]))  # with lengths: this path, not torch's packed loop
    assert len(lstm_calls) == 1


def test_dropout_between_layers_trains():
    torch.manual_seed(3)
    layer = rnn.GRU(3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(6, 4, 3)
    y1, _ = layer(x)
    y2, _ = layer(x)
    assert not torch.equal(y1, y2)  # dropout active in training
    y1.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    layer.eval()
    ref = torch.nn.GRU(3, 8, num_layers=2, dropout=0.5).eval()
    ref.load_state_dict(layer.state_dict())
    _close([layer(x)[0]], [ref(x)[0]])


@pytest.mark.parametrize("kind", WITH_LENGTHS)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first", [(1, False, False), (2, True, True), (1, True, False)])
def test_lengths_equal_torch_packed(kind, num_layers, bidirectional, batch_first):
    """With lengths the path equals torch's packed-sequence run: outputs zero past each length,
    final state at each sequence's last real step, same gradients."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    I, H, T, B = 4, 6, 8, 4
    ref, ours = _pair(I, H, kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    lengths = torch.tensor([8, 3, 5, 1])
    g = torch.Generator().manual_seed(2)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=g)
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), B, H, generator=g)
    c0 = torch.randn(num_layers * (2 if bidirectional else 1), B, H, generator=g)
    w_y = torch.randn((B, T, H * (2 if bidirectional else 1)) if batch_first else (T, B, H * (2 if bidirectional else 1)),
                      generator=g)
    lstm = kind == "lstm"

    def torch_packed(x, h):
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        y, hn = ref(packed, h)
        return pad_packed_sequence(y, batch_first=batch_first, total_length=T)[0], hn

    def loss(y, hn):
        return (y * w_y).sum() + (hn[0].square().sum() + hn[1].sin().sum() if lstm else hn.square().sum())

    results = []
    for fn, layer in ((torch_packed, ref), (lambda x, h: ours(x, h, lengths=lengths), ours)):
        for p in layer.parameters():
            p.grad = None
        xr, hr, cr = x.clone().requires_grad_(), h0.clone().requires_grad_(), c0.clone().requires_grad_()
        y, hn = fn(xr, (hr, cr) if lstm else hr)
        loss(y, hn).backward()
        states = list(hn) + [hr.grad, cr.grad] if lstm else [hn, hr.grad]
        results.append([y, xr.grad] + states + [p.grad for p in layer.parameters()])
    _close(results[1], results[0])


def test_double_backward_raises_instead_of_going_wrong():
    layer = rnn.GRU(3, 4)
    x = torch.randn(5, 2, 3, requires_grad=True)
    (g,) = torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


@pytest.mark.parametrize("kind", KINDS)
def test_single_step_sequence(kind):
    ref, ours = _pair(3, 5, kind, bidirectional=True)
    x = torch.randn(1, 4, 3)
    _close(_grads(ours, x, None, lambda y, hn: y.sum() + hn.sum()), _grads(ref, x, None, lambda y, hn: y.sum() + hn.sum()))
