"""minGRU / minLSTM: every scan equals the sequential recurrence, the layer equals its own
step-by-step inference, lengths/bidirectional are right, and a small model learns."""
from __future__ import annotations

import pytest
import torch

from rnnkit.nn import kernels
from rnnkit.nn.registry import make_layer
from rnnkit.nn.scan import MinGRU, MinLSTM, scan, scan_fused, scan_sequential

KINDS = {"mingru": 2, "minlstm": 3}
METHODS = ["fused", "log", "chunked", "script"]
needs_kernels = pytest.mark.skipif(not kernels.available(), reason="no C compiler for the fused kernels")


def _method_params():
    return [pytest.param(m, marks=needs_kernels) if m == "fused" else m for m in METHODS]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", _method_params())
def test_scan_matches_sequential_fp64(kind, method):
    torch.manual_seed(0)
    G = KINDS[kind]
    k = (torch.randn(3, 45, G * 8, dtype=torch.float64) * 3).requires_grad_()
    h0 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)  # negative entries too
    ref = scan_sequential(kind, k, h0)
    gy = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, (k, h0), gy)
    out = scan(kind, k, h0, method)
    g_out = torch.autograd.grad(out, (k, h0), gy)
    # the log-space scan goes through exp/log of cumulated sums: a looser bound
    tol = 1e-9 if method == "log" else 1e-12
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@needs_kernels
@pytest.mark.parametrize("kind", KINDS)
def test_fused_gradcheck(kind):
    torch.manual_seed(1)
    k = torch.randn(2, 5, KINDS[kind] * 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k, h: scan(kind, k, h, "fused"), (k, h0))


@needs_kernels
@pytest.mark.parametrize("kind", KINDS)
def test_fused_bias_gradcheck(kind):
    """The kernels add the bias themselves and sum its gradient."""
    torch.manual_seed(1)
    G = KINDS[kind]
    k = torch.randn(2, 5, G * 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(G * 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k, b, h: scan_fused(kind, k, h, b), (k, bias, h0))


@needs_kernels
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 3])
def test_fused_work_split_over_threads(kind, batch):
    """With 2 threads the kernel splits batches, or channel blocks when the batch is smaller
    than the thread count (H = 230: blocks of 16 with a ragged end); results equal the
    sequential recurrence exactly as with one thread."""
    torch.manual_seed(9)
    G, H, T = KINDS[kind], 230, 300  # B*T*H >= 2**16: big enough to be split
    k = torch.randn(batch, T, G * H, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(G * H, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(batch, H, dtype=torch.float64, requires_grad=True)
    ref = scan_sequential(kind, k + bias, h0)
    gy = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, (k, bias, h0), gy)
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = scan_fused(kind, k, h0, bias)
        g_out = torch.autograd.grad(out, (k, bias, h0), gy)
    finally:
        torch.set_num_threads(n)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", _method_params())
def test_fp32_long_sequence_close_to_fp64_and_saturation_finite(kind, method):
    torch.manual_seed(2)
    k64 = torch.randn(2, 1024, KINDS[kind] * 16, dtype=torch.float64) * 4
    k64[0, :100] = 80.0  # saturated gates: exp must not overflow into nan
    k64[1, :100] = -80.0
    ref = scan_sequential(kind, k64, torch.zeros(2, 16, dtype=torch.float64))
    k = k64.float().requires_grad_()
    out = scan(kind, k, torch.zeros(2, 16), method)
    out.square().mean().backward()
    assert torch.isfinite(out).all() and torch.isfinite(k.grad).all()
    # fused/chunked are exact in fp32; the log-space scan loses relative precision over T
    tol = 2e-3 if method == "log" else 1e-4
    assert (out.double() - ref).abs().max() / ref.abs().max() < tol


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_layer_forward_equals_step_by_step(cls):
    torch.manual_seed(3)
    layer = cls(5, 7, num_layers=2, batch_first=True).double()
    x = torch.randn(4, 12, 5, dtype=torch.float64)
    h0 = torch.randn(2, 4, 7, dtype=torch.float64)
    y, hT = layer(x, h0)
    state, ys = h0, []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, hT, rtol=1e-12, atol=1e-12)
    assert y.shape == (4, 12, 7) and hT.shape == (2, 4, 7)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_scans_agree_in_layer_time_major_and_batch_first(cls):
    torch.manual_seed(4)
    ref = cls(3, 6, num_layers=2, bidirectional=True, scan="sequential").double()
    x = torch.randn(9, 2, 3, dtype=torch.float64)  # time-major
    y_ref, h_ref = ref(x)
    for method in ["auto", "log", "chunked"] + (["fused"] if kernels.available() else []):
        ref.scan = method
        y, h = ref(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(h, h_ref, rtol=1e-9, atol=1e-9)
    bf = cls(3, 6, num_layers=2, bidirectional=True, batch_first=True).double()
    bf.load_state_dict(ref.state_dict())
    y_bf, h_bf = bf(x.transpose(0, 1))
    torch.testing.assert_close(y_bf.transpose(0, 1), y_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(h_bf, h_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_equal_separate_runs(cls, bidirectional):
    torch.manual_seed(5)
    layer = cls(3, 5, num_layers=2, bidirectional=bidirectional, batch_first=True).double()
    lengths = torch.tensor([7, 3, 5])
    x = torch.randn(3, 7, 3, dtype=torch.float64)
    y, h = layer(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        y_b, h_b = layer(x[b:b + 1, :n])
        torch.testing.assert_close(y[b:b + 1, :n], y_b, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(h[:, b:b + 1], h_b, rtol=1e-10, atol=1e-10)
        assert (y[b, n:] == 0).all()
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    y_m, _ = layer(x, mask=mask)
    torch.testing.assert_close(y_m, y)


def test_registry_and_interface():
    layer = make_layer("mingru", 4, 8, num_layers=2, dropout=0.1, bidirectional=True, batch_first=True)
    assert isinstance(layer, MinGRU)
    assert (layer.num_layers, layer.bidirectional, layer.dropout, layer.batch_first) == (2, True, 0.1, True)
    y, h = layer(torch.randn(2, 5, 4))
    assert y.shape == (2, 5, 16) and h.shape == (4, 2, 8)
    assert isinstance(make_layer("minlstm", 4, 8), MinLSTM)
    uni = make_layer("mingru", 4, 8, batch_first=True)
    y_t, s = uni.step(torch.randn(2, 4))
    assert y_t.shape == (2, 8) and s.shape == (1, 2, 8)
    with pytest.raises(ValueError, match="unidirectional"):
        layer.step(torch.randn(2, 4))
    with pytest.raises(ValueError, match="expects input of shape"):
        uni(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="scan must be"):
        MinGRU(4, 8, scan="magic")


def test_fallback_without_kernels(monkeypatch):
    torch.manual_seed(6)
    layer = MinGRU(3, 4, batch_first=True)
    x = torch.randn(2, 10, 3)
    y_ref, _ = layer(x)
    monkeypatch.setattr(kernels, "supports", lambda t: False)
    y, _ = layer(x)  # auto -> chunked on CPU
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    layer.scan = "fused"
    with pytest.raises(RuntimeError, match="compiled kernels"):
        layer(x)


@pytest.fixture
def one_thread():
    """Small models on a shared 2-core machine: extra threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_learns_adding_problem(cell, one_thread):
    """The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values of a
    length-30 sequence. Predicting the mean scores MSE 1/6 ~ 0.167; a 2-layer minGRU/minLSTM
    must get well below that in a few hundred steps."""
    torch.manual_seed(0)
    T, B = 30, 64

    def batch(n):
        vals = torch.rand(n, T)
        marks = torch.zeros(n, T)
        i = torch.randint(0, T // 2, (n,))
        j = torch.randint(T // 2, T, (n,))
        marks[torch.arange(n), i] = 1
        marks[torch.arange(n), j] = 1
        return torch.stack([vals, marks], -1), (vals * marks).sum(1, keepdim=True)

    rnn = make_layer(cell, 2, 32, num_layers=2, batch_first=True)
    head = torch.nn.Linear(32, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(400):
        x, y = batch(B)
        out, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch(1000)
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(head(rnn(x)[0][:, -1]), y).item()
    assert mse < 0.05, mse  # measured 0.008 (minGRU), 0.023 (minLSTM)


@needs_kernels
@pytest.mark.parametrize("kind", KINDS)
def test_fused_bf16_preactivations(kind):
    """Under autocast the projection is bf16: the kernel reads bf16 k, keeps an fp32 state and
    writes a bf16 gradient; equal to the fp32 recurrence on the same (rounded) k."""
    torch.manual_seed(7)
    k = (torch.randn(3, 50, KINDS[kind] * 16) * 3).bfloat16().requires_grad_()
    h0 = torch.randn(3, 16)
    out = scan(kind, k, h0, "fused")
    gy = torch.randn_like(out)
    (gk,) = torch.autograd.grad(out, (k,), gy)
    kf = k.detach().float().requires_grad_()
    ref = scan_sequential(kind, kf, h0)
    (g_ref,) = torch.autograd.grad(ref, (kf,), gy)
    assert out.dtype == torch.float32 and gk.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (gk.float() - g_ref).abs().max() <= 1e-2 * g_ref.abs().max()  # bf16 rounding of the gradient


def test_autocast_bf16_layer_trains():
    torch.manual_seed(8)
    layer = MinGRU(4, 8, batch_first=True)
    x = torch.randn(2, 20, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h = layer(x)
    y.float().square().mean().backward()
    y32, _ = layer(x)
    assert torch.isfinite(layer.weight_ih_l0.grad).all()
    assert (y.float() - y32).abs().max() < 0.05
