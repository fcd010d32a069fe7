"""onnxruntime vs PyTorch inference latency for task models exported by ``rnnkit export``.

Cases (one CPU thread each, round-robin in one process, ratios = medians of per-round ratios):
- classifier (character GRU, names-by-language size: embed 32, hidden 64): the network alone
  at batch 1 (a 9-character name) and batch 64 (names of 3..20 characters, padded), and
  ``predict_proba`` end to end (encoding + network + softmax) for one name;
- character language model (LSTM, 2 layers, hidden 256): one streaming step at batch 1
  (``LanguageModel.step`` vs the exported ``step`` graph) and ``generate`` of 100 characters.

Run: ``python bench/export.py [--quick]`` (or ``rnnkit bench --only export``). Writes
``bench/results/export.json`` (``export.quick.json`` with --quick).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import log, machine_info, markdown_table, paired_ratio, run_quick_script, setup, time_interleaved, write_results  # noqa: E402

NAMES = ["anna", "marco", "giulia", "paolo", "francesca", "smith", "john", "william", "elizabeth", "thompson",
         "hans", "schmidt", "wolfgang", "krueger", "baecker", "nakamura", "tanaka", "suzuki", "ivanov", "petrov"]
LABELS = ["it"] * 5 + ["en"] * 5 + ["de"] * 5 + ["ja"] * 3 + ["ru"] * 2
TEXT = "the quick brown fox jumps over the lazy dog.\nsphinx of black quartz, judge my vow.\n" * 20


def _repeat(fn: Callable[[], Any], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()
    return run


Cases = dict[str, tuple[int, dict[str, Callable[[], Any]]]]  # name -> (calls per round, {path: one round})


def _classifier_cases(tmp: Path, quick: bool) -> Cases:
    from rnnkit.export import export_model
    from rnnkit.onnx_runtime import load_onnx
    from rnnkit.tasks.classify.task import SequenceClassifier

    clf = SequenceClassifier(cell="gru", hidden_size=64, embed_size=32, epochs=1, batch_size=8, val_fraction=0.0,
                             progress=False, device="cpu", seed=0).fit(NAMES, LABELS)
    clf.save(tmp / "clf")
    export_model(tmp / "clf", tmp / "clf.onnx")  # what `rnnkit export` runs
    fast = load_onnx(tmp / "clf", tmp / "clf.onnx")
    g = torch.Generator().manual_seed(0)
    V = len(clf.vocab)
    x1, l1 = torch.randint(1, V, (1, 9), generator=g), torch.tensor([9])
    l64 = torch.randint(3, 21, (64,), generator=g)
    l64[0] = 20
    x64 = torch.randint(1, V, (64, 20), generator=g) * (torch.arange(20)[None] < l64[:, None])
    n = 20 if quick else 50
    cases: Cases = {}
    for name, (x, lengths, reps) in {"classifier net, batch 1, T=9": (x1, l1, n),
                                     "classifier net, batch 64, T<=20": (x64, l64, max(2, n // 10))}.items():
        def torch_call(x=x, lengths=lengths) -> None:
            with torch.no_grad():
                clf.network(x, lengths)
        cases[name] = (reps, {"torch": _repeat(torch_call, reps),
                              "onnxruntime": _repeat(lambda x=x, l=lengths: fast.network(x, l), reps)})
    cases["classifier predict_proba, 1 name"] = (n, {"torch": _repeat(lambda: clf.predict_proba(["wolfgang"]), n),
                                                     "onnxruntime": _repeat(lambda: fast.predict_proba(["wolfgang"]), n)})
    # the two paths agree (what the timings compare is the same computation)
    np.testing.assert_allclose(fast.predict_proba(NAMES), clf.predict_proba(NAMES), atol=1e-4)
    return cases


def _text_cases(tmp: Path, quick: bool) -> Cases:
    from rnnkit.export import export_model
    from rnnkit.onnx_runtime import load_onnx
    from rnnkit.tasks.text.task import TextModel

    m = TextModel(level="char", cell="lstm", hidden_size=256, embed_size=64, num_layers=2, bptt=32, batch_size=8,
                  dropout=0.0)
    m.fit(TEXT, epochs=1, patience=None, device="cpu", progress=False)
    m.save(tmp / "lm")
    export_model(tmp / "lm", tmp / "lm_step.onnx", graph="step")
    fast = load_onnx(tmp / "lm", tmp / "lm_step.onnx")
    tok = torch.tensor([3])
    state_t = [None]
    state_o = [None]

    def torch_step() -> None:
        with torch.no_grad():
            _, state_t[0] = m.network.step(tok, state_t[0])

    def onnx_step() -> None:
        _, state_o[0] = fast.network.step(tok, state_o[0])

    n = 100 if quick else 300
    gen = 30 if quick else 100
    assert fast.generate("the ", length=gen, temperature=0) == m.generate("the ", length=gen, temperature=0)
    return {"char LM step (LSTM 2x256), batch 1": (n, {"torch": _repeat(torch_step, n),
                                                       "onnxruntime": _repeat(onnx_step, n)}),
            f"char LM generate {gen} chars": (1, {"torch": lambda: m.generate("the ", length=gen, seed=0),
                                                  "onnxruntime": lambda: fast.generate("the ", length=gen, seed=0)})}


def main(quick: bool = False) -> dict:
    setup(1)
    rounds = 5 if quick else 15
    rows = []
    with tempfile.TemporaryDirectory() as d:
        groups = {**_classifier_cases(Path(d), quick), **_text_cases(Path(d), quick)}
        for name, (reps, cases) in groups.items():
            log(f"export bench: {name}, {rounds} rounds")
            times = time_interleaved(cases, rounds)
            per = {k: [t / reps * 1e6 for t in v] for k, v in times.items()}  # us per call
            rows.append({"case": name, "torch_us": statistics.median(per["torch"]),
                         "onnxruntime_us": statistics.median(per["onnxruntime"]),
                         "onnx_over_torch": paired_ratio(per["onnxruntime"], per["torch"]),
                         "torch_min_us": min(per["torch"]), "onnxruntime_min_us": min(per["onnxruntime"])})
    table = markdown_table(["case", "torch µs/call (median)", "onnxruntime µs/call (median)", "onnxruntime ÷ torch"],
                           [[r["case"], r["torch_us"], r["onnxruntime_us"], r["onnx_over_torch"]] for r in rows])
    out = {"area": "export", "quick": quick, "machine": machine_info(), "threads": 1, "rows": rows, "table": table}
    write_results("export", out, quick=quick)
    return out


if __name__ == "__main__":
    run_quick_script(main, __doc__)
