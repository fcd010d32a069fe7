"""Benchmark: minGRU/minLSTM training (parallel scan) vs a sequential torch.nn.GRU.

Shape from issue 8: batch 16, 1024 steps, 256 inputs, 256 hidden ("equal width"), float32,
one thread. Training = forward + backward of ``(y * G).sum()`` with a fixed random G (a
dense upstream gradient, as a real head gives), parameter gradients on, input without
gradient (a first layer). Inference = forward under ``torch.no_grad``. All cases run
interleaved in one process (bench.common.time_interleaved); speed-ups are medians over
rounds of the per-round ratio GRU time / case time (bench.common.paired_ratio).

Scans compared: ``fused`` (one C pass forward and one backward, rnnkit.nn.kernels), ``log``
(the paper's log-space scan in plain torch ops), ``chunked`` (linear space, chunks of 32).
The "floor" row runs minGRU's input projection alone (matmul forward + weight gradient from
a ready-made dense gradient): no scan can make minGRU training faster than that on this CPU.
Accuracy beside LSTM/GRU: the same small classifier with each cell on UEA JapaneseVowels.
The bf16 rows run both models under ``torch.autocast("cpu", torch.bfloat16)`` (AMX matmuls
on CPUs that have them; minGRU scans in fp32).

    python bench/mingru.py [--quick] [--threads N]     # or: rnnkit bench --only mingru

Writes ``bench/results/mingru.json`` (``mingru.quick.json`` with --quick;
``mingru_threads2.json`` with --threads 2).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (log, machine_info, markdown_table, paired_ratio, setup, summary,  # noqa: E402
                          time_interleaved, write_results)

from rnnkit.nn import kernels  # noqa: E402
from rnnkit.nn.scan import MinGRU, MinLSTM  # noqa: E402

B, I, H = 16, 256, 256
FLOOR = "floor: Linear(I, 2H) alone"


def _cases(T: int) -> dict[str, tuple[nn.Module, str]]:
    """name -> (model, precision)."""
    torch.manual_seed(0)
    cases: dict[str, tuple[nn.Module, str]] = {"torch.nn.GRU": (nn.GRU(I, H, batch_first=True), "fp32")}
    scans = (["fused"] if kernels.available() else []) + ["chunked", "log"]
    for s in scans:
        cases[f"minGRU {s}"] = (MinGRU(I, H, batch_first=True, scan=s), "fp32")
    if kernels.available():
        cases["minLSTM fused"] = (MinLSTM(I, H, batch_first=True, scan="fused"), "fp32")
    # the floor of minGRU training: its input projection alone (see _floor)
    cases[FLOOR] = (nn.Linear(I, 2 * H), "fp32")
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        cases["torch.nn.GRU bf16"] = (nn.GRU(I, H, batch_first=True), "bf16")
        cases[f"minGRU {scans[0]} bf16"] = (MinGRU(I, H, batch_first=True, scan=scans[0]), "bf16")
    return cases


def _ctx(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _train(model: nn.Module, precision: str, x: torch.Tensor, G: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        for p in model.parameters():
            p.grad = None
        with _ctx(precision):
            y = model(x)[0]
        (y.float() * G).sum().backward()
    return run


def _floor(lin: nn.Linear, x: torch.Tensor) -> Callable[[], None]:
    """Forward matmul and weight gradient of minGRU's projection, fed a ready-made dense
    gradient: every minGRU training step does at least this."""
    G2 = torch.randn(B, x.shape[1], 2 * H)

    def run() -> None:
        for p in lin.parameters():
            p.grad = None
        lin(x).backward(G2)
    return run


def _infer(model: nn.Module, precision: str, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad(), _ctx(precision):
            model(x)  # the floor case: the projection alone
    return run


def accuracy(quick: bool, seeds: int = 2) -> list[dict]:
    """Same small classifier with each cell on UEA JapaneseVowels (shipped, official split):
    2 recurrent layers of 64, the output at each sequence's last real step -> Linear; Adam 3e-3,
    batch 32, the same number of epochs for every cell; test accuracy, mean over seeds."""
    from rnnkit.data.uea import load_uea
    from rnnkit.nn.registry import make_layer

    tr, te = load_uea("JapaneseVowels", "train"), load_uea("JapaneseVowels", "test")
    labels = {c: i for i, c in enumerate(tr.class_labels)}
    real = np.arange(tr.X.shape[1])[None, :] < tr.lengths[:, None]
    mu, sd = tr.X[real].mean(0), tr.X[real].std(0) + 1e-6  # statistics of real steps only

    def tensors(d):
        X = (d.X - mu) / sd * (np.arange(d.X.shape[1])[None, :, None] < d.lengths[:, None, None])
        return (torch.tensor(X, dtype=torch.float32), torch.tensor(d.lengths),
                torch.tensor([labels[c] for c in d.y]))

    (Xtr, Ltr, ytr), (Xte, Lte, yte) = tensors(tr), tensors(te)
    epochs, rows = (15 if quick else 60), []
    for cell in ("lstm", "gru", "mingru", "minlstm"):
        accs, secs = [], []
        for seed in range(1 if quick else seeds):
            torch.manual_seed(seed)
            rnn = make_layer(cell, Xtr.shape[2], 64, num_layers=2, batch_first=True)
            head = nn.Linear(64, len(labels))
            opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=3e-3)

            def logits(X, L):
                y, _ = rnn(X, lengths=L)
                return head(y[torch.arange(X.shape[0]), L - 1])

            t0 = time.perf_counter()
            for _ in range(epochs):
                for idx in torch.randperm(len(ytr)).split(32):
                    loss = nn.functional.cross_entropy(logits(Xtr[idx], Ltr[idx]), ytr[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            secs.append(time.perf_counter() - t0)
            with torch.no_grad():
                accs.append(float((logits(Xte, Lte).argmax(1) == yte).float().mean()))
        rows.append({"cell": cell, "test_accuracy": float(np.mean(accs)), "accuracies": accs,
                     "train_s": float(np.mean(secs)), "epochs": epochs})
        log(f"JapaneseVowels {cell}: accuracy {np.mean(accs):.3f}, {np.mean(secs):.1f} s")
    return rows


def main(quick: bool = False, threads: int = 1) -> dict:
    setup(threads)
    T = 256 if quick else 1024
    repeats = 3 if quick else 7
    x = torch.randn(B, T, I)
    G = torch.randn(B, T, H)
    cases = _cases(T)
    flat: dict[str, Callable[[], None]] = {}
    for name, (model, prec) in cases.items():
        flat[f"{name}|train"] = _floor(model, x) if name == FLOOR else _train(model, prec, x, G)
        flat[f"{name}|infer"] = _infer(model, prec, x)
    log(f"mingru bench: B={B} T={T} I={I} H={H}, {len(flat)} cases x {repeats} repeats, {threads} thread(s)")
    times = time_interleaved(flat, repeats=repeats, warmup=1)
    res = {k: summary(v) for k, v in times.items()}
    rows = []
    for name, (_, prec) in cases.items():
        tr, inf = res[f"{name}|train"], res[f"{name}|infer"]
        # speed-up = median over rounds of (GRU time / case time) in the same round
        rows.append({"case": name, "precision": prec,
                     "train_ms": tr["median_s"] * 1e3,
                     "train_speedup_vs_gru": paired_ratio(times["torch.nn.GRU|train"], times[f"{name}|train"]),
                     "infer_ms": inf["median_s"] * 1e3,
                     "infer_speedup_vs_gru": paired_ratio(times["torch.nn.GRU|infer"], times[f"{name}|infer"]),
                     "train_min_ms": tr["min_s"] * 1e3, "train_max_ms": tr["max_s"] * 1e3})
    table = markdown_table(
        ["case", "train ms", "train x GRU fp32", "infer ms", "infer x GRU fp32"],
        [[r["case"], r["train_ms"], r["train_speedup_vs_gru"], r["infer_ms"], r["infer_speedup_vs_gru"]] for r in rows])
    acc = accuracy(quick)
    table += "\n\n" + markdown_table(["cell (JapaneseVowels, 2x64)", "test accuracy", "train s"],
                                     [[r["cell"], r["test_accuracy"], r["train_s"]] for r in acc])
    out = {"area": "mingru", "quick": quick, "threads": threads, "japanese_vowels": acc,
           "shape": {"batch": B, "time": T, "input": I, "hidden": H},
           "machine": machine_info(), "repeats": repeats, "rows": rows, "table": table}
    write_results("mingru" if threads == 1 else f"mingru_threads{threads}", out, quick=quick)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    print(main(a.quick, a.threads)["table"])
