"""Benchmark: what the CPU training path (rnnkit/nn/cpu_train.py) gives a real task.

``SequenceClassifier`` on the shipped names data (char level, bidirectional GRU and LSTM of 128,
batches of 32 names with their lengths), trained for a fixed number of epochs with the path on
and off (``cpu_train.fast_train_ok`` forced False = torch's packed-sequence kernels), one thread,
the two settings alternating over repeats. Same seed, so both train the same model (equal up to
float rounding). Layer-level numbers are in ``bench/layers.py``.

    python bench/train_path.py [--quick]     # or: rnnkit bench --only train_path

Writes ``bench/results/train_path.json`` (``train_path.quick.json`` with --quick).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import log, machine_info, markdown_table, run_quick_script, setup, write_results  # noqa: E402
from rnnkit.data.names import load_names  # noqa: E402
from rnnkit.nn import cpu_train  # noqa: E402
from rnnkit.tasks.classify.task import SequenceClassifier  # noqa: E402


def _fit_seconds(names: list[str], labels: list[str], cell: str, epochs: int, on: bool) -> float:
    real = cpu_train.fast_train_ok
    cpu_train.fast_train_ok = real if on else (lambda *a, **k: False)
    try:
        t = time.perf_counter()
        SequenceClassifier(cell=cell, hidden_size=128, bidirectional=True, epochs=epochs, patience=epochs,
                           progress=False, seed=0).fit(names, labels)
        return time.perf_counter() - t
    finally:
        cpu_train.fast_train_ok = real


def main(quick: bool = False) -> dict[str, Any]:
    setup(threads=1)
    pairs = load_names()
    names, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    epochs, repeats = (1, 1) if quick else (2, 2)
    rows = []
    for cell in ("gru", "lstm"):
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(repeats):
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                times[on].append(_fit_seconds(names, labels, cell, epochs, on))
                log(f"  {cell} path={'on' if on else 'off'}: {times[on][-1]:.1f} s")
        off, on = min(times[False]), min(times[True])
        rows.append({"cell": f"bi-{cell.upper()} 128", "epochs": epochs, "names": len(names), "torch_s": off,
                     "rnnkit_path_s": on, "speed_ratio": off / on})
    table = markdown_table(["names classifier", "epochs", "names", "torch kernels s", "rnnkit path s", "speed-up"],
                           [[r["cell"], r["epochs"], r["names"], r["torch_s"], r["rnnkit_path_s"], r["speed_ratio"]]
                            for r in rows])
    res = {"machine": machine_info(), "quick": quick, "repeats": repeats, "rows": rows, "table": table}
    write_results("train_path", res, quick=quick)
    return res


if __name__ == "__main__":
    run_quick_script(main, __doc__)
