"""`rnnkit demo`."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the tutorials done right and every task on shipped data")
    p.add_argument("--out", default="runs/demo", help="output folder (report.md, plots)")
    p.add_argument("--quick", action="store_true", help="smaller settings, about a minute")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rnnkit.demo import run_demo

    run_demo(args.out, quick=args.quick)
    return 0
