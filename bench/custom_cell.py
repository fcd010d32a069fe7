"""Benchmark: a user-written LSTM-equivalent cell through the generic runner vs the fused kernel.

Shape of issue 8 / DESIGN.md: batch 64, 100 steps, 32 inputs, 256 hidden, float32, one
thread; training = forward + backward of ``y.sum()``, inference = forward under no_grad.

Cases (same weights):
- ``torch.nn.LSTM`` (fused ATen/oneDNN kernel): the reference;
- ``Recurrent(UserLSTM)``: a plain ``Cell`` subclass with ``project_input`` (the runner does
  the input matmul outside the per-step loop, then a Python loop of small ops per step);
- ``Recurrent(UserLSTM, no project_input)``: the same cell without the hoisting;
- ``previous loop``: the same layer through the runner's autograd loop with nothing requiring
  grad (what inference ran before its own loop: outputs in a list, then stacked);
- ``TorchScript loop``: the whole recurrence scripted (``torch.jit.script``);
- ``floor`` rows (inference only): the recurrent matmul alone as the user's ``nn.Linear``
  runs it (100 x ``addmm(b, h, W^T)``), and the cell loop without projection or outputs;
- ``Recurrent(UserLSTM, compile=True)`` (only with ``--compile``, inference only, ~10-60 s to
  compile): the whole recurrence as one Inductor-compiled scan (``rnnkit.nn.compiled``), the
  input projection inside it per step, the linears from MKL-packed weights; the JSON's
  ``compile_s`` also holds the recompile after a weight update (~2 s).

    python bench/custom_cell.py [--quick] [--compile]   # or: rnnkit bench --only custom_cell

Writes ``bench/results/custom_cell.json`` (``custom_cell.quick.json`` with --quick).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (log, machine_info, markdown_table, paired_ratio, setup, summary,  # noqa: E402
                          time_interleaved, write_results)

from rnnkit.nn import Cell, Recurrent  # noqa: E402

B, T, I, H = 64, 100, 32, 256
COMPILE_S: dict[str, float] = {}  # first-call (compilation) seconds of compiled cases


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


class Case(NamedTuple):
    fwd: Callable[[], Tensor]
    params: list
    train: bool = True  # also timed with a backward pass
    output: bool = True  # returns y comparable with the fused layer's


def _cases(x: Tensor, compile_: bool) -> dict[str, Case]:
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, batch_first=True)
    cells = {"Recurrent(UserLSTM)": UserLSTM(I, H), "Recurrent(UserLSTM, no project_input)": UserLSTM(I, H, hoist=False)}
    out: dict[str, Case] = {"torch.nn.LSTM (fused)": Case(lambda: ref(x)[0], list(ref.parameters()))}
    for name, cell in cells.items():
        _load_from(cell, ref)
        rec = Recurrent(cell, batch_first=True)
        out[name] = Case(lambda rec=rec: rec(x)[0], list(rec.parameters()))
    # The loop inference took before its own path: the autograd loop (outputs in a list, then
    # stacked) with nothing requiring grad, so no graph is built; the same layer code otherwise.
    prev = UserLSTM(I, H).requires_grad_(False)
    _load_from(prev, ref)
    rec_prev = Recurrent(prev, batch_first=True)

    def prev_forward() -> Tensor:
        with torch.enable_grad():
            return rec_prev(x)[0]

    out["Recurrent(UserLSTM), previous loop (list + stack)"] = Case(prev_forward, [], train=False)
    ts_cell = UserLSTM(I, H)
    _load_from(ts_cell, ref)
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13; measured for the record
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(_loop)

    def ts_forward() -> Tensor:
        z = x.new_zeros(B, H)
        return scripted(ts_cell.ih(x.transpose(0, 1)), z, z, ts_cell.hh.weight, ts_cell.hh.bias).transpose(0, 1)

    out["TorchScript loop"] = Case(ts_forward, list(ts_cell.parameters()))
    hh = cells["Recurrent(UserLSTM)"].hh
    h0 = x.new_zeros(B, H)
    xp0 = cells["Recurrent(UserLSTM)"].project_input(x.transpose(0, 1).contiguous()).detach()

    def matmul_floor() -> Tensor:
        h = h0
        for _ in range(T):
            h = hh(h)[:, :H]  # depends on the previous step, as the recurrence does
        return h

    def cell_floor() -> Tensor:
        state: tuple[Tensor, ...] = (h0, h0)
        for x_t in xp0.unbind(0):
            _, state = cells["Recurrent(UserLSTM)"](x_t, state)
        return state[0]

    out["floor: recurrent nn.Linear alone (100 addmm)"] = Case(matmul_floor, [], train=False, output=False)
    out["floor: cell steps alone (no projection, no outputs)"] = Case(cell_floor, [], train=False, output=False)
    if compile_:
        comp = UserLSTM(I, H)
        _load_from(comp, ref)
        rec_c = Recurrent(comp, batch_first=True, compile=True)
        t0 = time.perf_counter()
        with torch.no_grad():
            rec_c(x)
        COMPILE_S["Recurrent(UserLSTM, compile=True)"] = time.perf_counter() - t0
        log(f"Recurrent(compile=True): first call (compilation) {COMPILE_S['Recurrent(UserLSTM, compile=True)']:.1f} s")
        with torch.no_grad():  # a weight update (as an optimizer step): the packed weights make it recompile
            comp.hh.weight.mul_(1.0)
            t0 = time.perf_counter()
            rec_c(x)
        COMPILE_S["Recurrent(UserLSTM, compile=True), first call after a weight update"] = time.perf_counter() - t0
        log(f"Recurrent(compile=True): first call after a weight update (recompilation) {time.perf_counter() - t0:.1f} s")
        out["Recurrent(UserLSTM, compile=True)"] = Case(lambda: rec_c(x)[0], list(rec_c.parameters()))
    return out


def main(quick: bool = False, compile_: bool = False) -> dict:
    setup(1)
    x = torch.randn(B, T, I)
    cases = _cases(x, compile_)
    ref = "torch.nn.LSTM (fused)"
    with torch.no_grad():
        ref_y = cases[ref].fwd()
        parity = {k: float((c.fwd() - ref_y).abs().max()) if c.output else float("nan") for k, c in cases.items()}
    flat: dict[str, Callable[[], None]] = {}
    for name, case in cases.items():
        def train(fwd=case.fwd, params=case.params) -> None:
            for p in params:
                p.grad = None
            fwd().sum().backward()

        def infer(fwd=case.fwd) -> None:
            with torch.no_grad():
                fwd()

        if case.train:
            flat[f"{name}|train"] = train
        flat[f"{name}|infer"] = infer
    repeats = 3 if quick else 9
    log(f"custom_cell bench: B={B} T={T} I={I} H={H}, {len(flat)} cases x {repeats} repeats")
    times = time_interleaved(flat, repeats=repeats, warmup=1)
    res = {k: summary(v) for k, v in times.items()}
    nan = float("nan")

    def ratio(n: str, mode: str) -> float:
        return paired_ratio(times[f"{n}|{mode}"], times[f"{ref}|{mode}"]) if f"{n}|{mode}" in times else nan

    # ratios: median over rounds of (case time / fused time) in the same round; spread = min/max of them
    rows = []
    for n in cases:
        infer_r = [a / b for a, b in zip(times[f"{n}|infer"], times[f"{ref}|infer"])]
        rows.append({"case": n, "train_ms": res[f"{n}|train"]["median_s"] * 1e3 if cases[n].train else nan,
                     "train_x_fused": ratio(n, "train"), "infer_ms": res[f"{n}|infer"]["median_s"] * 1e3,
                     "infer_x_fused": ratio(n, "infer"), "infer_x_fused_min": min(infer_r),
                     "infer_x_fused_max": max(infer_r), "max_abs_diff_vs_fused": parity[n]})
    table = markdown_table(["case", "train ms", "train ÷ fused", "infer ms", "infer ÷ fused", "(min–max over rounds)",
                            "max |y - y_fused|"],
                           [[r["case"], r["train_ms"], r["train_x_fused"], r["infer_ms"], r["infer_x_fused"],
                             f"{r['infer_x_fused_min']:.2f}–{r['infer_x_fused_max']:.2f}", r["max_abs_diff_vs_fused"]]
                            for r in rows])
    out = {"area": "custom_cell", "quick": quick, "shape": {"batch": B, "time": T, "input": I, "hidden": H},
           "machine": machine_info(), "repeats": repeats, "rows": rows, "table": table,
           "compile_s": COMPILE_S, "times_s": times}
    write_results("custom_cell", out, quick=quick)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    a = ap.parse_args()
    print(main(a.quick, a.compile)["table"])
