"""Benchmark: rnnkit.nn layers vs torch.nn vs Keras 3 (torch backend), and the generic runner.

Main table (one run, interleaved repeats, medians): LSTM/GRU/RNN at batch 64, 100 steps,
32 inputs, 256 hidden, float32, one thread; training = forward + backward of ``y.sum()``
(no optimizer step, same for every library), inference = forward under ``torch.no_grad``.
Generic runner: ``rnnkit.nn.LSTM(fused=False)`` and ``Recurrent(LSTMCell)`` vs a plain
Python loop over ``torch.nn.LSTMCell``. Full mode adds an LSTM shape sweep (batch, time,
hidden varied one at a time) of rnnkit vs torch.nn with achieved GFLOP/s. On a CPU, also
bidirectional GRU/LSTM training with variable lengths: torch's packed path vs rnnkit's CPU training path.

    python bench/layers.py [--quick]        # or: rnnkit bench [--quick]

Writes ``bench/results/layers.json`` (``layers.quick.json`` with --quick).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (keras_layer, log, machine_info, markdown_table,  # noqa: E402
                          matmul_peak_gflops, paired_ratio, setup, summary, time_interleaved, write_results)

import rnnkit.nn as rnn  # noqa: E402

B, T, I, H = 64, 100, 32, 256
KINDS = ("LSTM", "GRU", "RNN")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEV = torch.device("cpu")  # set by main(device=...)


def _sync() -> None:
    """Wait for queued GPU work so a timing covers it (no-op on CPU)."""
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def _train_fn(forward: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for p in params:
            p.grad = None
        forward().sum().backward()
        _sync()
    return run


def _infer_fn(forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            forward()
        _sync()
    return run


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def _library_cases(kind: str, x: torch.Tensor, with_keras: bool) -> dict[str, tuple[Callable, Callable]]:
    """name -> (train fn, inference fn) for torch.nn, rnnkit and Keras."""
    torch.manual_seed(0)
    ref = getattr(nn, kind)(I, H, batch_first=True).to(DEV)
    ours = getattr(rnn, kind)(I, H, batch_first=True).to(DEV)
    ours.load_state_dict(ref.state_dict())
    xg = x.clone().requires_grad_(True)
    cases = {
        "torch.nn": (_train_fn(lambda: ref(xg)[0], list(ref.parameters()) + [xg]), _infer_fn(lambda: ref(x)[0])),
        "rnnkit": (_train_fn(lambda: ours(xg)[0], list(ours.parameters()) + [xg]), _infer_fn(lambda: ours(x)[0])),
    }
    k = keras_layer(kind, H, x) if with_keras else None
    if k is not None:
        kparams = [w.value for w in k.weights] + [xg]
        cases["keras"] = (_train_fn(lambda: k(xg, training=True), kparams), _infer_fn(lambda: k(x, training=False)))
    return cases


def _generic_cases(x: torch.Tensor) -> dict[str, tuple[Callable, Callable]]:
    """LSTM through the generic runner vs a hand-written loop over torch.nn.LSTMCell."""
    torch.manual_seed(0)
    fused = nn.LSTM(I, H, batch_first=True).to(DEV)  # reference, interleaved in the same rounds
    fused_off = rnn.LSTM(I, H, batch_first=True, fused=False).to(DEV)
    rec = rnn.Recurrent(rnn.LSTMCell(I, H), batch_first=True).to(DEV)
    cell = nn.LSTMCell(I, H).to(DEV)
    xg = x.clone().requires_grad_(True)

    def loop(inp: torch.Tensor) -> torch.Tensor:
        h = c = inp.new_zeros(inp.shape[0], H)
        ys = []
        for t in range(inp.shape[1]):
            h, c = cell(inp[:, t], (h, c))
            ys.append(h)
        return torch.stack(ys, 1)

    return {
        "torch.nn.LSTM (fused)": (_train_fn(lambda: fused(xg)[0], list(fused.parameters()) + [xg]),
                                  _infer_fn(lambda: fused(x)[0])),
        "LSTMCell loop": (_train_fn(lambda: loop(xg), list(cell.parameters()) + [xg]), _infer_fn(lambda: loop(x))),
        "rnnkit LSTM fused=False": (_train_fn(lambda: fused_off(xg)[0], list(fused_off.parameters()) + [xg]),
                                    _infer_fn(lambda: fused_off(x)[0])),
        "rnnkit Recurrent(LSTMCell)": (_train_fn(lambda: rec(xg)[0], list(rec.parameters()) + [xg]),
                                       _infer_fn(lambda: rec(x)[0])),
    }


def _measure(cases: dict[str, tuple[Callable, Callable]], repeats: int) -> dict[str, dict[str, dict]]:
    """Interleave every (case, mode) in one round-robin; return case -> mode -> summary."""
    flat = {f"{name}|{mode}": fns[i] for name, fns in cases.items() for i, mode in enumerate(("train", "infer"))}
    times = time_interleaved(flat, repeats=repeats, warmup=1)
    out: dict[str, dict[str, dict]] = {}
    for key, ts in times.items():
        name, mode = key.split("|")
        out.setdefault(name, {})[mode] = {**summary(ts), "times_s": ts}
    return out


def _ratio(res: dict, num: str, den: str, mode: str) -> float:
    """Speed of ``den`` relative to ``num`` (> 1: den is faster), paired per repeat."""
    return paired_ratio(res[num][mode]["times_s"], res[den][mode]["times_s"])


def _call_overhead(repeats: int, calls: int = 200) -> dict[str, Any]:
    """Per-call cost at a tiny shape (B=1, T=1, H=8), where the kernel is nearly free:
    what rnnkit's wrapper (checks, option handling) adds to a torch.nn call, in µs."""
    torch.manual_seed(0)
    ref, ours = nn.LSTM(8, 8, batch_first=True).to(DEV), rnn.LSTM(8, 8, batch_first=True).to(DEV)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 1, 8, device=DEV)

    def many(layer: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                for _ in range(calls):
                    layer(x)
        return run

    times = time_interleaved({"torch.nn": many(ref), "rnnkit": many(ours)}, repeats=repeats, warmup=1)
    per = {k: 1e6 * min(v) / calls for k, v in times.items()}  # best round: least disturbed
    return {"torch_us_per_call": per["torch.nn"], "rnnkit_us_per_call": per["rnnkit"],
            "added_us_per_call": per["rnnkit"] - per["torch.nn"]}


def lstm_flops(b: int, t: int, i: int, h: int, gates: int = 4) -> float:
    """Forward FLOPs of one layer: 2 * gates * H * (I + H) multiply-adds per step and sample."""
    return 2.0 * gates * b * h * (i + h) * t


def _sweep(repeats: int, peak: float) -> list[dict[str, Any]]:
    """LSTM rnnkit vs torch.nn at shapes around the main one (one axis varied at a time)."""
    shapes = [(1, 100, 256), (16, 100, 256), (64, 50, 256), (64, 200, 256), (64, 1000, 256), (64, 100, 64), (64, 100, 1024)]
    rows = []
    for b, t, h in shapes:
        torch.manual_seed(0)
        x = torch.randn(b, t, I, device=DEV)
        ref, ours = nn.LSTM(I, h, batch_first=True).to(DEV), rnn.LSTM(I, h, batch_first=True).to(DEV)
        ours.load_state_dict(ref.state_dict())
        xg = x.clone().requires_grad_(True)
        cases = {
            "torch.nn": (_train_fn(lambda: ref(xg)[0], list(ref.parameters()) + [xg]), _infer_fn(lambda: ref(x)[0])),
            "rnnkit": (_train_fn(lambda: ours(xg)[0], list(ours.parameters()) + [xg]), _infer_fn(lambda: ours(x)[0])),
        }
        log(f"  sweep B={b} T={t} H={h}")
        res = _measure(cases, repeats)
        flops = lstm_flops(b, t, I, h)
        for mode, mult in (("train", 3.0), ("infer", 1.0)):  # backward ~ 2x forward FLOPs
            r, o = res["rnnkit"][mode]["median_s"], res["torch.nn"][mode]["median_s"]
            rows.append({"batch": b, "time": t, "hidden": h, "mode": mode, "rnnkit_ms": 1e3 * r, "torch_ms": 1e3 * o,
                         "speed_ratio": _ratio(res, "torch.nn", "rnnkit", mode), "rnnkit_gflops": mult * flops / r / 1e9,
                         "pct_of_peak": 100 * mult * flops / r / 1e9 / peak})
    return rows


# name, input, hidden, layers, batch, time: bidirectional layers on variable-length batches, as the
# classification (names) and speech tasks train them; lengths uniform in [0.7 T, T] (length-bucketed)
VARLEN_SHAPES = [("names-like", 32, 128, 2, 64, 15), ("speech-like", 320, 192, 3, 16, 300)]


def _variable_lengths(repeats: int, quick: bool = False) -> list[dict[str, Any]]:
    """Training with lengths: torch's packed-sequence run vs rnnkit's CPU training path, same layer
    (``fast_train`` toggled), forward + backward of ``y.sum()``, bidirectional GRU and LSTM."""
    rows = []
    for kind in ("GRU", "LSTM"):
        for name, i, h, layers, b, t in VARLEN_SHAPES[:1] if quick else VARLEN_SHAPES:
            torch.manual_seed(0)
            layer = getattr(rnn, kind)(i, h, num_layers=layers, bidirectional=True, batch_first=True)
            x = torch.randn(b, t, i)
            lengths = torch.randint(int(0.7 * t), t + 1, (b,))

            def train(fast: bool, layer=layer, x=x, lengths=lengths) -> Callable[[], None]:
                def run() -> None:
                    layer.fast_train = fast
                    for p in layer.parameters():
                        p.grad = None
                    layer(x, lengths=lengths)[0].sum().backward()
                return run
            log(f"  variable lengths: bi-{kind} {name}")
            times = time_interleaved({"torch packed": train(False), "rnnkit": train(True)}, repeats=repeats, warmup=1)
            rows.append({"cell": kind, "case": name, "input": i, "hidden": h, "layers": layers, "batch": b, "time": t,
                         "torch_packed_ms": 1e3 * summary(times["torch packed"])["median_s"],
                         "rnnkit_ms": 1e3 * summary(times["rnnkit"])["median_s"],
                         "speed_ratio": paired_ratio(times["torch packed"], times["rnnkit"])})
    return rows


def main(quick: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Run the layer benchmark; returns (and writes) the results with a Markdown table.
    ``device="cuda"`` times the GPU (cuDNN) path instead and writes ``layers.cuda.json``."""
    global DEV
    DEV = torch.device(device)
    setup(threads=1)
    repeats = 3 if quick else 11
    info = machine_info()
    log(f"layers bench: B={B} T={T} I={I} H={H}, {repeats} interleaved repeats, {torch.get_num_threads()} thread")
    x = torch.randn(B, T, I, device=DEV)
    results: dict[str, Any] = {"machine": info, "shape": {"batch": B, "time": T, "input": I, "hidden": H},
                               "repeats": repeats, "quick": quick, "device": str(DEV), "layers": {}}
    rows = []
    for kind in KINDS:
        log(f"  {kind}: torch.nn, rnnkit, keras")
        res = _measure(_library_cases(kind, x, with_keras=True), repeats)
        results["layers"][kind] = res
        for mode in ("train", "infer"):
            t_torch, t_ours = res["torch.nn"][mode]["median_s"], res["rnnkit"][mode]["median_s"]
            t_keras = res["keras"][mode]["median_s"] if "keras" in res else float("nan")
            vs_keras = _ratio(res, "keras", "rnnkit", mode) if "keras" in res else float("nan")
            rows.append([kind, mode, 1e3 * t_torch, 1e3 * t_ours, 1e3 * t_keras, _ratio(res, "torch.nn", "rnnkit", mode), vs_keras])
    log("  generic runner vs LSTMCell loop")
    gen = _measure(_generic_cases(x), repeats)
    results["generic"] = gen
    gen_rows = []
    for mode in ("train", "infer"):
        for name in gen:
            t = gen[name][mode]["median_s"]
            gen_rows.append([name, mode, 1e3 * t, _ratio(gen, "LSTMCell loop", name, mode),
                             1 / _ratio(gen, "torch.nn.LSTM (fused)", name, mode)])
    log("  per-call overhead at a tiny shape")
    results["call_overhead"] = over = _call_overhead(repeats)
    results["load_avg_1m_end"] = machine_info().get("load_avg_1m")
    table = markdown_table(
        ["layer", "mode", "torch.nn ms", "rnnkit ms", "Keras ms", "rnnkit speed vs torch.nn", "rnnkit speed vs Keras"], rows)
    table += "\n\n" + markdown_table(
        ["generic path (LSTM)", "mode", "ms", "speed vs LSTMCell loop", "time / fused torch.nn.LSTM"], gen_rows)
    table += (f"\n\nPer-call overhead (LSTM, B=1, T=1, H=8, no_grad): torch.nn {over['torch_us_per_call']:.1f} µs, "
              f"rnnkit {over['rnnkit_us_per_call']:.1f} µs (adds {over['added_us_per_call']:.1f} µs per call).")
    if not quick:
        peak = matmul_peak_gflops(device=DEV)
        results["matmul_peak_gflops"] = peak
        log(f"  LSTM shape sweep (fp32 GEMM peak {peak:.1f} GFLOP/s)")
        sweep = _sweep(3, peak)
        results["sweep"] = sweep
        table += "\n\n" + markdown_table(
            ["batch", "time", "hidden", "mode", "torch.nn ms", "rnnkit ms", "rnnkit speed vs torch.nn", "rnnkit GFLOP/s",
             f"% of GEMM peak ({peak:.0f} GFLOP/s)"],
            [[r["batch"], r["time"], r["hidden"], r["mode"], r["torch_ms"], r["rnnkit_ms"], r["speed_ratio"],
              r["rnnkit_gflops"], r["pct_of_peak"]] for r in sweep])
    if DEV.type == "cpu":
        results["variable_lengths"] = var = _variable_lengths(3 if quick else 7, quick)
        table += "\n\n" + markdown_table(
            ["training with lengths", "cell", "I", "H", "layers", "batch", "time", "torch packed ms", "rnnkit ms",
             "rnnkit speed vs torch"],
            [[r["case"], "bi-" + r["cell"], r["input"], r["hidden"], r["layers"], r["batch"], r["time"], r["torch_packed_ms"], r["rnnkit_ms"],
              r["speed_ratio"]] for r in var])
    results["table"] = table
    write_results("layers" if DEV.type == "cpu" else f"layers.{DEV.type}", results, quick=quick)
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats, no shape sweep")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = ap.parse_args()
    print(main(quick=args.quick, device=args.device)["table"])
