"""Small C kernels for the sequential parts that torch has no fused op for.

The time loop of a minGRU/minLSTM scan is memory-bound: per element it reads the gate
pre-activations once and writes the state once. In plain torch ops every gate formula is
its own pass over the whole (batch, time, hidden) tensor, and a per-step Python loop pays
~5 us of dispatch per op. These kernels do the whole forward (gates + recurrence) in one
pass and the whole backward (carried gradient + gate derivatives) in one reverse pass.

They are plain C (no torch headers), so building takes about a second with the system C
compiler, and they are called through ``ctypes`` on tensor data pointers. ctypes releases
the GIL, so the batch is split over Python threads when torch may use several threads.
Built once per source/compiler-flags/CPU into ``$RNNKIT_CACHE`` (default
``~/.cache/rnnkit``) with an atomic rename, so parallel test workers do not race.
If there is no C compiler (or ``RNNKIT_NO_KERNELS=1``), ``available()`` is False and
callers fall back to pure-torch code with the same maths.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

# One macro body instantiated for float and double. Gates are stored side by side in the
# last dimension of ``k`` ([z | h~] for minGRU, [f | i | h~] for minLSTM); ``sb``/``st``
# are the element strides of batch and time, so batch-first and time-major inputs both
# work without a copy. ``out``/``gout``/``gk`` are contiguous (batch, time, ...).
_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
typedef int64_t I64;
typedef REAL T;
/* K: storage of the gate pre-activations k and their gradient; bf16 (KREAL=uint16_t) under
   autocast, loaded to / stored from fp32 registers (round to nearest even). */
#ifndef KREAL
#define KREAL REAL
#define KL(v) (v)
#define KS(v) (v)
#else
static inline float KL(uint16_t h) { uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }
static inline uint16_t KS(float f) {
    uint32_t b; memcpy(&b, &f, 4); b += 0x7FFFu + ((b >> 16) & 1u); return (uint16_t)(b >> 16); }
#endif
typedef KREAL K;
#define R restrict
/* exp of -|x| only: never overflows, so -ffast-math (no inf) is safe */
static inline T sig(T x) { T e = EXP(-FABS(x)), s = (T)1 / ((T)1 + e); return x >= 0 ? s : e * s; }
static inline T sp(T x) { return FMAX(x, (T)0) + LOG1P(EXP(-FABS(x))); }  /* softplus */
/* g(x) = x + 0.5 for x >= 0 else sigmoid(x) (positive, continuous); dg its derivative.
   Both branches are computed so that the loops vectorise. */
static inline T gfun(T x, T* dg) {
    T s = sig(x);
    *dg = x >= 0 ? (T)1 : s * (1 - s);
    return x >= 0 ? x + (T)0.5 : s;
}
static void gru_row(I64 H, const K* R kz, const K* R kh, const T* R hp, T* R o) {
    #pragma omp simd
    for (I64 j = 0; j < H; j++) {
        T z = sig(KL(kz[j])), dg, ht = gfun(KL(kh[j]), &dg);
        o[j] = hp[j] + z * (ht - hp[j]);
    }
}
static void gru_row_bwd(I64 H, const K* R kz, const K* R kh, const T* R hp, const T* R go,
                        K* R gz, K* R gh, T* R carry) {
    #pragma omp simd
    for (I64 j = 0; j < H; j++) {
        T z = sig(KL(kz[j])), dg, ht = gfun(KL(kh[j]), &dg);
        T g = go[j] + carry[j];
        gz[j] = KS(g * (ht - hp[j]) * z * (1 - z));
        gh[j] = KS(g * z * dg);
        carry[j] = g * (1 - z);
    }
}
/* minLSTM: d = softplus(-kf) - softplus(-ki) = log(i/f); a = f/(f+i) = sig(-d), b = sig(d) */
static void lstm_row(I64 H, const K* R kf, const K* R ki, const K* R kh, const T* R hp, T* R o) {
    #pragma omp simd
    for (I64 j = 0; j < H; j++) {
        T d = sp(-KL(kf[j])) - sp(-KL(ki[j])), dg, ht = gfun(KL(kh[j]), &dg);
        o[j] = sig(-d) * hp[j] + sig(d) * ht;
    }
}
static void lstm_row_bwd(I64 H, const K* R kf, const K* R ki, const K* R kh, const T* R hp,
                         const T* R go, K* R gf, K* R gi, K* R gh, T* R carry) {
    #pragma omp simd
    for (I64 j = 0; j < H; j++) {
        T d = sp(-KL(kf[j])) - sp(-KL(ki[j]));
        T a = sig(-d), b = sig(d), dg, ht = gfun(KL(kh[j]), &dg);
        T g = go[j] + carry[j];
        T gd = g * (ht - hp[j]) * a * b;
        gf[j] = KS(-gd * (1 - sig(KL(kf[j]))));
        gi[j] = KS(gd * (1 - sig(KL(ki[j]))));
        gh[j] = KS(g * b * dg);
        carry[j] = g * a;
    }
}
/* k: gate blocks side by side in the last dim, element strides sb (batch), st (time);
   h0 (B, H), out/gout (B, T, H) and gk (B, T, G*H) contiguous. Batches [b0, b1). */
void mingru_fwd(I64 b0, I64 b1, I64 n, I64 H, const K* k, I64 sb, I64 st, const T* h0, T* out) {
    for (I64 b = b0; b < b1; b++) {
        const T* hp = h0 + b * H;
        for (I64 t = 0; t < n; t++) {
            const K* kz = k + b * sb + t * st;
            T* o = out + (b * n + t) * H;
            gru_row(H, kz, kz + H, hp, o);
            hp = o;
        }
    }
}
void mingru_bwd(I64 b0, I64 b1, I64 n, I64 H, const K* k, I64 sb, I64 st, const T* h0,
                const T* out, const T* gout, K* gk, T* gh0) {
    for (I64 b = b0; b < b1; b++) {
        T* carry = gh0 + b * H;
        for (I64 j = 0; j < H; j++) carry[j] = 0;
        for (I64 t = n - 1; t >= 0; t--) {
            const K* kz = k + b * sb + t * st;
            const T* hp = t ? out + (b * n + t - 1) * H : h0 + b * H;
            K* gz = gk + (b * n + t) * 2 * H;
            gru_row_bwd(H, kz, kz + H, hp, gout + (b * n + t) * H, gz, gz + H, carry);
        }
    }
}
void minlstm_fwd(I64 b0, I64 b1, I64 n, I64 H, const K* k, I64 sb, I64 st, const T* h0, T* out) {
    for (I64 b = b0; b < b1; b++) {
        const T* hp = h0 + b * H;
        for (I64 t = 0; t < n; t++) {
            const K* kf = k + b * sb + t * st;
            T* o = out + (b * n + t) * H;
            lstm_row(H, kf, kf + H, kf + 2 * H, hp, o);
            hp = o;
        }
    }
}
void minlstm_bwd(I64 b0, I64 b1, I64 n, I64 H, const K* k, I64 sb, I64 st, const T* h0,
                 const T* out, const T* gout, K* gk, T* gh0) {
    for (I64 b = b0; b < b1; b++) {
        T* carry = gh0 + b * H;
        for (I64 j = 0; j < H; j++) carry[j] = 0;
        for (I64 t = n - 1; t >= 0; t--) {
            const K* kf = k + b * sb + t * st;
            const T* hp = t ? out + (b * n + t - 1) * H : h0 + b * H;
            K* gf = gk + (b * n + t) * 3 * H;
            lstm_row_bwd(H, kf, kf + H, kf + 2 * H, hp, gout + (b * n + t) * H, gf, gf + H, gf + 2 * H, carry);
        }
    }
}
"""
# The source is written once for a generic REAL and compiled once per dtype.
_VARIANTS = {
    "f32": ["-DREAL=float", "-DEXP=expf", "-DLOG1P=log1pf", "-DFABS=fabsf", "-DFMAX=fmaxf"],
    "f64": ["-DREAL=double", "-DEXP=exp", "-DLOG1P=log1p", "-DFABS=fabs", "-DFMAX=fmax"],
    "bf16": ["-DREAL=float", "-DKREAL=uint16_t", "-DEXP=expf", "-DLOG1P=log1pf", "-DFABS=fabsf", "-DFMAX=fmaxf"],
}

# -ffast-math lets gcc call the vectorised exp/log1p of glibc's libmvec (the kernels only
# take exp of non-positive numbers, so no inf arises); -fopenmp-simd honours the ``omp simd``
# pragmas without linking an OpenMP runtime.
_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-shared", "-fPIC"]
_LOCK = threading.Lock()
_LIBS: dict[str, ctypes.CDLL] = {}
_TRIED = False
_POOL: Optional[ThreadPoolExecutor] = None
KINDS = {"mingru": 2, "minlstm": 3}  # gate blocks per cell
_CTYPES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}  # by the dtype of k


def state_dtype(k: Tensor) -> torch.dtype:
    """dtype of the state/output for pre-activations k: fp32 for bf16 k, else k's own."""
    return torch.float32 if k.dtype == torch.bfloat16 else k.dtype


def _cpu_key() -> str:
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ""


def _compile(cc: str, name: str, source: str, flags: list[str], cache: Path) -> Path:
    key = hashlib.sha256("\n".join([source, cc, *flags, _cpu_key()]).encode()).hexdigest()[:16]
    lib_path = cache / f"{name}_{key}.so"
    if not lib_path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src, obj = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
            src.write_text(source)
            subprocess.run([cc, *flags, str(src), "-o", str(obj), "-lm"], check=True, capture_output=True, timeout=120)
            os.replace(obj, lib_path)  # atomic: a parallel builder wins or loses whole
    return lib_path


def build_library(name: str, source: str, variants: dict[str, list[str]],
                  argtypes: dict[str, list]) -> dict[str, ctypes.CDLL]:
    """Compile ``source`` once per variant (extra flags) and load it; ``{}`` if impossible.

    ``argtypes``: function name -> ctypes argument types, set on every variant.
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc or os.environ.get("RNNKIT_NO_KERNELS") == "1" or sys.platform == "win32":
        return {}
    caches = [Path(os.environ.get("RNNKIT_CACHE", Path.home() / ".cache" / "rnnkit")),
              Path(tempfile.gettempdir()) / f"rnnkit-{os.getuid() if hasattr(os, 'getuid') else 0}"]
    for cache in caches:  # a read-only home falls back to the temp folder
        libs = {}
        try:
            for variant, extra in variants.items():
                lib = ctypes.CDLL(str(_compile(cc, f"{name}_{variant}", source, [*_FLAGS, *extra], cache)))
                for fn, types in argtypes.items():
                    getattr(lib, fn).argtypes = types
                libs[variant] = lib
            return libs
        except (OSError, subprocess.SubprocessError, AttributeError):
            continue
    return {}


def _build() -> dict[str, ctypes.CDLL]:
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    types = {}
    for cell in KINDS:
        types[f"{cell}_fwd"] = [i64] * 4 + [ptr, i64, i64, ptr, ptr]
        types[f"{cell}_bwd"] = [i64] * 4 + [ptr, i64, i64] + [ptr] * 5
    return build_library("scan", _SOURCE, _VARIANTS, types)


def available() -> bool:
    """True if the compiled kernels can be used (built on first call, ~1 s)."""
    global _LIBS, _TRIED
    with _LOCK:
        if not _TRIED:
            _LIBS, _TRIED = _build(), True
    return bool(_LIBS)


def supports(t: Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in _CTYPES and t.stride(-1) == 1 and available()


def _split(fn, B: int, T: int, H: int, *args) -> None:
    """Run ``fn(b0, b1, T, H, *args)`` over batch ranges, on threads when torch may use
    several and the work is big enough to pay for the hand-off (~50 us)."""
    global _POOL
    n = min(torch.get_num_threads(), B) if B * T * H >= 1 << 18 else 1
    if n <= 1:
        fn(0, B, T, H, *args)
        return
    if _POOL is None or _POOL._max_workers < n:
        _POOL = ThreadPoolExecutor(max_workers=n)
    bounds = [B * i // n for i in range(n + 1)]
    list(_POOL.map(lambda i: fn(bounds[i], bounds[i + 1], T, H, *args), range(n)))


def scan_forward(kind: str, k: Tensor, h0: Tensor) -> Tensor:
    """k: (B, T, G*H) with unit inner stride; h0: (B, H) -> h: (B, T, H) contiguous."""
    B, T, GH = k.shape
    H = GH // KINDS[kind]
    h0 = h0.to(state_dtype(k)).contiguous()
    out = torch.empty(B, T, H, dtype=state_dtype(k))
    fn = getattr(_LIBS[_CTYPES[k.dtype]], f"{kind}_fwd")
    _split(fn, B, T, H, k.data_ptr(), k.stride(0), k.stride(1), h0.data_ptr(), out.data_ptr())
    return out


def scan_backward(kind: str, k: Tensor, h0: Tensor, out: Tensor, gout: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of ``scan_forward`` w.r.t. k (contiguous (B, T, G*H)) and h0 (B, H)."""
    B, T, GH = k.shape
    H = GH // KINDS[kind]
    h0, gout = h0.to(state_dtype(k)).contiguous(), gout.to(state_dtype(k)).contiguous()
    gk, gh0 = k.new_empty(B, T, GH), torch.empty(B, H, dtype=state_dtype(k))
    fn = getattr(_LIBS[_CTYPES[k.dtype]], f"{kind}_bwd")
    _split(fn, B, T, H, k.data_ptr(), k.stride(0), k.stride(1), h0.data_ptr(), out.data_ptr(),
           gout.data_ptr(), gk.data_ptr(), gh0.data_ptr())
    return gk, gh0
