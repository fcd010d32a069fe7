"""CPU training path for GRU/RNN layers (and LSTMs with lengths): torch's matmuls, fused C gate kernels, hoisted weight gradients.

``torch.nn.GRU``/``RNN`` on a CPU run each step as a handful of separate ops recorded by autograd,
and the backward replays them op by op with a small weight-gradient matmul per step. Here one
layer-direction is one autograd Function (x: (T, B, I) time-major):

* forward: the input projection of all steps is one matmul (with both biases folded in where
  they simply add); per step one matmul ``h W_hh^T`` and one C call that computes the gates and
  the new state and keeps what the backward needs;
* backward: per step one C call for the gate derivatives and one in-place ``addmm_`` carrying the
  state gradient (``dh_{t-1} = (part through the gates) + dG_t W_hh``); the weight and bias
  gradients of all steps are then a few big matmuls and sums instead of T small ones.

Same maths and parameter layout as torch.nn (GRU gate order r, z, n with ``b_hn`` inside the
reset gate). Used by ``rnnkit.nn.GRU/RNN`` when they train on a CPU in float32
(``fast_train_ok``), with or without lengths, and ``rnnkit.nn.LSTM`` when it trains with lengths
(torch then runs a slow packed-sequence loop; without lengths its oneDNN LSTM is faster than this
design, docs/decisions.md); anything else takes torch's kernel. The backward is not itself
differentiable: double backward (``create_graph=True``, e.g. gradient penalties) raises, and
``layer.fast_train = False`` gives torch's kernels, which support it.
Measured in docs/bench/layers.md; equal to torch.nn in tests/test_cpu_train.py.
"""
from __future__ import annotations

import ctypes
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from rnnkit.nn import kernels
from rnnkit.nn.runner import reverse_padded

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
typedef int64_t I64;
#define R restrict
static inline float sig(float x) { float e = expf(-fabsf(x)), s = 1.f / (1.f + e); return x >= 0 ? s : e * s; }
/* tanh from one exp of a non-positive number (no overflow): sign(x) (1 - e) / (1 + e), e = exp(-2|x|) */
static inline float tnh(float x) { float e = expf(-2.f * fabsf(x)), t = (1.f - e) / (1.f + e); return x >= 0 ? t : -t; }
/* Common arguments: B rows of H units; gi: this step's input side (B, G*H) incl. the
   biases that simply add; gh: h_{t-1} W_hh^T (B, G*H); dy: output gradient of the step or NULL;
   dh (B, H): gradient reaching h_t, overwritten with the part that reaches h_{t-1} without
   going through W_hh; dG (B, G*H): pre-activation gradients. */

/* GRU. bhn: (H,) the n part of b_hh (inside the reset gate); act (B, 4H) = [r|z|n|W_hn h + b_hn]. */
void gru_fwd(I64 B, I64 H, const float* gi, const float* gh, const float* bhn, const float* h,
             float* hout, float* act) {
    for (I64 b = 0; b < B; b++) {
        const float *R xi = gi + b * 3 * H, *R xh = gh + b * 3 * H, *R hp = h + b * H;
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
/* dgi: input-side gradients [r|z|n]; dgh: hidden-side [r|z|n*r] (what multiplies W_hh). */
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
/* LSTM. c (B, H) previous cell -> cout; act (B, 5H) = [i|f|g|o|tanh(c_t)]. */
void lstm_fwd(I64 B, I64 H, const float* gi, const float* gh, const float* c, float* hout,
              float* cout, float* act) {
    for (I64 b = 0; b < B; b++) {
        const float *R xi = gi + b * 4 * H, *R xh = gh + b * 4 * H, *R cp = c + b * H;
        float *R ho = hout + b * H, *R co = cout + b * H, *R a = act + b * 5 * H;
        #pragma omp simd
        for (I64 j = 0; j < H; j++) {
            float i = sig(xi[j] + xh[j]), f = sig(xi[H + j] + xh[H + j]);
            float g = tnh(xi[2 * H + j] + xh[2 * H + j]), o = sig(xi[3 * H + j] + xh[3 * H + j]);
            float cn = f * cp[j] + i * g, tc = tnh(cn);
            co[j] = cn; ho[j] = o * tc;
            a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = o; a[4 * H + j] = tc;
        }
    }
}
/* dc (B, H): cell gradient reaching c_t (carried), overwritten with the one reaching c_{t-1};
   c: c_{t-1}; dh is left at zero (h_{t-1} is reached only through W_hh). */
void lstm_bwd(I64 B, I64 H, const float* dy, float* dh, float* dc, const float* act, const float* c, float* dG) {
    for (I64 b = 0; b < B; b++) {
        const float *R a = act + b * 5 * H, *R cp = c + b * H, *R y = dy ? dy + b * H : 0;
        float *R d = dh + b * H, *R dcc = dc + b * H, *R G = dG + b * 4 * H;
        #pragma omp simd
        for (I64 j = 0; j < H; j++) {
            float g_h = d[j] + (y ? y[j] : 0.f);
            float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j], tc = a[4 * H + j];
            float dcn = dcc[j] + g_h * o * (1.f - tc * tc);
            G[j] = dcn * g * i * (1.f - i);
            G[H + j] = dcn * cp[j] * f * (1.f - f);
            G[2 * H + j] = dcn * i * (1.f - g * g);
            G[3 * H + j] = g_h * tc * o * (1.f - o);
            dcc[j] = dcn * f;
            d[j] = 0.f;
        }
    }
}
/* Elman RNN: h_t = act(gi + gh) written to hout (also what the backward reads); relu != 0 for ReLU. */
void rnn_fwd(I64 B, I64 H, I64 relu, const float* gi, const float* gh, float* hout) {
    for (I64 b = 0; b < B; b++) {
        const float *R xi = gi + b * H, *R xh = gh + b * H;
        float *R ho = hout + b * H;
        if (relu) {
            #pragma omp simd
            for (I64 j = 0; j < H; j++) { float v = xi[j] + xh[j]; ho[j] = v > 0.f ? v : 0.f; }
        } else {
            #pragma omp simd
            for (I64 j = 0; j < H; j++) ho[j] = tnh(xi[j] + xh[j]);
        }
    }
}
void rnn_bwd(I64 B, I64 H, I64 relu, const float* dy, float* dh, const float* hout, float* dG) {
    for (I64 b = 0; b < B; b++) {
        const float *R ho = hout + b * H, *R y = dy ? dy + b * H : 0;
        float *R d = dh + b * H, *R G = dG + b * H;
        #pragma omp simd
        for (I64 j = 0; j < H; j++) {
            float g = d[j] + (y ? y[j] : 0.f);
            G[j] = relu ? (ho[j] > 0.f ? g : 0.f) : g * (1.f - ho[j] * ho[j]);
            d[j] = 0.f;
        }
    }
}
"""
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_lib = kernels.lazy_library("cpu_train", _SOURCE, [], {
    "gru_fwd": [_I64, _I64] + [_PTR] * 6, "gru_bwd": [_I64, _I64] + [_PTR] * 6,
    "lstm_fwd": [_I64, _I64] + [_PTR] * 6, "lstm_bwd": [_I64, _I64] + [_PTR] * 6,
    "rnn_fwd": [_I64, _I64, _I64] + [_PTR] * 3, "rnn_bwd": [_I64, _I64, _I64] + [_PTR] * 4})


def _row(seq: Optional[Tensor], t: int) -> Optional[int]:
    """Address of step t of an optional (T, B, ...) gradient (None: no gradient came)."""
    return None if seq is None else seq[t].data_ptr()


def _input_side(x: Tensor, w_ih: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], n_add: int) -> Tensor:
    """x W_ih^T + b_ih for all steps, plus the first ``n_add`` entries of b_hh (those that add)."""
    gi = F.linear(x, w_ih, b_ih)
    if b_hh is not None and n_add:
        gi[..., :n_add] += b_hh[:n_add]
    return gi.contiguous()


def _weight_grads(ctx, dG: Tensor, dGh: Tensor, x: Tensor, h0: Tensor, y: Tensor, w_ih: Tensor):
    """Gradients of x, W_ih, W_hh and both biases from the per-step pre-activation gradients:
    dG (T, B, G*H) on the input side, dGh on the hidden side (the same tensor except for GRU)."""
    T, B, I = x.shape
    GH = dG.shape[2]
    H = y.shape[2]
    dG2, dGh2 = dG.view(T * B, GH), dGh.view(T * B, GH)
    dw_hh = dGh[0].t() @ h0
    if T > 1:
        dw_hh = torch.addmm(dw_hh, dGh2[B:].t(), y[:-1].reshape((T - 1) * B, H))
    dw_ih = dG2.t() @ x.reshape(T * B, I)
    dx = (dG2 @ w_ih).view(T, B, I) if ctx.needs_input_grad[0] else None
    db_ih = dG2.sum(0) if ctx.has_bias else None
    db_hh = (dGh2.sum(0) if dGh is not dG else db_ih) if ctx.has_bias else None
    return dx, dw_ih, dw_hh, db_ih, db_hh


class _GRU(torch.autograd.Function):
    """``(x (T, B, I), h0 (B, H), w_ih, w_hh, b_ih, b_hh) -> y (T, B, H)``, the state of every step."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):  # type: ignore[override]
        lib = _lib()
        T, B, _ = x.shape
        H = h0.shape[1]
        gi = _input_side(x, w_ih, b_ih, b_hh, 2 * H)
        b_hn = b_hh[2 * H:].contiguous() if b_hh is not None else x.new_zeros(H)
        w_hh_t = w_hh.t().contiguous()  # (H, 3H): the plain layout multiplies ~15 % faster than a transposed view
        y, act, gh = x.new_empty(T, B, H), x.new_empty(T, B, 4 * H), x.new_empty(B, 3 * H)
        h = h0
        for t in range(T):
            torch.mm(h, w_hh_t, out=gh)
            lib.gru_fwd(B, H, gi[t].data_ptr(), gh.data_ptr(), b_hn.data_ptr(), h.data_ptr(),
                         y[t].data_ptr(), act[t].data_ptr())
            h = y[t]
        ctx.save_for_backward(x, h0, w_ih, w_hh, y, act)
        ctx.has_bias = b_ih is not None
        return y

    @staticmethod
    @once_differentiable  # C kernels: a double backward raises instead of going silently wrong
    def backward(ctx, dy):  # type: ignore[override]
        lib = _lib()
        x, h0, w_ih, w_hh, y, act = ctx.saved_tensors
        T, B, _ = x.shape
        H = h0.shape[1]
        dy = dy.contiguous() if dy is not None else None
        dh = x.new_zeros(B, H)
        dgi, dgh = x.new_empty(T, B, 3 * H), x.new_empty(T, B, 3 * H)
        for t in range(T - 1, -1, -1):
            h = y[t - 1] if t else h0
            lib.gru_bwd(B, H, _row(dy, t), dh.data_ptr(), act[t].data_ptr(),
                         h.data_ptr(), dgi[t].data_ptr(), dgh[t].data_ptr())
            dh.addmm_(dgh[t], w_hh)  # dh_{t-1} = dh_t * z (left by the kernel) + dgh @ W_hh
        dx, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(ctx, dgi, dgh, x, h0, y, w_ih)
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh


class _LSTM(torch.autograd.Function):
    """``(x, h0, c0, w_ih, w_hh, b_ih, b_hh) -> (y (T, B, H), c (T, B, H))``: outputs and cell
    states of every step (the caller picks the final ones, at each sequence's length)."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):  # type: ignore[override]
        lib = _lib()
        T, B, _ = x.shape
        H = h0.shape[1]
        gi = _input_side(x, w_ih, b_ih, b_hh, 4 * H)
        w_hh_t = w_hh.t().contiguous()
        y, cs, act, gh = x.new_empty(T, B, H), x.new_empty(T, B, H), x.new_empty(T, B, 5 * H), x.new_empty(B, 4 * H)
        h, c = h0, c0
        for t in range(T):
            torch.mm(h, w_hh_t, out=gh)
            lib.lstm_fwd(B, H, gi[t].data_ptr(), gh.data_ptr(), c.data_ptr(), y[t].data_ptr(),
                          cs[t].data_ptr(), act[t].data_ptr())
            h, c = y[t], cs[t]
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, y, cs, act)
        ctx.has_bias = b_ih is not None
        return y, cs

    @staticmethod
    @once_differentiable  # C kernels: a double backward raises instead of going silently wrong
    def backward(ctx, dy, dcs):  # type: ignore[override]
        lib = _lib()
        x, h0, c0, w_ih, w_hh, y, cs, act = ctx.saved_tensors
        T, B, _ = x.shape
        H = h0.shape[1]
        dy = dy.contiguous() if dy is not None else None
        dcs = dcs.contiguous() if dcs is not None else None
        dh, dc = x.new_zeros(B, H), x.new_zeros(B, H)
        dG = x.new_empty(T, B, 4 * H)
        for t in range(T - 1, -1, -1):
            if dcs is not None:
                dc += dcs[t]
            c = cs[t - 1] if t else c0
            lib.lstm_bwd(B, H, _row(dy, t), dh.data_ptr(), dc.data_ptr(),
                          act[t].data_ptr(), c.data_ptr(), dG[t].data_ptr())
            dh.addmm_(dG[t], w_hh)
        dx, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(ctx, dG, dG, x, h0, y, w_ih)
        return dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh


class _RNN(torch.autograd.Function):
    """``(x, h0, w_ih, w_hh, b_ih, b_hh, relu) -> y (T, B, H)``, the state of every step."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, relu):  # type: ignore[override]
        lib = _lib()
        T, B, _ = x.shape
        H = h0.shape[1]
        gi = _input_side(x, w_ih, b_ih, b_hh, H)
        w_hh_t = w_hh.t().contiguous()
        y, gh = x.new_empty(T, B, H), x.new_empty(B, H)
        h = h0
        for t in range(T):
            torch.mm(h, w_hh_t, out=gh)
            lib.rnn_fwd(B, H, relu, gi[t].data_ptr(), gh.data_ptr(), y[t].data_ptr())
            h = y[t]
        ctx.save_for_backward(x, h0, w_ih, w_hh, y)
        ctx.has_bias, ctx.relu = b_ih is not None, relu
        return y

    @staticmethod
    @once_differentiable  # C kernels: a double backward raises instead of going silently wrong
    def backward(ctx, dy):  # type: ignore[override]
        lib = _lib()
        x, h0, w_ih, w_hh, y = ctx.saved_tensors
        T, B, _ = x.shape
        H = h0.shape[1]
        dy = dy.contiguous() if dy is not None else None
        dh = x.new_zeros(B, H)
        dG = x.new_empty(T, B, H)
        for t in range(T - 1, -1, -1):
            lib.rnn_bwd(B, H, ctx.relu, _row(dy, t), dh.data_ptr(),
                         y[t].data_ptr(), dG[t].data_ptr())
            dh.addmm_(dG[t], w_hh)
        dx, dw_ih, dw_hh, db_ih, db_hh = _weight_grads(ctx, dG, dG, x, h0, y, w_ih)
        return dx, dh, dw_ih, dw_hh, db_ih, db_hh, None


def _f32_cpu(t: Tensor) -> bool:
    return isinstance(t, Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"


def fast_train_ok(layer: nn.RNNBase, x: Tensor, hx, lengths: Optional[Tensor] = None) -> bool:
    """True where this path applies: training (autograd on) on a CPU in float32, no tracing or
    autocast, the kernels built, ``layer.fast_train`` not False; a GRU or RNN always, an LSTM
    (without projection) only with lengths: without them oneDNN's fused LSTM is faster, with them
    torch falls back to a packed-sequence loop that is several times slower than this path."""
    states = () if hx is None else (hx if isinstance(hx, tuple) else (hx,))
    cell_ok = isinstance(layer, (nn.GRU, nn.RNN)) or (
        isinstance(layer, nn.LSTM) and lengths is not None and not layer.proj_size)
    return (cell_ok and getattr(layer, "fast_train", True) and torch.is_grad_enabled()
            and _f32_cpu(x) and x.numel() > 0 and _f32_cpu(layer.weight_hh_l0) and all(_f32_cpu(h) for h in states)
            and (x.requires_grad or any(p.requires_grad for p in layer.parameters()))
            and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.is_autocast_enabled("cpu") and _lib() is not None)


def _direction(layer: nn.RNNBase, src: Tensor, state: tuple[Tensor, ...], w: list, relu: int):
    """One layer-direction over src (T, B, I) -> (outputs (T, B, H), per-step states to pick the final ones from)."""
    if isinstance(layer, nn.LSTM):
        out, cs = _LSTM.apply(src, state[0].contiguous(), state[1].contiguous(), *w)
        return out, (out, cs)
    if isinstance(layer, nn.GRU):
        out = _GRU.apply(src, state[0].contiguous(), *w)
    else:
        out = _RNN.apply(src, state[0].contiguous(), *w, relu)
    return out, (out,)


def forward(layer: nn.RNNBase, x: Tensor, hx, lengths: Optional[Tensor] = None):
    """``torch.nn.GRU/RNN/LSTM.forward`` semantics for a batched x ((B, T, I) if batch_first else
    (T, B, I)) and hx (L*D, B, H) (LSTM: a pair) or None, on this path. With ``lengths`` (B,) the
    result equals torch's packed-sequence run: outputs are zero past each length and the final
    state is each sequence's state at its last real step. The recurrence runs over the padding
    too (it comes after the real steps, so it cannot change them): cheap for length-bucketed batches."""
    xt = x.transpose(0, 1) if layer.batch_first else x  # (T, B, I)
    D, H, (T, B) = 2 if layer.bidirectional else 1, layer.hidden_size, xt.shape[:2]
    relu = int(getattr(layer, "nonlinearity", "tanh") == "relu")
    lstm = isinstance(layer, nn.LSTM)
    if hx is None:
        zeros = xt.new_zeros(layer.num_layers * D, B, H)
        hx = (zeros, zeros) if lstm else zeros
    hx = hx if isinstance(hx, tuple) else (hx,)
    mask, last = None, (torch.full((B,), T - 1), torch.arange(B))
    if lengths is not None:
        lengths = lengths.to(torch.long)
        mask = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(2).to(xt.dtype)  # (T, B, 1)
        last = (lengths - 1, torch.arange(B))
    inp, finals = xt.contiguous(), []
    for k in range(layer.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{k}{'_reverse' if d else ''}"
            w = [getattr(layer, n + sfx, None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            src = inp if d == 0 else reverse_padded(inp, lengths).contiguous()  # reverse within each length
            out, seqs = _direction(layer, src, tuple(h[k * D + d] for h in hx), w, relu)
            finals.append([s[last] for s in seqs])
            outs.append(out if d == 0 else reverse_padded(out, lengths))
        inp = torch.cat(outs, dim=2) if D > 1 else outs[0]
        if mask is not None:
            inp = inp * mask
        if layer.dropout and layer.training and k < layer.num_layers - 1:
            inp = F.dropout(inp, layer.dropout, training=True)
    y = inp.transpose(0, 1) if layer.batch_first else inp
    states = tuple(torch.stack([f[i] for f in finals]) for i in range(len(finals[0])))
    return y, (states if lstm else states[0])
