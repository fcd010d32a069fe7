"""Shared timing helpers for ``bench/*.py``.

Protocol (what ``rnnkit bench`` expects from every ``bench/<area>.py``):
- a function ``main(quick: bool) -> dict`` that measures, writes ``bench/results/<area>.json``
  (``write_results``) and returns the same dict; it should hold a Markdown table under
  ``"table"`` (printed by ``rnnkit bench``), or ``"rows"`` (a list of flat dicts);
- module-level code does nothing else (guard scripts with ``if __name__ == "__main__"``);
- file names starting with ``_`` and ``common.py`` are not run.

The machine is shared, so compare implementations *within one run*: ``time_interleaved``
runs the candidates round-robin (rotating the order every repeat) and reports medians,
which keeps slow phases of the neighbours from landing on one candidate only.

Import from a bench file as ``from bench.common import ...`` after putting the repository
root on ``sys.path`` (see ``bench/layers.py``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def setup(threads: int = 1, seed: int = 0) -> None:
    """Pin the thread count (2 shared cores: one thread per job keeps timings comparable)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)


def time_interleaved(cases: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each case, measured round-robin.

    ``cases``: name -> zero-argument callable doing one complete unit of work.
    Every repeat runs each case once; the starting case rotates so no case always runs
    first (after another's cache or allocator activity). Returns name -> list of seconds.
    """
    names = list(cases)
    for _ in range(warmup):
        for n in names:
            cases[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            t0 = time.perf_counter()
            cases[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over repeats of ``num[r] / den[r]``: each pair ran in the same round, so a slow
    phase of the shared machine hits both sides of a pair and mostly cancels."""
    return statistics.median(a / b for a, b in zip(num, den))


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median, min, max and count of a list of timings (seconds)."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "n": len(seconds)}


def matmul_peak_gflops(n: int = 1024, repeats: int = 30, device: Any = "cpu") -> float:
    """Best fp32 GEMM rate of this process (its thread count): the practical peak. Best of
    many, so that one repeat that got the core to itself sets it on a shared machine."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = min(_timed(lambda: (a @ b, sync())) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def machine_info() -> dict[str, Any]:
    """CPU, core count, load, threads, library versions, UTC date and the command line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([_program()] + sys.argv[1:]),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return info


def _program() -> str:
    name = Path(sys.argv[0]).name
    if name in ("__main__.py", "rnnkit"):
        return "rnnkit"
    return f"python {Path(sys.argv[0]).resolve().relative_to(ROOT)}" if ROOT in Path(sys.argv[0]).resolve().parents else name


def write_results(area: str, data: dict[str, Any], quick: bool = False) -> Path:
    """Write ``bench/results/<area>.json`` (``<area>.quick.json`` in quick mode) atomically."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{area}{'.quick' if quick else ''}.json"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    log(f"wrote {path}")
    return path


def run_quick_script(main: Callable[..., dict[str, Any]], doc: Optional[str]) -> None:
    """The command line of a bench file whose only option is ``--quick``: run it, print its table."""
    ap = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and shapes")
    print(main(ap.parse_args().quick)["table"])


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats are shown with 3 significant digits."""
    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def log(msg: str) -> None:
    """Progress goes to stderr; results to stdout/files."""
    print(msg, file=sys.stderr, flush=True)


def keras_layer(kind: str, hidden: int, x: torch.Tensor):
    """A Keras 3 ``LSTM``/``GRU``/``SimpleRNN`` (``kind`` LSTM|GRU|RNN) on the torch backend, built for
    ``x: (batch, time, features)``; None when keras (with the torch backend) is unavailable."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None
    cls = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU, "RNN": keras.layers.SimpleRNN}[kind]
    layer = cls(hidden, return_sequences=True)
    layer.build(tuple(x.shape))
    return layer
