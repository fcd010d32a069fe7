"""Benchmark grid (issue 8 items 1 and 6): LSTM/GRU/RNN, rnnkit vs torch.nn (and Keras 3 on the
torch backend for H <= 256, T <= 200), training and inference over batch {1, 16, 64} x time
{50, 200, 1000} x hidden {64, 256, 1024}, 32 inputs, float32, one torch thread; achieved LSTM
GFLOP/s next to the fp32 matmul peak (1 and 2 threads); text generation chars/s; forecast predict
latency for one series; DDP training samples/s with 2 processes vs 1 (gloo, CPU).

Budget (a 2-core machine shared with other jobs): points whose LSTM forward exceeds
``MAX_FLOPS`` are skipped (B=64 x H=1024 x T in {200, 1000}, B=16 x H=1024 x T=1000); the rest
run cheapest first, 2-3 interleaved repeats each (``repeats_for``), and a time budget skips what
is left when it runs out (listed in the JSON). Training = forward + backward of ``y.sum()``
(grads of weights and input, no optimizer step); inference = forward under ``torch.no_grad``.

    python bench/grid.py [--quick]        # or: rnnkit bench --only grid [--quick]

Writes ``bench/results/grid.json`` (``grid.quick.json`` with --quick).
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import _grid_tasks as tasks  # noqa: E402
from bench.common import (keras_layer, log, machine_info, markdown_table, paired_ratio, setup, summary,  # noqa: E402
                          time_interleaved, write_results)

import rnnkit.nn as rnn  # noqa: E402

I = 32
BATCHES, TIMES, HIDDENS = (1, 16, 64), (50, 200, 1000), (64, 256, 1024)
KINDS = ("LSTM", "GRU", "RNN")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
MAX_FLOPS = 4e10          # LSTM forward FLOPs above which a grid point is skipped (budget)
KERAS_MAX_H, KERAS_MAX_T = 256, 200
QUICK_POINTS = [(16, 50, 64), (64, 50, 256)]


def lstm_flops(b: int, t: int, h: int, i: int = I, gates: int = 4) -> float:
    """Forward FLOPs of one layer over t steps: 2 * gates * B * H * (I + H) per step (8·B·H·(I+H) for LSTM)."""
    return 2.0 * gates * b * h * (i + h) * t


def repeats_for(flops: float) -> tuple[int, int]:
    """(warm-up rounds, timed rounds) for a point: cheap points get 3 timed rounds, costly ones 2
    and no separate warm-up (their first call's set-up cost is small next to the call)."""
    if flops < 2e9:
        return 1, 3
    if flops < 1e10:
        return 1, 2
    return 0, 2


def _train(forward: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for p in params:
            p.grad = None
        forward().sum().backward()
    return run


def _infer(forward: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            forward()
    return run


def cases_for(kind: str, b: int, t: int, h: int, with_keras: bool) -> dict[str, Callable[[], None]]:
    """'<library>|<mode>' -> one unit of work, for one grid point. x: (b, t, I)."""
    torch.manual_seed(0)
    x = torch.randn(b, t, I)
    xg = x.clone().requires_grad_(True)
    ref = getattr(nn, kind)(I, h, batch_first=True)
    ours = getattr(rnn, kind)(I, h, batch_first=True)
    ours.load_state_dict(ref.state_dict())
    cases = {
        "torch.nn|train": _train(lambda: ref(xg)[0], list(ref.parameters()) + [xg]),
        "torch.nn|infer": _infer(lambda: ref(x)[0]),
        "rnnkit|train": _train(lambda: ours(xg)[0], list(ours.parameters()) + [xg]),
        "rnnkit|infer": _infer(lambda: ours(x)[0]),
    }
    k = keras_layer(kind, h, x) if with_keras else None
    if k is not None:
        kparams = [w.value for w in k.weights] + [xg]
        cases["keras|train"] = _train(lambda: k(xg, training=True), kparams)
        cases["keras|infer"] = _infer(lambda: k(x, training=False))
    return cases


def measure_point(kind: str, b: int, t: int, h: int, with_keras: bool, warmup: int, repeats: int) -> list[dict]:
    """Rows (one per mode) for one grid point; ratios are paired per round (> 1: rnnkit faster)."""
    times = time_interleaved(cases_for(kind, b, t, h, with_keras), repeats=repeats, warmup=warmup)
    flops = lstm_flops(b, t, h, gates=GATES[kind])
    rows = []
    for mode, mult in (("train", 3.0), ("infer", 1.0)):  # backward ~ 2x the forward FLOPs
        ours, ref = times[f"rnnkit|{mode}"], times[f"torch.nn|{mode}"]
        row: dict[str, Any] = {
            "kind": kind, "batch": b, "time": t, "hidden": h, "mode": mode, "repeats": repeats,
            "torch_ms": 1e3 * summary(ref)["median_s"], "rnnkit_ms": 1e3 * summary(ours)["median_s"],
            "vs_torch": paired_ratio(ref, ours), "rnnkit_gflops": mult * flops / summary(ours)["median_s"] / 1e9,
            "times_s": {k.split("|")[0]: v for k, v in times.items() if k.endswith(mode)}}
        if f"keras|{mode}" in times:
            row["keras_ms"] = 1e3 * summary(times[f"keras|{mode}"])["median_s"]
            row["vs_keras"] = paired_ratio(times[f"keras|{mode}"], ours)
        rows.append(row)
    return rows


def grid_points(quick: bool) -> tuple[list[tuple[str, int, int, int]], list[dict]]:
    """(points to run, cheapest first; points skipped by the FLOP budget)."""
    if quick:
        return [(k, b, t, h) for b, t, h in QUICK_POINTS for k in KINDS], []
    run, skipped = [], []
    for b, t, h in itertools.product(BATCHES, TIMES, HIDDENS):
        if lstm_flops(b, t, h) > MAX_FLOPS:
            skipped.append({"batch": b, "time": t, "hidden": h, "why": f"LSTM forward {lstm_flops(b, t, h):.2g} "
                            f"FLOPs > budget {MAX_FLOPS:.0e}"})
        else:
            run += [(k, b, t, h) for k in KINDS]
    run.sort(key=lambda p: lstm_flops(p[1], p[2], p[3], gates=GATES[p[0]]) + 2e6 * p[2])  # + per-step overhead
    return run, skipped


def run_grid(quick: bool, budget_s: float) -> tuple[list[dict], list[dict]]:
    points, skipped = grid_points(quick)
    rows: list[dict] = []
    t_start = time.perf_counter()
    for n, (kind, b, t, h) in enumerate(points):
        if time.perf_counter() - t_start > budget_s:
            skipped += [{"kind": k, "batch": bb, "time": tt, "hidden": hh, "why": f"time budget {budget_s:.0f} s used up"}
                        for k, bb, tt, hh in points[n:]]
            log(f"  grid: time budget used up, {len(points) - n} points skipped")
            break
        warmup, repeats = (1, 2) if quick else repeats_for(lstm_flops(b, t, h, gates=GATES[kind]))
        keras = h <= KERAS_MAX_H and t <= KERAS_MAX_T
        log(f"  [{n + 1}/{len(points)}] {kind} B={b} T={t} H={h}{' +keras' if keras else ''} x{repeats}")
        rows += measure_point(kind, b, t, h, keras, warmup, repeats)
    return rows, skipped


def lstm_two_threads(shapes: list[tuple[int, int, int]], repeats: int) -> list[dict]:
    """LSTM inference (rnnkit vs torch.nn) with 2 torch threads at batch 64: GFLOP/s vs the 2-thread peak."""
    torch.set_num_threads(2)
    out = []
    try:
        for b, t, h in shapes:
            cases = {k: v for k, v in cases_for("LSTM", b, t, h, False).items() if k.endswith("infer")}
            times = time_interleaved(cases, repeats=repeats, warmup=1)
            s = summary(times["rnnkit|infer"])["median_s"]
            out.append({"batch": b, "time": t, "hidden": h, "threads": 2, "rnnkit_ms": 1e3 * s,
                        "torch_ms": 1e3 * summary(times["torch.nn|infer"])["median_s"],
                        "vs_torch": paired_ratio(times["torch.nn|infer"], times["rnnkit|infer"]),
                        "rnnkit_gflops": lstm_flops(b, t, h) / s / 1e9})
    finally:
        torch.set_num_threads(1)
    return out


def efficiency(repeats: int, quick: bool = False, n: int = 2048) -> list[dict]:
    """LSTM inference at batch 64 (one thread) as a fraction of the fp32 matmul peak **measured in
    the same round**: each round times the layer and an n x n matmul back to back, so a slow phase
    of the shared machine lowers both; the efficiency is the median of per-round ratios (and, as an
    upper figure, the best layer time against the best matmul time)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    peak_flops = 2.0 * n**3
    shapes = [(64, 50, 256)] if quick else [(64, t, h) for t in TIMES for h in HIDDENS if lstm_flops(64, t, h) <= MAX_FLOPS]
    out = []
    for bb, t, h in shapes:
        cases = {"rnnkit|infer": cases_for("LSTM", bb, t, h, False)["rnnkit|infer"], "peak": lambda: a @ b}
        times = time_interleaved(cases, repeats=repeats, warmup=1)
        fl = lstm_flops(bb, t, h)
        per_round = [(fl / tl) / (peak_flops / tp) for tl, tp in zip(times["rnnkit|infer"], times["peak"])]
        out.append({"batch": bb, "time": t, "hidden": h, "threads": torch.get_num_threads(), "repeats": repeats,
                    "rnnkit_gflops_median": fl / summary(times["rnnkit|infer"])["median_s"] / 1e9,
                    "peak_gflops_median": peak_flops / summary(times["peak"])["median_s"] / 1e9,
                    "efficiency_median": statistics.median(per_round), "efficiency_min": min(per_round),
                    "efficiency_max": max(per_round),
                    "efficiency_best": (fl / min(times["rnnkit|infer"])) / (peak_flops / min(times["peak"])),
                    "times_s": times})
    return out


def _tables(res: dict) -> str:
    rows = res["grid"]
    nan = float("nan")
    t1 = markdown_table(
        ["cell", "B", "T", "H", "mode", "torch.nn ms", "rnnkit ms", "Keras ms", "vs torch.nn", "vs Keras"],
        [[r["kind"], r["batch"], r["time"], r["hidden"], r["mode"], r["torch_ms"], r["rnnkit_ms"],
          r.get("keras_ms", nan), r["vs_torch"], r.get("vs_keras", nan)] for r in rows]) if rows else "(layer grid not run)"
    p1, p2 = res["peak_gflops"]["1_thread"], res["peak_gflops"]["2_thread"]
    lstm64 = [r for r in rows if r["kind"] == "LSTM" and r["batch"] == 64]
    t2 = markdown_table(
        ["LSTM B=64", "T", "H", "mode", "threads", "rnnkit GFLOP/s", "% of peak"],
        [["", r["time"], r["hidden"], r["mode"], 1, r["rnnkit_gflops"], 100 * r["rnnkit_gflops"] / p1] for r in lstm64]
        + [["", r["time"], r["hidden"], "infer", 2, r["rnnkit_gflops"], 100 * r["rnnkit_gflops"] / p2]
           for r in res.get("two_threads", [])])
    parts = [t1, f"fp32 matmul peak: {p1:.1f} GFLOP/s (1 thread), {p2:.1f} GFLOP/s (2 threads)", t2]
    eff = res.get("efficiency")
    if eff:
        parts.append("LSTM inference, batch 64, 1 thread, vs the matmul peak of the same round:\n\n" + markdown_table(
            ["T", "H", "GFLOP/s (median)", "peak GFLOP/s (median)", "% of peak (median of rounds)", "range",
             "% best vs best"],
            [[r["time"], r["hidden"], r["rnnkit_gflops_median"], r["peak_gflops_median"], 100 * r["efficiency_median"],
              f"{100 * r['efficiency_min']:.0f}–{100 * r['efficiency_max']:.0f}", 100 * r["efficiency_best"]]
             for r in eff]))
    tg = res.get("text_generation")
    if tg:
        parts.append(f"Text generation (char LSTM {tg['embed_size']}-{tg['hidden_size']}, vocab {tg['vocab']}, "
                     f"batch 1): {tg['chars_per_s']:.0f} chars/s (median of {len(tg['times_s'])} x {tg['length']} chars)")
    fc = res.get("forecast")
    if fc:
        parts.append(f"Forecast predict, one series (airline, horizon 12): {fc['dataframe']['median_ms']:.1f} ms from a "
                     f"DataFrame, {fc['csv_path']['median_ms']:.1f} ms from the CSV path (medians)")
    dd = res.get("ddp")
    if dd and "speedup_2_vs_1" in dd:
        parts.append(f"DDP (gloo, CPU): {dd['samples_per_s_1proc']:.0f} samples/s with 1 process, "
                     f"{dd['samples_per_s_2proc']:.0f} with 2 ({dd['speedup_2_vs_1']:.2f}x)")
    return "\n\n".join(parts)


PARTS = ("grid", "threads", "efficiency", "tasks", "ddp")


def main(quick: bool = False, budget_s: float | None = None, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    """Run everything (or only ``parts``: a subset of ``PARTS``; the matmul peak is always measured);
    returns (and writes) the results with a Markdown table under ``table``. A subset is written to
    ``bench/results/grid.<parts>.json`` so it never replaces a full run."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    setup(threads=1)
    t0 = time.perf_counter()
    res: dict[str, Any] = {"machine": machine_info(), "quick": quick, "parts": list(parts), "input": I,
                           "max_flops": MAX_FLOPS, "keras_subset": {"max_hidden": KERAS_MAX_H, "max_time": KERAS_MAX_T}}
    log("grid bench: matmul peak (1 and 2 threads)")
    res["peak_gflops"] = tasks.matmul_peaks(n=1024 if quick else 2048, repeats=5 if quick else 10)
    log(f"  peak {res['peak_gflops']}")
    res["grid"], res["skipped"] = ([], [])
    if "grid" in parts:
        res["grid"], res["skipped"] = run_grid(quick, budget_s if budget_s is not None else (30 if quick else 540))
    if "threads" in parts:
        log("  LSTM inference with 2 threads")
        res["two_threads"] = lstm_two_threads([(64, 50, 256)] if quick else [(64, 200, 256), (64, 50, 1024)],
                                              repeats=2 if quick else 3)
    if "efficiency" in parts:
        log("  LSTM inference at batch 64 vs the matmul peak, paired per round")
        res["efficiency"] = efficiency(repeats=2 if quick else 7, quick=quick)
    if "tasks" in parts:
        log("  text generation")
        res["text_generation"] = tasks.text_generation(train_seconds=2 if quick else 5, length=100 if quick else 300,
                                                       chars=20_000 if quick else 60_000)
        log("  forecast predict latency")
        res["forecast"] = tasks.forecast_latency(repeats=5 if quick else 20)
    if "ddp" in parts and quick:
        res["ddp"] = {"skipped": "quick mode (4 torchrun launches take ~1.5 min)"}
    elif "ddp" in parts:
        log("  DDP 1 vs 2 processes")
        res["ddp"] = tasks.ddp_scale()
    res["machine"]["load_avg_1m_end"] = machine_info().get("load_avg_1m")
    res["seconds"] = time.perf_counter() - t0
    res["table"] = _tables(res)
    area = "grid" if set(parts) == set(PARTS) else "grid." + "+".join(p for p in PARTS if p in parts)
    write_results(area, res, quick=quick)
    log(f"  ({res['seconds']:.0f} s)")
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 points, no DDP (about 20 s)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the layer grid (default 540; quick 30)")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma-separated subset of {','.join(PARTS)} (default: all); a subset writes grid.<parts>.json")
    args = ap.parse_args()
    print(main(quick=args.quick, budget_s=args.budget, parts=tuple(s for s in args.parts.split(",") if s))["table"])
