"""Parity of rnnkit.nn layers with torch.nn: outputs, gradients, state dicts, lengths, step.

The reference is torch.nn itself (same weights loaded through the state dict). Double
precision keeps the comparison tight (1e-5 is far above float64 round-off), and sizes stay
tiny so the whole grid runs in a few seconds on one core.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import rnnkit.nn as rnn

TOL = 1e-5
I, H, P, B, T = 3, 5, 2, 3, 6

# name -> (torch class, rnnkit class, extra kwargs)
KINDS = {
    "rnn_tanh": (nn.RNN, rnn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, rnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, rnn.LSTM, {}),
    "lstm_proj": (nn.LSTM, rnn.LSTM, {"proj_size": P}),
    "gru": (nn.GRU, rnn.GRU, {}),
}


def make_pair(kind: str, num_layers: int = 1, bidirectional: bool = False, batch_first: bool = True,
              fused: bool = True, seed: int = 0, **ours_kw):
    """A torch.nn layer and an rnnkit layer holding the same weights (float64)."""
    torch_cls, ours_cls, kw = KINDS[kind]
    torch.manual_seed(seed)
    ref = torch_cls(I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, **kw).double()
    ours = ours_cls(I, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                    fused=fused, **kw, **ours_kw).double()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def state_shapes(kind: str, num_layers: int, bidirectional: bool) -> list[tuple[int, ...]]:
    n = num_layers * (2 if bidirectional else 1)
    if kind.startswith("lstm"):
        return [(n, B, P if kind == "lstm_proj" else H), (n, B, H)]
    return [(n, B, H)]


def as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


def run_with_grads(layer: nn.Module, x: torch.Tensor, h0: list[torch.Tensor] | None, weights: list[torch.Tensor]):
    """Forward, then backward of a random linear functional of output and final state.

    Returns the output, final state and the gradients wrt x, each initial-state tensor and
    every parameter (in named_parameters order).
    """
    x = x.clone().requires_grad_(True)
    hs = [h.clone().requires_grad_(True) for h in h0] if h0 is not None else None
    hx = None if hs is None else (tuple(hs) if len(hs) > 1 else hs[0])
    layer.zero_grad()
    y, state = layer(x, hx)
    state = as_tuple(state)
    loss = (y * weights[0]).sum() + sum((s * w).sum() for s, w in zip(state, weights[1:]))
    loss.backward()
    grads = [x.grad] + ([h.grad for h in hs] if hs else []) + [p.grad for _, p in layer.named_parameters()]
    return y.detach(), [s.detach() for s in state], grads


GRID = list(itertools.product(KINDS, (1, 2, 3), (False, True), (True, False)))


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first", GRID)
def test_outputs_and_gradients_match_torch(kind, num_layers, bidirectional, batch_first):
    g = torch.Generator().manual_seed(1)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    h0 = [torch.randn(s, generator=g, dtype=torch.float64) for s in state_shapes(kind, num_layers, bidirectional)]
    for fused, with_h0 in itertools.product((True, False), (True, False)):
        ref, ours = make_pair(kind, num_layers, bidirectional, batch_first, fused=fused)
        init = h0 if with_h0 else None
        y_ref, s_ref = ref(x, None if init is None else (tuple(init) if len(init) > 1 else init[0]))
        weights = [torch.randn(y_ref.shape, generator=g, dtype=torch.float64)]
        weights += [torch.randn(s.shape, generator=g, dtype=torch.float64) for s in as_tuple(s_ref)]
        yr, sr, gr = run_with_grads(ref, x, init, weights)
        yo, so, go = run_with_grads(ours, x, init, weights)
        where = f"fused={fused} h0={with_h0}"
        assert yo.shape == yr.shape, where
        torch.testing.assert_close(yo, yr, atol=TOL, rtol=0, msg=f"output differs ({where})")
        for a, b in zip(so, sr):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0, msg=f"final state differs ({where})")
        assert len(go) == len(gr)
        names = ["input"] + [f"h0[{i}]" for i in range(len(init or []))] + [n for n, _ in ref.named_parameters()]
        for name, a, b in zip(names, go, gr):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0, msg=f"gradient wrt {name} differs ({where})")


@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_round_trip_torch_rnnkit_torch(kind):
    torch_cls, ours_cls, kw = KINDS[kind]
    ref = torch_cls(I, H, num_layers=2, bidirectional=True, **kw)
    ours = ours_cls(I, H, num_layers=2, bidirectional=True, **kw)
    assert list(ours.state_dict()) == list(ref.state_dict())  # same keys, same order
    ours.load_state_dict(ref.state_dict())
    back = torch_cls(I, H, num_layers=2, bidirectional=True, **kw)
    back.load_state_dict(ours.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    assert "weight_hh_l1_reverse" in ours.state_dict()


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fused", [True, False])
def test_step_over_sequence_equals_whole_sequence(kind, fused):
    _, ours = make_pair(kind, num_layers=2, fused=fused)
    x = torch.randn(B, T, I, dtype=torch.float64)
    y_all, s_all = ours(x)
    state, ys = None, []
    for t in range(T):
        y_t, state = ours.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y_all, atol=TOL, rtol=0)
    for a, b in zip(as_tuple(state), as_tuple(s_all)):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_step_refuses_bidirectional():
    _, ours = make_pair("gru", bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional"):
        ours.step(torch.randn(B, I, dtype=torch.float64))


LENGTH_CASES = list(itertools.product(("rnn_tanh", "lstm", "lstm_proj", "gru"), (False, True), (True, False), ("lengths", "mask")))


@pytest.mark.parametrize("kind,bidirectional,fused,how", LENGTH_CASES)
def test_padded_batch_equals_each_sequence_alone(kind, bidirectional, fused, how):
    _, ours = make_pair(kind, num_layers=2, bidirectional=bidirectional, fused=fused)
    lengths = torch.tensor([T, 2, 4])
    x = torch.randn(B, T, I, dtype=torch.float64)
    x[1, 2:] = 7.0  # garbage in the padding must not leak into anything
    x[2, 4:] = -3.0
    if how == "lengths":
        y, state = ours(x, lengths=lengths)
    else:
        y, state = ours(x, mask=torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1))
    state = as_tuple(state)
    for b, L in enumerate(lengths.tolist()):
        y_b, s_b = ours(x[b:b + 1, :L])
        torch.testing.assert_close(y[b:b + 1, :L], y_b, atol=TOL, rtol=0)
        assert torch.all(y[b, L:] == 0), "outputs past a sequence's end must be zero"
        for s, sb in zip(state, as_tuple(s_b)):
            torch.testing.assert_close(s[:, b:b + 1], sb, atol=TOL, rtol=0)


@pytest.mark.parametrize("fused", [True, False])
def test_lengths_time_major_with_initial_state(fused):
    _, ours = make_pair("lstm", num_layers=1, bidirectional=True, batch_first=False, fused=fused)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = tuple(torch.randn(s, dtype=torch.float64) for s in state_shapes("lstm", 1, True))
    lengths = torch.tensor([3, T, 1])
    y, (h, c) = ours(x, h0, lengths=lengths)
    for b, L in enumerate(lengths.tolist()):
        y_b, (h_b, c_b) = ours(x[:L, b:b + 1], (h0[0][:, b:b + 1], h0[1][:, b:b + 1]))
        torch.testing.assert_close(y[:L, b:b + 1], y_b, atol=TOL, rtol=0)
        torch.testing.assert_close(h[:, b:b + 1], h_b, atol=TOL, rtol=0)
        torch.testing.assert_close(c[:, b:b + 1], c_b, atol=TOL, rtol=0)


@pytest.mark.parametrize("fused", [True, False])
def test_go_backwards_reads_reversed_input_and_returns_reversed_order(fused):
    """Keras semantics: ``go_backwards`` = run on the time-reversed input, outputs not flipped back."""
    _, plain = make_pair("gru", fused=fused)
    _, back = make_pair("gru", fused=fused, go_backwards=True)
    x = torch.randn(B, T, I, dtype=torch.float64)
    y_b, h_b = back(x)
    y_p, h_p = plain(x.flip(1))
    torch.testing.assert_close(y_b, y_p, atol=TOL, rtol=0)
    torch.testing.assert_close(h_b, h_p, atol=TOL, rtol=0)
    # with lengths, each sequence is reversed within its own length
    lengths = torch.tensor([T, 2, 5])
    y_l, _ = back(x, lengths=lengths)
    for b, L in enumerate(lengths.tolist()):
        y_alone, _ = plain(x[b:b + 1, :L].flip(1))
        torch.testing.assert_close(y_l[b:b + 1, :L], y_alone, atol=TOL, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_return_sequences_false_and_return_state_false(bidirectional):
    _, full = make_pair("lstm", num_layers=2, bidirectional=bidirectional)
    _, last = make_pair("lstm", num_layers=2, bidirectional=bidirectional, return_sequences=False, return_state=False)
    x = torch.randn(B, T, I, dtype=torch.float64)
    y, _ = full(x)
    out = last(x)
    assert isinstance(out, torch.Tensor) and out.shape == (B, (2 if bidirectional else 1) * H)
    # Keras: forward half after the last step, backward half after reading back to step 0
    expected = y[:, -1] if not bidirectional else torch.cat([y[:, -1, :H], y[:, 0, H:]], -1)
    torch.testing.assert_close(out, expected, atol=TOL, rtol=0)
    lengths = torch.tensor([2, T, 4])
    out_l = last(x, lengths=lengths)
    for b, L in enumerate(lengths.tolist()):
        torch.testing.assert_close(out_l[b:b + 1], last(x[b:b + 1, :L]), atol=TOL, rtol=0)


def test_unbatched_input_like_torch():
    ref, ours = make_pair("lstm", num_layers=2)
    x = torch.randn(T, I, dtype=torch.float64)
    y_r, (h_r, c_r) = ref(x)
    y_o, (h_o, c_o) = ours(x)
    torch.testing.assert_close(y_o, y_r, atol=TOL, rtol=0)
    torch.testing.assert_close(h_o, h_r, atol=TOL, rtol=0)


CELLS = {"lstm": rnn.LSTMCell, "gru": rnn.GRUCell, "rnn_tanh": rnn.RNNCell, "lstm_proj": rnn.LSTMCell}


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_with_cell_factory_equals_fused_layer(kind, bidirectional):
    ref, fused = make_pair(kind, num_layers=2, bidirectional=bidirectional)
    extra = {"proj_size": P} if kind == "lstm_proj" else {}
    layer = rnn.Recurrent(lambda i: CELLS[kind](i, H, **extra), input_size=I, num_layers=2,
                          bidirectional=bidirectional, batch_first=True).double()
    D = 2 if bidirectional else 1
    # copy weights: cell k = layer * D + direction  <-  weight_ih_l{layer}[_reverse]
    with torch.no_grad():
        for k, cell in enumerate(layer.cells):
            suffix = f"l{k // D}" + ("_reverse" if k % D else "")
            for name, p in cell.named_parameters():
                p.copy_(getattr(fused, f"{name}_{suffix}"))
    x = torch.randn(B, T, I, dtype=torch.float64)
    h0 = tuple(torch.randn(s, dtype=torch.float64) for s in state_shapes(kind, 2, bidirectional))
    h0 = h0 if len(h0) > 1 else h0[0]
    lengths = torch.tensor([T, 3, 1])
    for kw in ({}, {"lengths": lengths}):
        y_f, s_f = fused(x, h0, **kw)
        y_r, s_r = layer(x, h0, **kw)
        torch.testing.assert_close(y_r, y_f, atol=TOL, rtol=0)
        for a, b in zip(as_tuple(s_r), as_tuple(s_f)):
            torch.testing.assert_close(a, b, atol=TOL, rtol=0)


# ------------------------------------------------------------------------------- bad input
BAD_INPUTS = [
    ("wrong rank", lambda: torch.randn(B, T, I, 1), r"\(batch, time, 3\)"),
    ("wrong feature size", lambda: torch.randn(B, T, I + 1), r"\(batch, time, 3\)"),
    ("int dtype", lambda: torch.ones(B, T, I, dtype=torch.long), "floating-point"),
]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("what,make_x,pattern", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises_value_error(what, make_x, pattern, fused):
    _, ours = make_pair("lstm", fused=fused)
    with pytest.raises(ValueError, match=pattern):
        ours(make_x())


@pytest.mark.parametrize("lengths,pattern", [
    (torch.tensor([T + 1, 2, 3]), r"\[1, 6\]"),
    (torch.tensor([0, 2, 3]), r"\[1, 6\]"),
    (torch.tensor([2, 3]), r"shape \(3,\)"),
    (torch.tensor([[2, 3, 4]]), r"shape \(3,\)"),
    (torch.tensor([2.0, 3.0, 4.0]), r"integer tensor of shape \(3,\)"),
])
def test_bad_lengths_raise_value_error(lengths, pattern):
    _, ours = make_pair("gru")
    with pytest.raises(ValueError, match=pattern):
        ours(torch.randn(B, T, I, dtype=torch.float64), lengths=lengths)


def test_bad_mask_and_state_raise_value_error():
    _, ours = make_pair("lstm", num_layers=2)
    x = torch.randn(B, T, I, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(batch, time\) = \(3, 6\)"):
        ours(x, mask=torch.ones(B, T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="right padding"):
        ours(x, mask=torch.tensor([[0, 1, 1, 1, 1, 1]] * B, dtype=torch.bool))
    h = torch.zeros(2, B, H, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        ours(x, (torch.zeros(1, B, H, dtype=torch.float64), h))
    with pytest.raises(ValueError, match=r"initial state of shape"):
        ours(x, h)  # LSTM needs (h, c)
    _, gru = make_pair("gru", bidirectional=True)
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        gru(x, torch.zeros(1, B, H, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x_t of shape \(batch, 3\)"):
        ours.step(torch.randn(B, I + 2, dtype=torch.float64))


def test_time_major_error_names_time_major_shape():
    _, ours = make_pair("rnn_tanh", batch_first=False)
    with pytest.raises(ValueError, match=r"\(time, batch, 3\)"):
        ours(torch.randn(T, B, I + 1, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("fused", [True, False])
def test_gradients_with_lengths_equal_each_sequence_alone(kind, fused):
    """Padding neither receives gradient nor leaks into the weights' gradient."""
    _, ours = make_pair(kind, num_layers=2, bidirectional=True, fused=fused)
    lengths = [T, 2, 4]
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    w = torch.randn(B, T, 2 * H, dtype=torch.float64)
    y, _ = ours(x, lengths=torch.tensor(lengths))
    (y * w).sum().backward()
    grads = {n: p.grad.clone() for n, p in ours.named_parameters()}
    for b, L in enumerate(lengths):
        assert torch.all(x.grad[b, L:] == 0)
    ours.zero_grad()
    for b, L in enumerate(lengths):
        xb = x.detach()[b:b + 1, :L].clone().requires_grad_(True)
        y_b, _ = ours(xb)
        (y_b * w[b:b + 1, :L]).sum().backward()
        torch.testing.assert_close(xb.grad, x.grad[b:b + 1, :L], atol=TOL, rtol=0)
    for n, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], atol=TOL, rtol=0, msg=n)
