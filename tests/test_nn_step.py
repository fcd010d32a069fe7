"""LSTM.step takes the C fast path under no_grad and still equals the whole-sequence call."""
import torch

import rnnkit.nn as rn
from rnnkit.nn import fast


def test_lstm_step_no_grad_fast_path_equals_forward():
    torch.manual_seed(0)
    layer = rn.LSTM(5, 32, num_layers=2, batch_first=True).eval()
    x = torch.randn(3, 12, 5)
    with torch.no_grad():
        y, (h, c) = layer(x)
        state, ys = None, []
        for t in range(12):
            y_t, state = layer.step(x[:, t], state)
            ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[1], c, atol=1e-5, rtol=1e-5)


def test_lstm_step_sees_weight_updates():
    torch.manual_seed(0)
    layer = rn.LSTM(4, 8).eval()
    x = torch.randn(1, 4)
    with torch.no_grad():
        before, _ = layer.step(x)
        layer.weight_ih_l0.add_(0.5)
        after, _ = layer.step(x)
        expected, _ = layer(x.unsqueeze(0))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected[0], atol=1e-5, rtol=1e-5)


def test_lean_path_declines_under_autograd():
    layer = rn.LSTM(4, 8)
    state = layer.init_state(1)
    assert fast.lean_lstm_step(layer, torch.randn(1, 4), state) is None
