"""`rnnkit demo`: the tutorials done right and every task, on shipped data, with a report.

Each section is a function ``section(out_dir: Path, quick: bool) -> str`` returning a Markdown
block (and writing its plots into ``out_dir``). The sections are imported by name below, so a
renamed or missing section is an import error, never a silently skipped block.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from rnnkit.demo.classify import names_demo
from rnnkit.demo.forecast import stock_demo
from rnnkit.demo.speech import speech_demo
from rnnkit.demo.text import text_demo
from rnnkit.demo.tutorials import count_section, i2h_section, sine_section
from rnnkit.io import atomic_write_text

Section = Callable[[Path, bool], str]
SECTIONS: list[tuple[str, Section]] = [
    ("Sine wave: next value", sine_section),
    ("Counting: [1..5] -> [6..10]", count_section),
    ("The classic i2h/i2o RNN: names by language", i2h_section),
    ("Forecasting a real stock series", stock_demo),
    ("Text generation and next word", text_demo),
    ("Sequence classification: names", names_demo),
    ("Speech to text", speech_demo),
]


def run_demo(out_dir: str | Path = "runs/demo", quick: bool = False) -> Path:
    """Run every section in order; return the path of the written ``report.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blocks = [f"# rnnkit demo\n\nMode: {'quick' if quick else 'full'}.\n"]
    for title, section in SECTIONS:
        print(f"== {title}", file=sys.stderr)
        start = time.perf_counter()
        body = section(out, quick)
        seconds = time.perf_counter() - start
        blocks.append(f"## {title}\n\n{body.strip()}\n\n_({seconds:.1f} s)_\n")
        print(body.strip() + "\n", file=sys.stdout)
    report = out / "report.md"
    atomic_write_text(report, "\n".join(blocks))
    print(f"Report: {report}", file=sys.stderr)
    return report
