"""Lean streaming LSTM: fp32 equals the layer, bf16/int8 stay close, state handling, errors;
the C kernel and its torch fallback agree."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.nn import LSTM, Recurrent
from rnnkit.nn.fast import StreamingLSTM, dequantize, pack_weights

kernel_params = [True, False]


def _stream(s: StreamingLSTM, x: torch.Tensor) -> torch.Tensor:
    """x: (batch, time, I) -> (batch, time, H) one step at a time."""
    return torch.stack([s.step(x[:, t]) for t in range(x.shape[1])], 1)


@pytest.mark.parametrize("use_kernel", kernel_params)
def test_fp32_equals_layer_forward(use_kernel):
    torch.manual_seed(0)
    layer = LSTM(5, 16, num_layers=2, batch_first=True).eval()
    x = torch.randn(3, 40, 5)
    with torch.no_grad():
        y_ref, (h_ref, c_ref) = layer(x)
    s = StreamingLSTM(layer, "fp32", use_kernel=use_kernel)
    s.reset(3)
    y = _stream(s, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    h, c = s.state
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c, c_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_kernel", kernel_params)
@pytest.mark.parametrize("weights,bound", [("bf16", 5e-3), ("int8", 2e-2)])
def test_small_weights_stay_close(use_kernel, weights, bound):
    torch.manual_seed(1)
    layer = nn.LSTM(8, 64).eval()  # a plain torch.nn.LSTM works too
    x = torch.randn(1, 200, 8)
    ref = _stream(StreamingLSTM(layer, "fp32"), x)
    got = _stream(StreamingLSTM(layer, weights, use_kernel=use_kernel), x)
    err = (got - ref).abs().max().item()
    assert 0 < err < bound, err


def test_kernel_and_fallback_agree_for_each_weight_type():
    torch.manual_seed(2)
    layer = LSTM(4, 32, num_layers=2).eval()
    x = torch.randn(2, 30, 4)
    for w in ("fp32", "bf16", "int8"):
        a, b = StreamingLSTM(layer, w), StreamingLSTM(layer, w, use_kernel=False)
        a.reset(2)
        b.reset(2)
        torch.testing.assert_close(_stream(a, x), _stream(b, x), rtol=1e-5, atol=1e-5)


def test_state_setter_continues_a_stream():
    torch.manual_seed(3)
    layer = LSTM(3, 8, batch_first=True).eval()
    x = torch.randn(1, 20, 3)
    with torch.no_grad():
        y_ref, _ = layer(x)
        _, state = layer(x[:, :10])
    s = StreamingLSTM(layer)
    s.state = state
    torch.testing.assert_close(_stream(s, x[:, 10:]), y_ref[:, 10:], rtol=1e-5, atol=1e-5)


def test_int8_packing_roundtrip():
    w = torch.randn(16, 9)
    q, scale = pack_weights(w, "int8")
    assert q.dtype == torch.int8
    assert (dequantize(q, scale) - w).abs().max() <= scale.max() / 2 + 1e-6


def test_bad_input():
    with pytest.raises(ValueError, match="unidirectional"):
        StreamingLSTM(LSTM(3, 4, bidirectional=True))
    with pytest.raises(ValueError, match="needs an LSTM"):
        StreamingLSTM(nn.GRU(3, 4))
    with pytest.raises(ValueError, match="weights must be"):
        StreamingLSTM(LSTM(3, 4), weights="fp8")
    s = StreamingLSTM(LSTM(3, 4))
    with pytest.raises(ValueError, match=r"expects x of shape \(1, 3\)"):
        s.step(torch.randn(2, 3))


def test_user_lstm_cell_through_runner_equals_fused():
    """The LSTM-equivalent user cell of bench/custom_cell.py computes what torch.nn.LSTM does."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "custom_cell.py"
    spec = importlib.util.spec_from_file_location("_bench_custom_cell", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(4)
    ref = nn.LSTM(5, 12, batch_first=True)
    x = torch.randn(3, 15, 5, requires_grad=True)
    for hoist in (True, False):
        cell = mod.UserLSTM(5, 12, hoist=hoist)
        mod._load_from(cell, ref)
        y, (h, c) = Recurrent(cell, batch_first=True)(x)
        y_ref, (h_ref, c_ref) = ref(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c, c_ref, rtol=1e-5, atol=1e-6)
        g, g_ref = torch.autograd.grad(y.sum(), x)[0], torch.autograd.grad(y_ref.sum(), x)[0]
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)


def test_lean_lstm_step_matches_layer_step_and_sees_weight_updates():
    from rnnkit.nn.fast import lean_lstm_step

    torch.manual_seed(5)
    layer = LSTM(4, 8, num_layers=2).eval()
    x = torch.randn(3, 4)
    state = (torch.randn(2, 3, 8), torch.randn(2, 3, 8))
    assert lean_lstm_step(layer, x, state) is None  # autograd on: not applicable
    with torch.no_grad():
        got = lean_lstm_step(layer, x, state)
        if got is None:
            pytest.skip("no C compiler for the streaming kernel")
        y_ref, (h_ref, c_ref) = layer.step(x, state)
        torch.testing.assert_close(got[0], y_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[1][0], h_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[1][1], c_ref, rtol=1e-5, atol=1e-5)
        layer.weight_hh_l1.mul_(0.5)  # an in-place update, as an optimizer does
        y2, _ = lean_lstm_step(layer, x, state)
        torch.testing.assert_close(y2, layer.step(x, state)[0], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(y2, y_ref)
