"""Lean streaming inference for LSTM layers: one step in one C call, fp32/bf16/int8 weights.

At batch 1 a step is a matrix-vector product over all weights plus a few pointwise ops.
Eager torch spends most of that step in dispatch (``torch.nn.LSTM`` per step ~135-250 us,
``torch.nn.LSTMCell`` ~33 us at H=256 here); the fp32 floor is reading the weights once.
``StreamingLSTM`` packs ``[W_ih | W_hh]`` per layer once, keeps its state in place and runs
a step (matvec + gates, every layer) in C through ``ctypes``: no autograd, no dispatch.
Smaller weights read faster: ``weights="bf16"`` (bf16 weights, fp32 maths) or ``"int8"``
(weight-only int8 with one fp32 scale per output row, fp32 activations and state).
Without a C compiler it falls back to the same maths in torch ops.

    s = StreamingLSTM(layer, weights="int8")   # layer: rnnkit.nn.LSTM / torch.nn.LSTM
    for x_t in stream:                          # x_t: (batch, input_size)
        y_t = s.step(x_t)                       # (batch, hidden_size); state kept in s.state

On choosing how to compile the generic runner for custom cells (measured: eager runner
with the input projection hoisted), see ``docs/decisions.md``.
"""
from __future__ import annotations

import ctypes
import weakref
from typing import Optional

import torch
from torch import Tensor, nn

from rnnkit.nn import kernels

WEIGHTS = ("fp32", "bf16", "int8")

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
typedef int64_t I64;
static inline float sig(float x) { float e = expf(-fabsf(x)), s = 1.f / (1.f + e); return x >= 0 ? s : e * s; }
static inline float tnh(float x) { return 2.f * sig(2.f * x) - 1.f; }
/* out = b + W v with W stored transposed (K, R): out += W^T[k, :] * v[k] for each k. The inner
   loop runs over R independent outputs (no reduction chain, out stays in L1) and streams the
   weights once. Weights are fp32, bf16 (upper half of an fp32) or int8 times a per-row scale. */
#define LOADW(w, i) (wt == 0 ? ((const float*)(w))[i] : wt == 1 ? bf2f(((const uint16_t*)(w))[i]) \
                                   : (float)((const int8_t*)(w))[i])
static inline float bf2f(uint16_t h) { uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f; }
static inline const void* row(I64 wt, const void* W, I64 k, I64 R) {
    return wt == 0 ? (const void*)((const float*)W + k * R)
         : wt == 1 ? (const void*)((const uint16_t*)W + k * R) : (const void*)((const int8_t*)W + k * R);
}
/* Four weight rows per pass: out is loaded and stored once per 4 multiply-adds. */
#define GEMV_BODY(WT)                                                                          \
    { const I64 wt = WT; I64 k = 0;                                                           \
      for (; k + 4 <= K; k += 4) {                                                            \
          const void *w0 = row(wt, W, k, R), *w1 = row(wt, W, k + 1, R);                      \
          const void *w2 = row(wt, W, k + 2, R), *w3 = row(wt, W, k + 3, R);                  \
          float v0 = v[k], v1 = v[k + 1], v2 = v[k + 2], v3 = v[k + 3];                       \
          _Pragma("omp simd")                                                                 \
          for (I64 r = 0; r < R; r++)                                                         \
              out[r] += LOADW(w0, r) * v0 + LOADW(w1, r) * v1 + LOADW(w2, r) * v2 + LOADW(w3, r) * v3; \
      }                                                                                       \
      for (; k < K; k++) {                                                                    \
          const void* w0 = row(wt, W, k, R); float v0 = v[k];                                 \
          _Pragma("omp simd")                                                                 \
          for (I64 r = 0; r < R; r++) out[r] += LOADW(w0, r) * v0;                            \
      } }
static void gemv(I64 wt, I64 R, I64 K, const void* W, const float* restrict sc,
                 const float* restrict v, const float* restrict b, float* restrict out) {
    for (I64 r = 0; r < R; r++) out[r] = 0.f;
    if (wt == 0) GEMV_BODY(0) else if (wt == 1) GEMV_BODY(1) else GEMV_BODY(2)
    #pragma omp simd
    for (I64 r = 0; r < R; r++) out[r] = out[r] * sc[r] + b[r];
}
/* One LSTM layer step for B rows: xh = [x_b; h_b], gates i,f,g,o -> c_out, h_out (may be the
   same memory as h_in, c_in: each element is read before it is written); y_b = h_b if y. */
void lstm_step(I64 wt, I64 B, I64 I, I64 H, const void* W, const float* sc, const float* b,
               const float* x, const float* h_in, const float* c_in, float* h_out, float* c_out,
               float* xh, float* g, float* y) {
    I64 K = I + H;
    for (I64 n = 0; n < B; n++) {
        const float* cn = c_in + n * H; float* co = c_out + n * H; float* ho = h_out + n * H;
        memcpy(xh, x + n * I, I * sizeof(float));
        memcpy(xh + I, h_in + n * H, H * sizeof(float));
        gemv(wt, 4 * H, K, W, sc, xh, b, g);
        #pragma omp simd
        for (I64 j = 0; j < H; j++) {
            float cj = sig(g[H + j]) * cn[j] + sig(g[j]) * tnh(g[2 * H + j]);
            co[j] = cj;
            ho[j] = sig(g[3 * H + j]) * tnh(cj);
        }
        if (y) memcpy(y + n * H, ho, H * sizeof(float));
    }
}
"""
_lib = kernels.lazy_library("stream", _SOURCE, ["-mprefer-vector-width=512"],
                             {"lstm_step": [ctypes.c_int64] * 4 + [ctypes.c_void_p] * 11})


def pack_weights(w: Tensor, weights: str) -> tuple[Tensor, Tensor]:
    """Row-major weights in the storage of ``weights`` and per-row scales (ones unless int8)."""
    w = w.detach().float().contiguous()
    if weights == "fp32":
        return w, torch.ones(w.shape[0])
    if weights == "bf16":
        return w.to(torch.bfloat16).contiguous(), torch.ones(w.shape[0])
    if weights == "int8":
        # symmetric per-output-row scale: each gate unit keeps its own range
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
        return torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous(), scale.contiguous()
    raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")


def dequantize(packed: Tensor, scale: Tensor) -> Tensor:
    return packed.float() * scale[:, None] if packed.dtype == torch.int8 else packed.float()


class StreamingLSTM:
    """Stateful step-by-step inference of a unidirectional ``torch.nn.LSTM`` (rnnkit's included).

    ``step(x_t: (batch, input_size)) -> (batch, hidden_size)``; ``state`` is ``(h, c)`` of
    shape (num_layers, batch, hidden_size), as ``LSTM.step`` uses. Not differentiable.
    """

    def __init__(self, layer: nn.LSTM, weights: str = "fp32", use_kernel: bool = True):
        if not isinstance(layer, nn.LSTM):
            raise ValueError(f"StreamingLSTM needs an LSTM layer, got {type(layer).__name__}")
        if layer.bidirectional or layer.proj_size:
            raise ValueError("StreamingLSTM needs a unidirectional LSTM without proj_size")
        self.weights, self.hidden_size, self.num_layers = weights, layer.hidden_size, layer.num_layers
        self.input_size = layer.input_size
        self._packed: list[tuple[Tensor, Tensor, Tensor]] = []
        for k in range(layer.num_layers):
            w = torch.cat([getattr(layer, f"weight_ih_l{k}"), getattr(layer, f"weight_hh_l{k}")], dim=1)
            b = torch.zeros(w.shape[0])
            if layer.bias:
                b = (getattr(layer, f"bias_ih_l{k}") + getattr(layer, f"bias_hh_l{k}")).detach().float()
            packed, scale = pack_weights(w, weights)
            self._packed.append((packed.t().contiguous(), scale, b.contiguous()))  # (K, 4H): see gemv
        self._lib = _lib() if use_kernel else None
        self.reset(1)

    @property
    def uses_kernel(self) -> bool:
        return self._lib is not None

    def reset(self, batch: int = 1) -> None:
        """Zero state for ``batch`` streams."""
        H, L = self.hidden_size, self.num_layers
        self.h, self.c = torch.zeros(L, batch, H), torch.zeros(L, batch, H)
        self._xh = torch.empty(max(self.input_size, H) + H)
        self._g = torch.empty(4 * H)
        wt = WEIGHTS.index(self.weights)
        self._args = []
        for k, (w, sc, b) in enumerate(self._packed):
            size = self.input_size if k == 0 else H
            pre = (wt, batch, size, H, w.data_ptr(), sc.data_ptr(), b.data_ptr())
            h, c = self.h[k].data_ptr(), self.c[k].data_ptr()
            post = (h, c, h, c, self._xh.data_ptr(), self._g.data_ptr())  # state updated in place
            self._args.append((pre, post))

    @property
    def state(self) -> tuple[Tensor, Tensor]:
        return self.h.clone(), self.c.clone()

    @state.setter
    def state(self, hc: tuple[Tensor, Tensor]) -> None:
        h, c = hc
        self.reset(h.shape[1])
        self.h.copy_(h)
        self.c.copy_(c)

    def step(self, x: Tensor) -> Tensor:
        """x: (batch, input_size) float32 -> y: (batch, hidden_size), a new tensor."""
        B = self.h.shape[1]
        if x.dim() != 2 or x.shape != (B, self.input_size):
            raise ValueError(f"StreamingLSTM.step expects x of shape ({B}, {self.input_size}), got {tuple(x.shape)}")
        if self._lib is None:
            return self._step_torch(x)
        x = x.detach().float().contiguous()
        fn = self._lib.lstm_step
        for pre, post in self._args:  # pointers resolved once in reset(): ~1 us per step saved each
            y = torch.empty(B, self.hidden_size)
            fn(*pre, x.data_ptr(), *post, y.data_ptr())
            x = y
        return x

    @torch.inference_mode()
    def _step_torch(self, x: Tensor) -> Tensor:
        x = x.float()
        for k, (w, sc, b) in enumerate(self._packed):
            gates = torch.addmm(b, torch.cat([x, self.h[k]], dim=1), dequantize(w.t(), sc).t())
            i, f, g, o = gates.chunk(4, dim=1)
            self.c[k] = torch.sigmoid(f) * self.c[k] + torch.sigmoid(i) * torch.tanh(g)
            self.h[k] = torch.sigmoid(o) * torch.tanh(self.c[k])
            x = self.h[k].clone()
        return x


_LEAN: "weakref.WeakKeyDictionary[nn.LSTM, tuple[tuple, StreamingLSTM]]" = weakref.WeakKeyDictionary()


def lean_lstm_step(layer: nn.LSTM, x: Tensor, state: tuple[Tensor, Tensor]) -> Optional[tuple[Tensor, tuple[Tensor, Tensor]]]:
    """Functional fast path for ``LSTM.step`` outside autograd: ``(y_t, (h, c))`` or None.

    None when it does not apply (autograd would record, not CPU fp32, projection,
    bidirectional, dropout in training, no kernel). The packed weights are cached per layer
    and rebuilt when any parameter changes (its storage or in-place version counter), so an
    optimizer step between calls is seen. x: (B, I); h, c: (num_layers, B, H). The state is
    read from ``state`` and written to new tensors (no copies in or out); y_t is a view of h.
    """
    params = list(layer.parameters())
    if (torch.is_grad_enabled() and any(p.requires_grad for p in params)) or x.requires_grad \
            or layer.bidirectional or layer.proj_size or (layer.training and layer.dropout) \
            or x.dtype != torch.float32 or x.device.type != "cpu" or any(p.dtype != torch.float32 for p in params):
        return None
    key = tuple((p.data_ptr(), p._version) for p in params)
    cached = _LEAN.get(layer)
    if cached is None or cached[0] != key:
        s = StreamingLSTM(layer)
        if not s.uses_kernel:
            return None
        cached = (key, s)
        _LEAN[layer] = cached
    s = cached[1]
    h, c = (t.detach().float().contiguous() for t in state)
    if h.shape != (s.num_layers, x.shape[0], s.hidden_size) or c.shape != h.shape:
        return None
    h_new, c_new = torch.empty_like(h), torch.empty_like(c)
    inp = x.detach().contiguous()
    wt, fn, H = WEIGHTS.index(s.weights), s._lib.lstm_step, s.hidden_size
    for k, (w, sc, b) in enumerate(s._packed):
        fn(wt, x.shape[0], inp.shape[1], H, w.data_ptr(), sc.data_ptr(), b.data_ptr(), inp.data_ptr(),
           h[k].data_ptr(), c[k].data_ptr(), h_new[k].data_ptr(), c_new[k].data_ptr(),
           s._xh.data_ptr(), s._g.data_ptr(), None)
        inp = h_new[k]
    return h_new[-1], (h_new, c_new)
