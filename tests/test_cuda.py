"""The CUDA path (cuDNN kernels): same results as the generic runner, lengths and step included.

Skipped on machines without a GPU; run on a lent GPU machine to check the CUDA path.
"""
import pytest
import torch

import rnnkit.nn as rn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("cls,kw", [(rn.LSTM, {}), (rn.LSTM, {"proj_size": 8}), (rn.GRU, {}), (rn.RNN, {"nonlinearity": "relu"})])
def test_cudnn_matches_generic_runner(cls, kw):
    torch.manual_seed(0)
    fused = cls(12, 16, num_layers=2, bidirectional=True, batch_first=True, **kw).cuda().double()
    generic = cls(12, 16, num_layers=2, bidirectional=True, batch_first=True, fused=False, **kw).cuda().double()
    generic.load_state_dict(fused.state_dict())
    x = torch.randn(5, 9, 12, device="cuda", dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([9, 4, 7, 1, 9])
    y1, s1 = fused(x, lengths=lengths)
    y2, s2 = generic(x, lengths=lengths)
    torch.testing.assert_close(y1, y2, atol=1e-6, rtol=1e-6)
    g1 = torch.autograd.grad(y1.sum(), x)[0]
    g2 = torch.autograd.grad(y2.sum(), x)[0]
    torch.testing.assert_close(g1, g2, atol=1e-6, rtol=1e-6)


def test_cuda_step_equals_sequence():
    torch.manual_seed(0)
    m = rn.LSTM(8, 32, num_layers=2, batch_first=True).cuda()
    x = torch.randn(3, 20, 8, device="cuda")
    y, _ = m(x)
    state, ys = None, []
    for t in range(20):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, atol=1e-4, rtol=1e-4)
