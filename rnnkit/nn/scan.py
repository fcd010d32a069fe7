"""minGRU and minLSTM ("Were RNNs all we needed?", Feng et al. 2024): parallel-scan cells.

Their gates read only the input, so the recurrence is linear in the state:
``h_t = a_t * h_{t-1} + b_t`` with, per step (``k = Linear(x_t)``, split into gate blocks):

* minGRU:  ``z = sigmoid(k_z)``, ``h~ = g(k_h)``;  ``a = 1 - z``, ``b = z * h~``
* minLSTM: ``f = sigmoid(k_f)``, ``i = sigmoid(k_i)``, ``h~ = g(k_h)``;
  ``a = f / (f + i)``, ``b = i / (f + i) * h~`` (computed as ``sigmoid(-+d)``, ``d = log(i/f)``)

where ``g(x) = x + 0.5`` for ``x >= 0`` else ``sigmoid(x)`` keeps ``h~`` positive. Training
runs one input-projection matmul for all steps plus a scan over time; inference runs the
same maths one step at a time (``step``). Scan implementations (``scan=``):

* ``"fused"``: one C pass forward, one backward (``rnnkit.nn.kernels``); fastest on CPU.
* ``"log"``: the paper's log-space scan (cumsum + logcumsumexp; lucidrains/minGRU-pytorch);
  it never overflows, but loses relative precision as ``sum log a`` grows with T.
* ``"chunked"``: linear space, sequential inside chunks of ``chunk`` steps vectorised over
  all chunks, then a carry across chunks; exact, plain torch ops (autograd), any device.
* ``"sequential"``: a Python loop over steps: the reference.
* ``"script"``: the same loop in TorchScript; ONNX export turns it into a Loop over a dynamic T.
* ``"auto"``: fused where the kernels build (CPU, fp32/fp64), else log on GPU, chunked on CPU.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import kernels
from rnnkit.nn.layers import SequenceLayer
from rnnkit.nn.runner import reverse_padded

SCANS = ("auto", "fused", "log", "chunked", "sequential", "script")


# --------------------------------------------------------------------------- gate maths
def g(x: Tensor) -> Tensor:
    """``x + 0.5`` for x >= 0 else ``sigmoid(x)``: positive and continuous."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """``log(g(x))`` computed stably (``-softplus(-x)`` on the sigmoid branch)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def _split(kind: str, k: Tensor) -> list[Tensor]:
    return list(k.chunk(kernels.KINDS[kind], dim=-1))


def coeffs(kind: str, k: Tensor) -> tuple[Tensor, Tensor]:
    """Linear-space ``(a, b)`` of ``h_t = a_t h_{t-1} + b_t`` from pre-activations k (..., G*H)."""
    if kind == "mingru":
        kz, kh = _split(kind, k)
        z = torch.sigmoid(kz)
        return 1 - z, z * g(kh)
    kf, ki, kh = _split(kind, k)
    d = F.softplus(-kf) - F.softplus(-ki)  # log(i / f)
    return torch.sigmoid(-d), torch.sigmoid(d) * g(kh)


def log_coeffs(kind: str, k: Tensor) -> tuple[Tensor, Tensor]:
    """``(log a, log b)``; b > 0 always since g > 0."""
    if kind == "mingru":
        kz, kh = _split(kind, k)
        return -F.softplus(kz), -F.softplus(-kz) + log_g(kh)
    kf, ki, kh = _split(kind, k)
    d = F.softplus(-kf) - F.softplus(-ki)
    return -F.softplus(d), -F.softplus(-d) + log_g(kh)


# --------------------------------------------------------------------------- scans
# All scans: k (B, T, G*H), h0 (B, H) -> h (B, T, H) for every step.
def scan_sequential(kind: str, k: Tensor, h0: Tensor) -> Tensor:
    a, b = coeffs(kind, k)
    h, outs = h0, []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        h = a_t * h + b_t
        outs.append(h)
    return torch.stack(outs, dim=1)


_SCRIPTED = None


def _recurrence(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    h = h0
    outs: list[Tensor] = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        outs.append(h)
    return torch.stack(outs, 1)


def scan_script(kind: str, k: Tensor, h0: Tensor) -> Tensor:
    """The sequential loop compiled by TorchScript (scripted on first use): exportable."""
    global _SCRIPTED
    if _SCRIPTED is None:
        with warnings.catch_warnings():  # torch 2.13 marks TorchScript deprecated; its Loop export still works
            warnings.simplefilter("ignore", DeprecationWarning)
            _SCRIPTED = torch.jit.script(_recurrence)
    a, b = coeffs(kind, k)
    return _SCRIPTED(a, b, h0)


def scan_log(kind: str, k: Tensor, h0: Tensor) -> Tensor:
    """Heinsen's log-space scan: ``h_t = A_t h0 + sum_s A_t/A_s b_s`` with ``log A = cumsum log a``.

    The sum is ``exp(log A_t + logcumsumexp(log b_s - log A_s))``; the ``h0`` term is kept
    separate (linear) so that h0 may be negative, unlike the log-only textbook version.
    """
    log_a, log_b = log_coeffs(kind, k)
    a_star = log_a.cumsum(dim=1)
    h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=1))
    return h + torch.exp(a_star) * h0.unsqueeze(1)


def scan_chunked(kind: str, k: Tensor, h0: Tensor, chunk: int = 32) -> Tensor:
    """Linear-space chunked scan: exact (no division by decaying products), plain torch ops.

    Pass 1 runs the recurrence from 0 inside every chunk at once (``chunk`` vectorised
    steps over ``T/chunk`` chunks) and tracks the running product of ``a``; pass 2 carries
    the state across chunks (``T/chunk`` steps); the result is ``local + prod_a * carry``.
    """
    a, b = coeffs(kind, k)
    B, T, H = a.shape
    n = math.ceil(T / chunk)
    pad = n * chunk - T
    if pad:  # a=1, b=0 leaves the state unchanged on padded steps
        a = torch.cat([a, a.new_ones(B, pad, H)], dim=1)
        b = torch.cat([b, b.new_zeros(B, pad, H)], dim=1)
    # unbind, not a[:, :, t]: the backward of each indexing would allocate a full-size grad
    a_t, b_t = a.view(B, n, chunk, H).unbind(2), b.view(B, n, chunk, H).unbind(2)
    loc, prod, locs, prods = b_t[0], a_t[0], [b_t[0]], [a_t[0]]
    for t in range(1, chunk):
        loc = torch.addcmul(b_t[t], a_t[t], loc)
        prod = prod * a_t[t]
        locs.append(loc)
        prods.append(prod)
    carry, carries = h0, []
    for last_loc, last_prod in zip(loc.unbind(1), prod.unbind(1)):  # state entering each chunk
        carries.append(carry)
        carry = torch.addcmul(last_loc, last_prod, carry)
    local, cum = torch.stack(locs, dim=2), torch.stack(prods, dim=2)  # (B, n, chunk, H)
    h = torch.addcmul(local, cum, torch.stack(carries, dim=1).unsqueeze(2))
    return h.reshape(B, n * chunk, H)[:, :T]


class _FusedScan(torch.autograd.Function):
    """Forward and backward in one pass each through the C kernels; the bias is added and
    its gradient summed inside them."""

    @staticmethod
    def forward(ctx, k: Tensor, bias: Optional[Tensor], h0: Tensor, kind: str) -> Tensor:  # type: ignore[override]
        out = kernels.scan_forward(kind, k, h0, bias)
        ctx.kind, ctx.has_bias = kind, bias is not None
        ctx.save_for_backward(k, bias if bias is not None else k.new_empty(0), h0, out)
        return out

    @staticmethod
    def backward(ctx, gout: Tensor):  # type: ignore[override]
        k, bias, h0, out = ctx.saved_tensors
        bias = bias if ctx.has_bias else None
        gk, gb, gh0 = kernels.scan_backward(ctx.kind, k, h0, out, gout, bias)
        return gk, (gb.to(bias.dtype) if bias is not None else None), gh0, None


def scan_fused(kind: str, k: Tensor, h0: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """The C-kernel scan of ``k + bias`` (bias: (G*H,) or None)."""
    if k.stride(-1) != 1:
        k = k.contiguous()
    return _FusedScan.apply(k, bias, h0.to(kernels.state_dtype(k)), kind)


def scan(kind: str, k: Tensor, h0: Tensor, method: str = "auto") -> Tensor:
    """Run the linear recurrence of ``kind`` over k (B, T, G*H) from h0 (B, H) -> (B, T, H)."""
    if torch.jit.is_tracing():  # ONNX export / tracing: the C kernel is opaque to the tracer
        method = "script"
    if method == "auto":
        if kernels.supports(k):
            method = "fused"
        else:
            method = "log" if k.device.type != "cpu" else "chunked"
    if method == "fused":
        if not kernels.supports(k):
            raise RuntimeError("scan='fused' needs the compiled kernels (a C compiler) and a CPU fp32/fp64 tensor")
        return scan_fused(kind, k, h0)
    fn = {"log": scan_log, "chunked": scan_chunked, "sequential": scan_sequential, "script": scan_script}.get(method)
    if fn is None:
        raise ValueError(f"scan must be one of {', '.join(SCANS)}, got {method!r}")
    return fn(kind, k, h0)


# --------------------------------------------------------------------------- layer
class _MinLayer(SequenceLayer):
    """Stacked, optionally bidirectional minGRU/minLSTM with the rnnkit layer interface.

    Parameters per layer and direction: ``weight_ih_l{k}[_reverse]`` (G*H, in) and
    ``bias_ih_l{k}[_reverse]`` (G*H,), gate blocks in the order of the class docstring.
    Input ``(batch, time, input_size)`` if batch_first; output ``(batch, time, D*H)``;
    state ``(num_layers * D, batch, H)``.
    """

    kind: str

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 return_sequences: bool = True, return_state: bool = True, go_backwards: bool = False,
                 scan: str = "auto"):
        super().__init__()
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {', '.join(SCANS)}, got {scan!r}")
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1, got {hidden_size}, {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout, self.bidirectional, self.bias = batch_first, dropout, bidirectional, bias
        self.scan = scan
        self._init_api(return_sequences, return_state, go_backwards)
        G = kernels.KINDS[self.kind]
        for layer in range(num_layers):
            size = input_size if layer == 0 else hidden_size * self.directions
            for d in range(self.directions):
                lin = nn.Linear(size, G * hidden_size, bias=bias)  # torch.nn.Linear init, as the paper
                sfx = f"_l{layer}{'_reverse' if d else ''}"
                setattr(self, "weight_ih" + sfx, lin.weight)
                setattr(self, "bias_ih" + sfx, lin.bias)

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def _params(self, layer: int, d: int) -> tuple[Tensor, Optional[Tensor]]:
        sfx = f"_l{layer}{'_reverse' if d else ''}"
        return getattr(self, "weight_ih" + sfx), getattr(self, "bias_ih" + sfx)

    def _run(self, x: Tensor, hx, lengths: Optional[Tensor]):
        xb = x if self.batch_first else x.transpose(0, 1)  # (B, T, I) view
        B, T = xb.shape[0], xb.shape[1]
        h0 = hx if hx is not None else xb.new_zeros(self.num_layers * self.directions, B, self.hidden_size)
        mask = None
        if lengths is not None:
            mask = (torch.arange(T, device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)).unsqueeze(-1)
        inp, finals = xb, []
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.directions):
                idx = layer * self.directions + d
                w, b = self._params(layer, d)
                k = F.linear(inp, w)  # one matmul for all steps; the bias goes in below
                fused = self.scan in ("auto", "fused") and kernels.supports(k) and not torch.jit.is_tracing()
                if not fused:
                    k = k if b is None else k + b
                    if k.dtype in (torch.bfloat16, torch.float16):
                        k = k.float()  # autocast: bf16 matmul, fp32 scan (the fused kernel reads bf16 itself)
                if d == 1:  # read each sequence backwards from its last real step
                    k = reverse_padded(k.transpose(0, 1), lengths).transpose(0, 1)
                if fused:
                    h = scan_fused(self.kind, k, h0[idx], b)
                else:
                    h = scan(self.kind, k, h0[idx], self.scan)
                if lengths is None:
                    finals.append(h[:, -1])
                else:
                    finals.append(h[torch.arange(B, device=h.device), lengths.to(h.device) - 1])
                if d == 1:
                    h = reverse_padded(h.transpose(0, 1), lengths).transpose(0, 1)
                if mask is not None:
                    h = h * mask  # zero outputs on padding, like the other layers
                outs.append(h)
            inp = torch.cat(outs, dim=-1) if self.directions > 1 else outs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, training=True)
        y = inp if self.batch_first else inp.transpose(0, 1)
        return y, torch.stack(finals)

    def _cell_steps(self):
        """Per layer: ``(x_t (B, in), (h (B, H),)) -> (h', (h',))``, the scan's maths for one step."""
        steps = []
        for layer in range(self.num_layers):
            w, b = self._params(layer, 0)

            def step(x, s, w=w, b=b):
                a, bb = coeffs(self.kind, F.linear(x, w, b))
                h = torch.addcmul(bb, a, s[0])
                return h, (h,)

            steps.append(step)
        return steps

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, batch_first={self.batch_first}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s + f", scan={self.scan!r}"


class MinGRU(_MinLayer):
    """minGRU layer: ``h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t + b_h)``, ``z_t = sigmoid(W_z x_t + b_z)``.

    Same constructor and call as ``rnnkit.nn.GRU`` (plus ``scan=``); gate blocks ``[z | h~]``.
    """

    kind = "mingru"


class MinLSTM(_MinLayer):
    """minLSTM layer: ``h_t = f'_t h_{t-1} + i'_t g(W_h x_t + b_h)`` with ``f' = f/(f+i)``, ``i' = i/(f+i)``.

    Same constructor and call as ``rnnkit.nn.GRU`` (plus ``scan=``); gate blocks ``[f | i | h~]``.
    """

    kind = "minlstm"
