"""CPU training path for GRU layers: torch's matmuls, fused C gate kernels, hoisted weight gradients.

``torch.nn.GRU`` on a CPU runs each step as a handful of separate ops recorded by autograd, and
its backward replays them op by op, with a small weight-gradient matmul per step. Here one
layer-direction is one autograd Function (x: (T, B, I) time-major):

* forward: the input projection of all steps is one matmul; per step one ``addmm`` for the
  hidden projection and one C call that computes the gates and the new state and keeps
  ``[r | z | n | W_hn h + b_hn]`` for the backward pass;
* backward: per step one C call for the gate derivatives and one ``addmm`` carrying the state
  gradient (``dh_prev = dh * z + dgh @ W_hh``); the weight and bias gradients of all steps are
  then three big matmuls and two sums instead of T small ones.

Same maths and parameter layout as ``torch.nn.GRU`` (gate order r, z, n; ``b_hn`` inside the
reset gate). Used by ``rnnkit.nn.GRU`` when it trains on a CPU in float32 without lengths
(``fast_train_ok``); anything else takes torch's kernel. Without a C compiler it is off.
"""
from __future__ import annotations

import ctypes
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import kernels

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
typedef int64_t I64;
#define R restrict
static inline float sig(float x) { float e = expf(-fabsf(x)), s = 1.f / (1.f + e); return x >= 0 ? s : e * s; }
/* tanh from one exp of a non-positive number (no overflow): sign(x) (1 - e) / (1 + e), e = exp(-2|x|) */
static inline float tnh(float x) { float e = expf(-2.f * fabsf(x)), t = (1.f - e) / (1.f + e); return x >= 0 ? t : -t; }
/* One step for B rows. gi: (B, 3H) input side incl. b_ih and the r, z parts of b_hh, row
   stride sgi; gh: (B, 3H) hidden side h W_hh^T without bias; bhn: (H,) the n part of b_hh (it
   sits inside the reset gate); h: (B, H) previous state; hout: (B, H);
   act: (B, 4H) = [r | z | n | W_hn h + b_hn]. */
void gru_fwd(I64 B, I64 H, const float* gi, I64 sgi, const float* gh, const float* bhn, const float* h,
             float* hout, float* act) {
    for (I64 b = 0; b < B; b++) {
        const float *R xi = gi + b * sgi, *R xh = gh + b * 3 * H, *R hp = h + b * H;
        float *R ho = hout + b * H, *R a = act + b * 4 * H;
        #pragma omp simd
        for (I64 j = 0; j < H; j++) {
            float r = sig(xi[j] + xh[j]), z = sig(xi[H + j] + xh[H + j]), hn = xh[2 * H + j] + bhn[j];
            float n = tnh(xi[2 * H + j] + r * hn);
            ho[j] = n + z * (hp[j] - n);
            a[j] = r; a[H + j] = z; a[2 * H + j] = n; a[3 * H + j] = hn;
        }
    }
}
/* Backward of one step. dh: (B, H) gradient reaching h_t (carried), overwritten with the part
   that flows straight to h_{t-1} (dh * z); dy: (B, H) output gradient of this step or NULL;
   dgi/dgh: (B, 3H) gradients of the input/hidden-side pre-activations. */
void gru_bwd(I64 B, I64 H, const float* dy, float* dh, const float* act, const float* h, float* dgi, float* dgh) {
    for (I64 b = 0; b < B; b++) {
        const float *R a = act + b * 4 * H, *R hp = h + b * H, *R y = dy ? dy + b * H : 0;
        float *R d = dh + b * H, *R gi = dgi + b * 3 * H, *R gh = dgh + b * 3 * H;
        #pragma omp simd
        for (I64 j = 0; j < H; j++) {
            float g = d[j] + (y ? y[j] : 0.f);
            float r = a[j], z = a[H + j], n = a[2 * H + j], hn = a[3 * H + j];
            float dz = g * (hp[j] - n) * z * (1.f - z);
            float dn = g * (1.f - z) * (1.f - n * n);
            float dr = dn * hn * r * (1.f - r);
            gi[j] = dr; gi[H + j] = dz; gi[2 * H + j] = dn;
            gh[j] = dr; gh[H + j] = dz; gh[2 * H + j] = dn * r;
            d[j] = g * z;
        }
    }
}
"""
_LIB: Optional[ctypes.CDLL] = None
_TRIED = False


def _lib() -> Optional[ctypes.CDLL]:
    global _LIB, _TRIED
    if not _TRIED:
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        types = {"gru_fwd": [i64, i64, ptr, i64, ptr, ptr, ptr, ptr, ptr], "gru_bwd": [i64, i64] + [ptr] * 6}
        _LIB, _TRIED = kernels.build_library("gru_train", _SOURCE, {"f32": []}, types).get("f32"), True
    return _LIB


def _p(t: Optional[Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


class GRULayer(torch.autograd.Function):
    """One GRU layer-direction: ``(x (T, B, I), h0 (B, H), weights) -> (y (T, B, H), h_T (B, H))``."""

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor,  # type: ignore[override]
                b_ih: Optional[Tensor], b_hh: Optional[Tensor]):
        lib = _lib()
        T, B, _ = x.shape
        H = h0.shape[1]
        gi = F.linear(x, w_ih, b_ih)  # (T, B, 3H): every step's input side at once
        if b_hh is not None:  # b_hr, b_hz add like input terms; b_hn goes inside the reset gate
            gi[..., :2 * H] += b_hh[:2 * H]
            b_hn = b_hh[2 * H:].contiguous()
        else:
            b_hn = x.new_zeros(H)
        gi = gi.contiguous()
        w_hh_t = w_hh.t().contiguous()  # (H, 3H): the plain layout multiplies ~15 % faster than a transposed view
        y, act = x.new_empty(T, B, H), x.new_empty(T, B, 4 * H)
        gh = x.new_empty(B, 3 * H)
        h = h0
        for t in range(T):
            torch.mm(h, w_hh_t, out=gh)
            lib.gru_fwd(B, H, gi[t].data_ptr(), 3 * H, gh.data_ptr(), b_hn.data_ptr(), h.data_ptr(),
                        y[t].data_ptr(), act[t].data_ptr())
            h = y[t]
        ctx.save_for_backward(x, h0, w_ih, w_hh, y, act)
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        return y, y[T - 1].clone()

    @staticmethod
    def backward(ctx, dy: Optional[Tensor], dhT: Optional[Tensor]):  # type: ignore[override]
        lib = _lib()
        x, h0, w_ih, w_hh, y, act = ctx.saved_tensors
        T, B, I = x.shape
        H = h0.shape[1]
        dy = dy.contiguous() if dy is not None else None
        dh = dhT.clone().contiguous() if dhT is not None else x.new_zeros(B, H)
        dgi, dgh = x.new_empty(T, B, 3 * H), x.new_empty(T, B, 3 * H)
        for t in range(T - 1, -1, -1):
            h = y[t - 1] if t else h0
            lib.gru_bwd(B, H, _p(dy[t]) if dy is not None else None, dh.data_ptr(), act[t].data_ptr(),
                        h.data_ptr(), dgi[t].data_ptr(), dgh[t].data_ptr())
            dh.addmm_(dgh[t], w_hh)  # dh_{t-1} = dh_t * z (left by the kernel) + dgh @ W_hh
        # weight gradients of all steps at once: sum_t dgh_t^T h_{t-1}, sum_t dgi_t^T x_t
        dgh2, dgi2 = dgh.view(T * B, 3 * H), dgi.view(T * B, 3 * H)
        dw_hh = dgh[0].t() @ h0
        if T > 1:
            dw_hh = torch.addmm(dw_hh, dgh2[B:].t(), y[:-1].reshape((T - 1) * B, H))
        dw_ih = dgi2.t() @ x.reshape(T * B, I)
        dx = (dgi2 @ w_ih).view(T, B, I) if ctx.needs_input_grad[0] else None
        db_ih = dgi2.sum(0) if ctx.has_bias[0] else None
        db_hh = dgh2.sum(0) if ctx.has_bias[1] else None
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh


def fast_train_ok(layer: nn.GRU, x: Tensor, hx: Optional[Tensor]) -> bool:
    """True where this path applies: training (autograd on) on a CPU in float32, no packed
    input, no tracing or autocast, the kernels built, and ``layer.fast_train`` not set False."""
    return (getattr(layer, "fast_train", True) and torch.is_grad_enabled() and x.device.type == "cpu"
            and x.dtype == torch.float32 and x.numel() > 0 and layer.weight_hh_l0.dtype == torch.float32
            and (hx is None or (isinstance(hx, Tensor) and hx.dtype == torch.float32 and hx.device.type == "cpu"))
            and (x.requires_grad or any(p.requires_grad for p in layer.parameters()))
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.is_autocast_enabled("cpu") and _lib() is not None)


def gru_forward(layer: nn.GRU, x: Tensor, hx: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """``torch.nn.GRU.forward`` semantics (x batched or not, batch_first, hx (L*D, B, H)) on this path."""
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(1)
        hx = hx.unsqueeze(1) if hx is not None else None
    xt = x.transpose(0, 1) if layer.batch_first else x  # (T, B, I)
    D, H = 2 if layer.bidirectional else 1, layer.hidden_size
    if hx is None:
        hx = xt.new_zeros(layer.num_layers * D, xt.shape[1], H)
    inp, finals = xt.contiguous(), []
    for k in range(layer.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{k}{'_reverse' if d else ''}"
            w = [getattr(layer, n + sfx, None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            src = inp if d == 0 else inp.flip(0)
            out, h_last = GRULayer.apply(src, hx[k * D + d].contiguous(), *w)
            outs.append(out if d == 0 else out.flip(0))
            finals.append(h_last)
        inp = torch.cat(outs, dim=2) if D > 1 else outs[0]
        if layer.dropout and layer.training and k < layer.num_layers - 1:
            inp = F.dropout(inp, layer.dropout, training=True)
    y = inp.transpose(0, 1) if layer.batch_first else inp
    h_n = torch.stack(finals)
    if unbatched:
        y, h_n = y.squeeze(1), h_n.squeeze(1)
    return y, h_n
