"""Benchmark: a user-written LSTM-equivalent cell through the generic runner vs the fused kernel.

Shape of issue 8 / DESIGN.md: batch 64, 100 steps, 32 inputs, 256 hidden, float32, one
thread; training = forward + backward of ``y.sum()``, inference = forward under no_grad.

Cases (same weights):
- ``torch.nn.LSTM`` (fused ATen kernel): the reference;
- ``Recurrent(UserLSTM)``: a plain ``Cell`` subclass with ``project_input`` (the runner does
  the input matmul for all steps at once, then a Python loop of small ops per step);
- ``Recurrent(UserLSTM, no project_input)``: the same cell without the hoisting;
- ``TorchScript loop``: the whole recurrence scripted (``torch.jit.script``);
- ``torch.compile step`` (only with ``--compile``: compiling takes ~1 minute here): the
  cell's pointwise maths compiled by Inductor, the loop in Python.

    python bench/custom_cell.py [--quick] [--compile]   # or: rnnkit bench --only custom_cell

Writes ``bench/results/custom_cell.json`` (``custom_cell.quick.json`` with --quick).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (log, machine_info, markdown_table, paired_ratio, setup, summary,  # noqa: E402
                          time_interleaved, write_results)

from rnnkit.nn import Cell, Recurrent  # noqa: E402

B, T, I, H = 64, 100, 32, 256


def lstm_pointwise(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class UserLSTM(Cell):
    """What a user would write: two Linear layers and the LSTM equations."""

    def __init__(self, input_size: int, hidden_size: int, hoist: bool = True, pointwise=lstm_pointwise):
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.state_sizes = (hidden_size, hidden_size)
        self.ih, self.hh = nn.Linear(input_size, 4 * hidden_size), nn.Linear(hidden_size, 4 * hidden_size)
        self.hoist, self.pointwise = hoist, pointwise

    def project_input(self, x: Tensor) -> Tensor:
        return self.ih(x) if self.hoist else x

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        xp = x_t if self.hoist else self.ih(x_t)
        h, c = self.pointwise(xp + self.hh(state[0]), state[1])
        return h, (h, c)


def _loop(xp: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    outs: list[Tensor] = []
    for x_t in xp.unbind(0):
        i, f, g, o = (torch.addmm(b_hh, h, w_hh.t()) + x_t).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs)


def _load_from(cell: UserLSTM, ref: nn.LSTM) -> None:
    with torch.no_grad():
        cell.ih.weight.copy_(ref.weight_ih_l0)
        cell.ih.bias.copy_(ref.bias_ih_l0)
        cell.hh.weight.copy_(ref.weight_hh_l0)
        cell.hh.bias.copy_(ref.bias_hh_l0)


def _cases(x: Tensor, compile_: bool) -> dict[str, tuple[Callable[[], Tensor], list]]:
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, batch_first=True)
    cells = {"Recurrent(UserLSTM)": UserLSTM(I, H), "Recurrent(UserLSTM, no project_input)": UserLSTM(I, H, hoist=False)}
    out: dict[str, tuple[Callable[[], Tensor], list]] = {"torch.nn.LSTM (fused)": (lambda: ref(x)[0], list(ref.parameters()))}
    for name, cell in cells.items():
        _load_from(cell, ref)
        rec = Recurrent(cell, batch_first=True)
        out[name] = (lambda rec=rec: rec(x)[0], list(rec.parameters()))
    ts_cell = UserLSTM(I, H)
    _load_from(ts_cell, ref)
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13; measured for the record
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(_loop)

    def ts_forward() -> Tensor:
        z = x.new_zeros(B, H)
        return scripted(ts_cell.ih(x.transpose(0, 1)), z, z, ts_cell.hh.weight, ts_cell.hh.bias).transpose(0, 1)

    out["TorchScript loop"] = (ts_forward, list(ts_cell.parameters()))
    if compile_:
        comp = UserLSTM(I, H, pointwise=torch.compile(lstm_pointwise, dynamic=False))
        _load_from(comp, ref)
        rec_c = Recurrent(comp, batch_first=True)
        t0 = time.perf_counter()
        rec_c(x)[0].sum().backward()
        log(f"torch.compile: first call (compilation) {time.perf_counter() - t0:.1f} s")
        out["torch.compile step"] = (lambda: rec_c(x)[0], list(rec_c.parameters()))
    return out


def main(quick: bool = False, compile_: bool = False) -> dict:
    setup(1)
    x = torch.randn(B, T, I)
    cases = _cases(x, compile_)
    ref_y = cases["torch.nn.LSTM (fused)"][0]().detach()
    parity = {k: float((f().detach() - ref_y).abs().max()) for k, (f, _) in cases.items()}
    flat: dict[str, Callable[[], None]] = {}
    for name, (fwd, params) in cases.items():
        def train(fwd=fwd, params=params) -> None:
            for p in params:
                p.grad = None
            fwd().sum().backward()

        def infer(fwd=fwd) -> None:
            with torch.no_grad():
                fwd()

        flat[f"{name}|train"], flat[f"{name}|infer"] = train, infer
    repeats = 3 if quick else 9
    log(f"custom_cell bench: B={B} T={T} I={I} H={H}, {len(flat)} cases x {repeats} repeats")
    times = time_interleaved(flat, repeats=repeats, warmup=1)
    res = {k: summary(v) for k, v in times.items()}
    ref = "torch.nn.LSTM (fused)"
    # ratios: median over rounds of (case time / fused time) in the same round
    rows = [{"case": n, "train_ms": res[f"{n}|train"]["median_s"] * 1e3,
             "train_x_fused": paired_ratio(times[f"{n}|train"], times[f"{ref}|train"]),
             "infer_ms": res[f"{n}|infer"]["median_s"] * 1e3,
             "infer_x_fused": paired_ratio(times[f"{n}|infer"], times[f"{ref}|infer"]),
             "max_abs_diff_vs_fused": parity[n]} for n in cases]
    table = markdown_table(["case", "train ms", "train ÷ fused", "infer ms", "infer ÷ fused", "max |y - y_fused|"],
                           [[r["case"], r["train_ms"], r["train_x_fused"], r["infer_ms"], r["infer_x_fused"],
                             r["max_abs_diff_vs_fused"]] for r in rows])
    out = {"area": "custom_cell", "quick": quick, "shape": {"batch": B, "time": T, "input": I, "hidden": H},
           "machine": machine_info(), "repeats": repeats, "rows": rows, "table": table}
    path = write_results("custom_cell", out, quick=quick)
    log(f"wrote {path}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    a = ap.parse_args()
    print(main(a.quick, a.compile)["table"])
