"""`rnnkit demo`: the tutorials done right and every task, on shipped data, with a report.

Each section is a function ``section(out_dir: Path, quick: bool) -> str`` returning a
Markdown block (and writing its plots into ``out_dir``). Sections live with the code
they demonstrate; this module only runs them in order and writes ``report.md``.
"""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

# (title, "module:function"). A section whose module is not built yet is skipped.
SECTIONS: list[tuple[str, str]] = [
    ("Sine wave: next value", "examples_demo:sine_section"),
    ("Counting: [1..5] -> [6..10]", "examples_demo:count_section"),
    ("The classic i2h/i2o RNN: names by language", "examples_demo:i2h_section"),
    ("Forecasting a real stock series", "rnnkit.tasks.forecast:demo_section"),
    ("Text generation and next word", "rnnkit.tasks.text:demo_section"),
    ("Sequence classification: names", "rnnkit.tasks.classify:demo_section"),
    ("Speech to text", "rnnkit.tasks.speech:demo_section"),
]


def _resolve(target: str):
    module_name, func_name = target.split(":")
    if module_name == "examples_demo":
        module_name = "rnnkit.examples_demo"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    return getattr(module, func_name, None)


def run_demo(out_dir: str | Path = "runs/demo", quick: bool = False) -> Path:
    """Run every available section; return the path of the written report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blocks = [f"# rnnkit demo\n\nMode: {'quick' if quick else 'full'}.\n"]
    for title, target in SECTIONS:
        section = _resolve(target)
        if section is None:
            continue
        print(f"== {title}", file=sys.stderr)
        start = time.perf_counter()
        body = section(out, quick)
        seconds = time.perf_counter() - start
        blocks.append(f"## {title}\n\n{body.strip()}\n\n_({seconds:.1f} s)_\n")
        print(body.strip() + "\n", file=sys.stdout)
    report = out / "report.md"
    tmp = report.with_suffix(".md.tmp")
    tmp.write_text("\n".join(blocks), encoding="utf-8")
    tmp.replace(report)
    print(f"Report: {report}", file=sys.stderr)
    return report
