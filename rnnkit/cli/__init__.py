"""`rnnkit` command line: one entry point, one sub-module per command group.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
sub-command(s) and sets ``func`` on the parser to a callable ``(args) -> int | None``.
The CLI only parses arguments and calls the Python API.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from rnnkit.errors import UserError

COMMAND_MODULES = ["demo", "forecast", "text", "classify", "speech", "export", "serve", "bench"]


class _Parser(argparse.ArgumentParser):
    """argparse, but user errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"rnnkit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnkit", description="Recurrent neural networks that work out of the box.")
    from rnnkit import __version__

    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"rnnkit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"rnnkit.cli.{name}":
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"rnnkit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written (missing, a folder, permissions, disk full)
        print(f"rnnkit: error: {_os_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130


def _os_message(exc: OSError) -> str:
    """'PATH: reason' for an OSError, on one line."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename
    return " ".join((f"{where}: {reason}" if where is not None else reason).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
