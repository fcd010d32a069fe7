"""Small C kernels for the sequential parts that torch has no fused op for.

The time loop of a minGRU/minLSTM scan is memory-bound: per element it reads the gate
pre-activations once and writes the state once. In plain torch ops every gate formula is
its own pass over the whole (batch, time, hidden) tensor, and a per-step Python loop pays
~5 us of dispatch per op. These kernels do the whole forward (gates + recurrence) in one
pass and the whole backward (carried gradient + gate derivatives) in one reverse pass.

They are plain C (no torch headers), so building takes about a second with the system C
compiler, and they are called through ``ctypes`` on tensor data pointers. Built with
``-fopenmp`` they split the work (batches, or channel blocks for small batches) over
``torch.get_num_threads()`` threads of the OpenMP team torch itself uses (torch ships
libgomp.so.1 and the loader reuses it), so no second thread pool fights torch's spinning
workers on a small machine; without OpenMP, batch ranges go to Python threads (ctypes
releases the GIL). The bias is added inside the kernels and its gradient summed there.
Built once per source/compiler-flags/CPU into a private cache folder (``$RNNKIT_CACHE_DIR/kernels``,
else ``$XDG_CACHE_HOME/rnnkit/kernels``, else ``~/.cache/rnnkit/kernels``; if that cannot be
written, ``<tmp>/rnnkit-<uid>``) with an atomic rename, so parallel test workers do not race.
A shared library runs with the user's rights when loaded, so the folder is created 0700 and
checked before every load (ours, a real folder, 0700), and each ``.so`` must be a regular file
of ours that nobody else can write; anything else is rebuilt or, if that fails, not used.
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
from typing import Callable, Optional

import torch
from torch import Tensor

from rnnkit.nn.kernel_cache import cache_candidates, private_dir, trusted_file

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
/* Rows: one time step of one batch element over channels [0, n) (pointers pre-offset).
   kz/kh: gate pre-activations without bias; bz/bh: the bias added here (fusing it saves
   addmm's bias copy and a separate reduction for its gradient). */
static void gru_row(I64 n, const K* R kz, const K* R kh, const T* R bz, const T* R bh, const T* R hp, T* R o) {
    #pragma omp simd
    for (I64 j = 0; j < n; j++) {
        T z = sig(KL(kz[j]) + bz[j]), dg, ht = gfun(KL(kh[j]) + bh[j], &dg);
        o[j] = hp[j] + z * (ht - hp[j]);
    }
}
/* backward of one row; also accumulates the bias gradient into gbz/gbh */
static void gru_row_bwd(I64 n, const K* R kz, const K* R kh, const T* R bz, const T* R bh, const T* R hp,
                        const T* R go, K* R gz, K* R gh, T* R gbz, T* R gbh, T* R carry) {
    #pragma omp simd
    for (I64 j = 0; j < n; j++) {
        T z = sig(KL(kz[j]) + bz[j]), dg, ht = gfun(KL(kh[j]) + bh[j], &dg);
        T g = go[j] + carry[j];
        T a = g * (ht - hp[j]) * z * (1 - z), c = g * z * dg;
        gz[j] = KS(a); gh[j] = KS(c); gbz[j] += a; gbh[j] += c;
        carry[j] = g * (1 - z);
    }
}
/* minLSTM: d = softplus(-kf) - softplus(-ki) = log(i/f); a = f/(f+i) = sig(-d), b = sig(d) */
static void lstm_row(I64 n, const K* R kf, const K* R ki, const K* R kh, const T* R bf, const T* R bi,
                     const T* R bh, const T* R hp, T* R o) {
    #pragma omp simd
    for (I64 j = 0; j < n; j++) {
        T d = sp(-(KL(kf[j]) + bf[j])) - sp(-(KL(ki[j]) + bi[j])), dg, ht = gfun(KL(kh[j]) + bh[j], &dg);
        o[j] = sig(-d) * hp[j] + sig(d) * ht;
    }
}
static void lstm_row_bwd(I64 n, const K* R kf, const K* R ki, const K* R kh, const T* R bf, const T* R bi,
                         const T* R bh, const T* R hp, const T* R go, K* R gf, K* R gi, K* R gh,
                         T* R gbf, T* R gbi, T* R gbh, T* R carry) {
    #pragma omp simd
    for (I64 j = 0; j < n; j++) {
        T xf = KL(kf[j]) + bf[j], xi = KL(ki[j]) + bi[j];
        T d = sp(-xf) - sp(-xi);
        T a = sig(-d), b = sig(d), dg, ht = gfun(KL(kh[j]) + bh[j], &dg);
        T g = go[j] + carry[j];
        T gd = g * (ht - hp[j]) * a * b;
        T u = -gd * (1 - sig(xf)), v = gd * (1 - sig(xi)), w = g * b * dg;
        gf[j] = KS(u); gi[j] = KS(v); gh[j] = KS(w); gbf[j] += u; gbi[j] += v; gbh[j] += w;
        carry[j] = g * a;
    }
}
/* Work split: channels are independent in these linear recurrences, so the items are
   (batch, channel block) pairs: whole rows when there are at least as many batch elements
   as threads, else each row cut into `threads` blocks of a multiple of 16 channels. With
   OpenMP the loop runs on the process's OpenMP team, which is torch's own when torch
   ships libgomp.so.1 (same soname: the loader reuses the loaded copy), so the kernel gets
   the threads that torch's last matmul just used instead of competing with them. */
#define FOR_ITEMS(b0, b1, H, threads)                                                      \
    I64 nc_ = (b1 - b0) >= threads || b1 <= b0 ? 1 : (threads + (b1 - b0) - 1) / (b1 - b0); \
    I64 w_ = ((H + nc_ - 1) / nc_ + 15) / 16 * 16;                                          \
    _Pragma("omp parallel for schedule(static) collapse(2) num_threads(threads) if(threads > 1)") \
    for (I64 b = b0; b < b1; b++)                                                           \
        for (I64 c_ = 0; c_ < nc_; c_++)                                                    \
            for (I64 j0 = c_ * w_, m = (j0 + w_ < H ? j0 + w_ : H) - j0; m > 0; m = 0)
/* k: gate blocks side by side in the last dim, element strides sb (batch), st (time);
   bias (G*H,); h0 (B, H), out/gout (B, T, H), gk (B, T, G*H) contiguous; gb (B, G*H) gets
   each batch element's bias gradient (summed by the caller). Batches [b0, b1). */
void mingru_fwd(I64 b0, I64 b1, I64 n, I64 H, I64 threads, const K* k, I64 sb, I64 st, const T* bias,
                const T* h0, T* out) {
    FOR_ITEMS(b0, b1, H, threads) {
        const T* hp = h0 + b * H + j0;
        for (I64 t = 0; t < n; t++) {
            const K* kz = k + b * sb + t * st + j0;
            T* o = out + (b * n + t) * H + j0;
            gru_row(m, kz, kz + H, bias + j0, bias + H + j0, hp, o);
            hp = o;
        }
    }
}
void mingru_bwd(I64 b0, I64 b1, I64 n, I64 H, I64 threads, const K* k, I64 sb, I64 st, const T* bias,
                const T* h0, const T* out, const T* gout, K* gk, T* gb, T* gh0) {
    FOR_ITEMS(b0, b1, H, threads) {
        T* carry = gh0 + b * H + j0;
        T* gbz = gb + b * 2 * H + j0;
        for (I64 j = 0; j < m; j++) carry[j] = gbz[j] = gbz[H + j] = 0;
        for (I64 t = n - 1; t >= 0; t--) {
            const K* kz = k + b * sb + t * st + j0;
            const T* hp = t ? out + (b * n + t - 1) * H + j0 : h0 + b * H + j0;
            K* gz = gk + (b * n + t) * 2 * H + j0;
            gru_row_bwd(m, kz, kz + H, bias + j0, bias + H + j0, hp, gout + (b * n + t) * H + j0,
                        gz, gz + H, gbz, gbz + H, carry);
        }
    }
}
void minlstm_fwd(I64 b0, I64 b1, I64 n, I64 H, I64 threads, const K* k, I64 sb, I64 st, const T* bias,
                 const T* h0, T* out) {
    FOR_ITEMS(b0, b1, H, threads) {
        const T* hp = h0 + b * H + j0;
        for (I64 t = 0; t < n; t++) {
            const K* kf = k + b * sb + t * st + j0;
            T* o = out + (b * n + t) * H + j0;
            lstm_row(m, kf, kf + H, kf + 2 * H, bias + j0, bias + H + j0, bias + 2 * H + j0, hp, o);
            hp = o;
        }
    }
}
void minlstm_bwd(I64 b0, I64 b1, I64 n, I64 H, I64 threads, const K* k, I64 sb, I64 st, const T* bias,
                 const T* h0, const T* out, const T* gout, K* gk, T* gb, T* gh0) {
    FOR_ITEMS(b0, b1, H, threads) {
        T* carry = gh0 + b * H + j0;
        T* gbf = gb + b * 3 * H + j0;
        for (I64 j = 0; j < m; j++) carry[j] = gbf[j] = gbf[H + j] = gbf[2 * H + j] = 0;
        for (I64 t = n - 1; t >= 0; t--) {
            const K* kf = k + b * sb + t * st + j0;
            const T* hp = t ? out + (b * n + t - 1) * H + j0 : h0 + b * H + j0;
            K* gf = gk + (b * n + t) * 3 * H + j0;
            lstm_row_bwd(m, kf, kf + H, kf + 2 * H, bias + j0, bias + H + j0, bias + 2 * H + j0, hp,
                         gout + (b * n + t) * H + j0, gf, gf + H, gf + 2 * H, gbf, gbf + H, gbf + 2 * H, carry);
        }
    }
}
int has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
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
# pragmas without linking an OpenMP runtime; -fopenmp (where asked for and the compiler has
# it) also the ``omp parallel`` ones, with libgomp.so.1 -- torch's own copy once torch is loaded.
_FLAGS = ["-O3", "-march=native", "-ffast-math", "-shared", "-fPIC"]
_SIMD_ONLY, _OPENMP = ["-fopenmp-simd"], ["-fopenmp"]
_LINK = "link: separate, no crtfastmath"  # part of the cache key: older builds set FTZ/DAZ on load
_LOCK = threading.Lock()
_LIBS: dict[str, ctypes.CDLL] = {}
_TRIED = False
_OPENMP_BUILD = False  # the scan library splits work itself (set by available())
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
    """Path of the built library in ``cache`` (a ``private_dir``), compiled unless a trusted copy exists."""
    key = hashlib.sha256("\n".join([source, cc, *flags, _cpu_key(), _LINK]).encode()).hexdigest()[:16]
    lib_path = cache / f"{name}_{key}.so"
    if os.path.lexists(lib_path) and not trusted_file(lib_path):
        os.unlink(lib_path)  # not provably ours: rebuild rather than run it
    if not lib_path.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src, obj = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
            src.write_text(source)
            # Compile and link apart: linking a shared library with -ffast-math pulls in gcc's
            # crtfastmath.o, whose constructor sets flush-to-zero / denormals-are-zero for the whole
            # process at load time, changing every other library's numerics (subnormals become 0).
            compile_flags = [f for f in flags if f != "-shared"]
            link_flags = ["-shared", *(f for f in flags if f == "-fopenmp")]
            o = Path(tmp) / f"{name}.o"
            subprocess.run([cc, *compile_flags, "-c", str(src), "-o", str(o)], check=True, capture_output=True, timeout=120)
            subprocess.run([cc, *link_flags, str(o), "-o", str(obj), "-lm"], check=True, capture_output=True, timeout=120)
            os.chmod(obj, 0o700)
            os.replace(obj, lib_path)  # atomic: a parallel builder wins or loses whole
    if not trusted_file(lib_path):
        raise OSError(f"{lib_path}: not a private regular file")
    return lib_path


def build_library(name: str, source: str, variants: dict[str, list[str]],
                  argtypes: dict[str, list], openmp: bool = False) -> dict[str, ctypes.CDLL]:
    """Compile ``source`` once per variant (extra flags) and load it; ``{}`` if impossible.

    ``argtypes``: function name -> ctypes argument types, set on every variant. ``openmp``:
    try ``-fopenmp`` first and fall back to a serial build (``omp simd`` only).
    """
    for parallel in ([_OPENMP] if openmp else []) + [_SIMD_ONLY]:
        libs = _build_variants(name, source, variants, argtypes, parallel)
        if libs:
            return libs
    return {}


def lazy_library(name: str, source: str, flags: list[str], argtypes: dict[str, list]) -> Callable[[], Optional[ctypes.CDLL]]:
    """A function returning the float32 build of ``source`` (extra ``flags``), compiled on its first
    call and reused after; None where there is no compiler."""
    built: dict[str, Optional[ctypes.CDLL]] = {}

    def get() -> Optional[ctypes.CDLL]:
        if "lib" not in built:
            with _LOCK:
                if "lib" not in built:
                    built["lib"] = build_library(name, source, {"f32": flags}, argtypes).get("f32")
        return built["lib"]
    return get


def _build_variants(name: str, source: str, variants: dict[str, list[str]], argtypes: dict[str, list],
                    parallel: list[str]) -> dict[str, ctypes.CDLL]:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc or os.environ.get("RNNKIT_NO_KERNELS") == "1" or sys.platform == "win32":
        return {}
    for candidate in cache_candidates():  # a read-only home falls back to the temp folder
        cache = private_dir(candidate)
        if cache is None:
            continue
        libs = {}
        try:
            for variant, extra in variants.items():
                lib = ctypes.CDLL(str(_compile(cc, f"{name}_{variant}", source, [*_FLAGS, *parallel, *extra], cache)))
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
        types[f"{cell}_fwd"] = [i64] * 5 + [ptr, i64, i64, ptr, ptr, ptr]
        types[f"{cell}_bwd"] = [i64] * 5 + [ptr, i64, i64] + [ptr] * 7
    types["has_openmp"] = []
    return build_library("scan", _SOURCE, _VARIANTS, types, openmp=True)


def available() -> bool:
    """True if the compiled kernels can be used (built on first call, ~1 s)."""
    global _LIBS, _TRIED, _OPENMP_BUILD
    with _LOCK:
        if not _TRIED:
            _LIBS, _TRIED = _build(), True
            _OPENMP_BUILD = bool(_LIBS) and bool(next(iter(_LIBS.values())).has_openmp())
    return bool(_LIBS)


def supports(t: Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in _CTYPES and t.stride(-1) == 1 and available()


def _threads(B: int, T: int, H: int) -> int:
    """Threads worth using: torch's count, unless the work is too small to pay the hand-off."""
    return torch.get_num_threads() if B * T * H >= 1 << 16 else 1


def _run(fn, B: int, T: int, H: int, *args) -> None:
    """Run ``fn(b0, b1, T, H, threads, *args)`` over the batch. An OpenMP build splits the
    work itself (batches x channel blocks); a serial build gets batch ranges on Python
    threads (ctypes releases the GIL)."""
    global _POOL
    n = _threads(B, T, H)
    if _OPENMP_BUILD or n <= 1 or B < 2:
        fn(0, B, T, H, n if _OPENMP_BUILD else 1, *args)
        return
    n = min(n, B)
    if _POOL is None or _POOL._max_workers < n:
        _POOL = ThreadPoolExecutor(max_workers=n)
    bounds = [B * i // n for i in range(n + 1)]
    list(_POOL.map(lambda i: fn(bounds[i], bounds[i + 1], T, H, 1, *args), range(n)))


def _bias(bias: Optional[Tensor], k: Tensor, dtype: torch.dtype) -> Tensor:
    return k.new_zeros(k.shape[-1], dtype=dtype) if bias is None else bias.to(dtype).contiguous()


def scan_forward(kind: str, k: Tensor, h0: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """k: (B, T, G*H) with unit inner stride; bias: (G*H,) added to k; h0: (B, H)
    -> h: (B, T, H) contiguous."""
    B, T, GH = k.shape
    H = GH // KINDS[kind]
    sd = state_dtype(k)
    h0, bias = h0.to(sd).contiguous(), _bias(bias, k, sd)
    out = torch.empty(B, T, H, dtype=sd)
    fn = getattr(_LIBS[_CTYPES[k.dtype]], f"{kind}_fwd")
    _run(fn, B, T, H, k.data_ptr(), k.stride(0), k.stride(1), bias.data_ptr(), h0.data_ptr(), out.data_ptr())
    return out


def scan_backward(kind: str, k: Tensor, h0: Tensor, out: Tensor, gout: Tensor,
                  bias: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``scan_forward`` w.r.t. k (contiguous (B, T, G*H)), bias (G*H,) and h0 (B, H)."""
    B, T, GH = k.shape
    H = GH // KINDS[kind]
    sd = state_dtype(k)
    h0, gout, bias = h0.to(sd).contiguous(), gout.to(sd).contiguous(), _bias(bias, k, sd)
    gk, gb, gh0 = k.new_empty(B, T, GH), torch.empty(B, GH, dtype=sd), torch.empty(B, H, dtype=sd)
    fn = getattr(_LIBS[_CTYPES[k.dtype]], f"{kind}_bwd")
    _run(fn, B, T, H, k.data_ptr(), k.stride(0), k.stride(1), bias.data_ptr(), h0.data_ptr(), out.data_ptr(),
         gout.data_ptr(), gk.data_ptr(), gb.data_ptr(), gh0.data_ptr())
    return gk, gb.sum(0), gh0
