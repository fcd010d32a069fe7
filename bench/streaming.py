"""Benchmark: streaming LSTM inference, one step at a time at batch 1 (input 32, hidden 256).

Full mode repeats the timings at input 256, hidden 1024 (5 MB of fp32 weights: out of L2).

Cases: ``torch.nn.LSTM`` called per step (eager), ``torch.nn.LSTMCell`` (eager),
``rnnkit.nn.LSTM.step``, the functional ``lean_lstm_step`` (what ``LSTM.step`` can call
under no_grad), rnnkit's lean ``StreamingLSTM`` (C step, fp32 / bf16 / int8
weights), torch's dynamic int8 quantisation of ``nn.LSTM`` when available, and the exported
ONNX step graph in onnxruntime. All under ``torch.no_grad``, one thread, interleaved:
every round times ``calls`` consecutive steps of each case; the per-step time of a case
is the median over rounds (the machine is shared; min is reported too); ratios are medians
of per-round ratios.

Accuracy of the smaller weights: max and RMS deviation of the outputs from fp32 over a
500-step stream with random weights, and the test MSE of a small trained sine-wave
predictor (LSTM 1->256, next value) run through each streaming path.

    python bench/streaming.py [--quick]      # or: rnnkit bench --only streaming

Writes ``bench/results/streaming.json`` (``streaming.quick.json`` with --quick).
"""
from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import log, machine_info, markdown_table, paired_ratio, run_quick_script, setup, write_results  # noqa: E402

from rnnkit.nn import LSTM  # noqa: E402
from rnnkit.nn.fast import WEIGHTS, StreamingLSTM, lean_lstm_step  # noqa: E402

I, H = 32, 256
BIG = (256, 1024)  # full mode: 5 MB of fp32 weights, more than this CPU's 2 MB L2


def _cases(layer: LSTM, tmp: Path) -> dict[str, Callable[[], object]]:
    I, H = layer.input_size, layer.hidden_size
    x = torch.randn(1, I)
    ref = nn.LSTM(I, H)
    ref.load_state_dict(layer.state_dict())
    cell = nn.LSTMCell(I, H)
    hs = (torch.zeros(1, 1, H), torch.zeros(1, 1, H))
    st = (torch.zeros(1, H), torch.zeros(1, H))
    state = layer.init_state(1)
    cases: dict[str, Callable[[], object]] = {
        "torch.nn.LSTM per step": lambda: ref(x.unsqueeze(0), hs),
        "torch.nn.LSTMCell": lambda: cell(x, st),
        "rnnkit LSTM.step": lambda: layer.step(x, state),
    }
    if StreamingLSTM(layer).uses_kernel:  # timed under no_grad, where it applies
        cases["lean_lstm_step (functional: state in, state out)"] = lambda: lean_lstm_step(layer, x, state)
    for w in WEIGHTS:
        s = StreamingLSTM(layer, w)
        cases[f"StreamingLSTM {w}" + ("" if s.uses_kernel else " (torch fallback)")] = (lambda s=s: s.step(x))
    try:
        with warnings.catch_warnings():  # deprecated in favour of torchao, still works in torch 2.13
            warnings.simplefilter("ignore")
            q = torch.ao.quantization.quantize_dynamic(ref, {nn.LSTM}, dtype=torch.qint8)
        q(x.unsqueeze(0), hs)
        cases["torch quantize_dynamic int8 nn.LSTM"] = lambda: q(x.unsqueeze(0), hs)
    except Exception as exc:  # noqa: BLE001 - optional comparison only
        log(f"torch dynamic quantisation unavailable: {exc}")
    try:
        from rnnkit.export import _session, export, layer_specs

        export(layer_specs(layer)["step"], tmp / "step.onnx")
        sess = _session(tmp / "step.onnx")
        feed = {"x_t": x.numpy(), "h": torch.zeros(1, 1, H).numpy(), "c": torch.zeros(1, 1, H).numpy()}
        cases["onnxruntime step graph"] = lambda: sess.run(None, feed)
    except ImportError as exc:
        log(f"onnxruntime unavailable: {exc}")
    return cases


def _time(cases: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, list[float]]:
    """Microseconds per step of each case, one value per round."""
    per: dict[str, list[float]] = {k: [] for k in cases}
    names = list(cases)
    with torch.no_grad():
        for f in cases.values():
            for _ in range(50):
                f()
        for r in range(rounds):
            for n in names[r % len(names):] + names[:r % len(names)]:
                f = cases[n]
                t0 = time.perf_counter()
                for _ in range(calls):
                    f()
                per[n].append((time.perf_counter() - t0) / calls * 1e6)
    return per


def _accuracy(layer: LSTM, steps: int = 500) -> dict[str, dict[str, float]]:
    """Output deviation from fp32 (random weights, N(0,1) inputs)."""
    xs = torch.randn(steps, 1, layer.input_size)
    outs = {}
    for w in WEIGHTS:
        s = StreamingLSTM(layer, w)
        outs[w] = torch.stack([s.step(x) for x in xs])
    return {w: {"max_abs": float((outs[w] - outs["fp32"]).abs().max()),
                "rms": float((outs[w] - outs["fp32"]).pow(2).mean().sqrt())} for w in WEIGHTS[1:]}


def _sine_task(quick: bool) -> dict[str, float]:
    """Train LSTM(1->256)+Linear to predict the next value of noisy sines; test MSE per path."""
    torch.manual_seed(0)
    T = 60

    def batch(n):
        t = torch.arange(T + 1).float()
        freq = torch.rand(n, 1) * 0.3 + 0.05
        phase = torch.rand(n, 1) * 2 * math.pi
        s = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, T + 1)
        return s[:, :-1, None], s[:, 1:, None]

    rnn, head = LSTM(1, H, batch_first=True), nn.Linear(H, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=3e-3)
    for _ in range(60 if quick else 200):
        x, y = batch(32)
        loss = nn.functional.mse_loss(head(rnn(x)[0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch(64)
    res = {}
    with torch.no_grad():
        res["torch forward fp32"] = float(nn.functional.mse_loss(head(rnn(x)[0]), y))
        for w in WEIGHTS:
            s = StreamingLSTM(rnn, w)
            s.reset(64)
            pred = torch.stack([head(s.step(x[:, t])) for t in range(T)], 1)
            res[f"StreamingLSTM {w}"] = float(nn.functional.mse_loss(pred, y))
    return res


def main(quick: bool = False) -> dict:
    setup(1)
    torch.manual_seed(0)
    rounds, calls = (10, 100) if quick else (30, 300)
    rows = []
    for i, h in [(I, H)] + ([] if quick else [BIG]):
        layer = LSTM(i, h).eval()
        with tempfile.TemporaryDirectory() as tmp:
            cases = _cases(layer, Path(tmp))
            log(f"streaming bench: {len(cases)} cases, {rounds} rounds x {calls} steps, batch 1, I={i} H={h}")
            times = _time(cases, rounds, calls)
        lstm, cellt = times["torch.nn.LSTM per step"], times["torch.nn.LSTMCell"]
        # ratios: median over rounds of the per-round ratio (same load on both sides)
        rows += [{"shape": f"I={i} H={h}", "case": k, "median_us": statistics.median(v), "min_us": min(v),
                  "x_nn_LSTM": paired_ratio(v, lstm), "x_LSTMCell": paired_ratio(v, cellt)} for k, v in times.items()]
    layer = LSTM(I, H).eval()
    acc = _accuracy(layer)
    task = _sine_task(quick)
    table = markdown_table(["shape", "case", "us/step (median)", "us/step (min)", "÷ nn.LSTM", "÷ LSTMCell"],
                           [[r["shape"], r["case"], r["median_us"], r["min_us"], r["x_nn_LSTM"], r["x_LSTMCell"]]
                            for r in rows])
    table += "\n\n" + markdown_table(["weights", "max |y - y_fp32|", "RMS"],
                                     [[w, v["max_abs"], v["rms"]] for w, v in acc.items()])
    table += "\n\n" + markdown_table(["sine predictor path", "test MSE"], [[k, v] for k, v in task.items()])
    out = {"area": "streaming", "quick": quick, "batch": 1,
           "machine": machine_info(), "rows": rows, "accuracy_vs_fp32": acc, "sine_task_mse": task, "table": table}
    write_results("streaming", out, quick=quick)
    return out


if __name__ == "__main__":
    run_quick_script(main, __doc__)
