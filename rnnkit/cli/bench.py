"""`rnnkit bench [--quick] [--only NAME ...]`: run the benchmark scripts in ``bench/``.

``bench/`` lives in the repository, not in the installed package, so it is looked up next
to the package's source tree (an editable install or a checkout) and then in the current
folder. Every ``bench/<area>.py`` with a ``main(quick: bool) -> dict`` function is run (files
starting with ``_`` and ``common.py`` are helpers); each writes ``bench/results/<area>.json``
and its Markdown table is printed on stdout.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

from rnnkit.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run the speed benchmarks in bench/ and print their tables")
    p.add_argument("--quick", action="store_true", help="fewer repeats and shapes (a few minutes in all)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these bench files (e.g. layers)")
    p.add_argument("--list", action="store_true", help="list the benchmarks found and exit")
    p.add_argument("--bench-dir", type=Path, default=None, help="folder holding the bench scripts (default: the repository's bench/)")
    p.set_defaults(func=_run)


def find_bench_dir(explicit: Optional[Path] = None) -> Path:
    """The repository's ``bench/`` folder; UserError if there is none."""
    if explicit is not None:
        if not (explicit / "common.py").is_file():
            raise UserError(f"--bench-dir {explicit}: not a bench folder (no common.py in it)")
        return explicit.resolve()
    import rnnkit

    candidates = [Path(rnnkit.__file__).resolve().parents[1] / "bench", Path.cwd() / "bench"]
    for c in candidates:
        if (c / "common.py").is_file():
            return c
    raise UserError("bench/ not found: `rnnkit bench` runs from a checkout of the rnnkit repository "
                    f"(looked in {', '.join(str(c) for c in candidates)})")


def discover(bench_dir: Path) -> list[str]:
    """Names of the bench modules (``bench/<name>.py``), helpers excluded."""
    return sorted(p.stem for p in bench_dir.glob("*.py") if not p.name.startswith("_") and p.stem != "common")


def _load(path: Path) -> Any:
    """Import a bench file by path (its folder need not be a package)."""
    spec = importlib.util.spec_from_file_location(f"_rnnkit_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _takes_quick(fn: Any) -> bool:
    """True for a ``main`` that follows the protocol: callable with ``quick=``."""
    if not callable(fn):
        return False
    try:
        return "quick" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _table(result: Any) -> str:
    if isinstance(result, dict) and isinstance(result.get("table"), str):
        return result["table"]
    if isinstance(result, dict) and isinstance(result.get("rows"), list) and result["rows"]:
        rows = result["rows"]
        keys = list(rows[0])
        fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
        lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
        lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
        return "\n".join(lines)
    return json.dumps(result, indent=2, default=str)


def _run(args: argparse.Namespace) -> int:
    bench_dir = find_bench_dir(args.bench_dir)
    names = discover(bench_dir)
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise UserError(f"no benchmark named {', '.join(unknown)} in {bench_dir} (found: {', '.join(names) or 'none'})")
        names = [n for n in names if n in args.only]
    if args.list:
        print("\n".join(names))
        return 0
    root = str(bench_dir.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # bench files import `bench.common`
    failed, skipped = [], []
    for name in names:
        try:
            module = _load(bench_dir / f"{name}.py")
        except ModuleNotFoundError as exc:  # an optional dependency (extra) of that benchmark
            skipped.append(_skip(name, exc))
            continue
        except Exception as exc:
            print(f"rnnkit bench: {name} failed to import: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        if not _takes_quick(getattr(module, "main", None)):
            print(f"rnnkit bench: skipping {name}.py (no main(quick) function; run it directly)", file=sys.stderr)
            continue
        print(f"rnnkit bench: running {name}{' (quick)' if args.quick else ''}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            result = module.main(quick=args.quick)
        except ModuleNotFoundError as exc:  # imported lazily inside the benchmark
            skipped.append(_skip(name, exc))
            continue
        except Exception as exc:  # one broken benchmark must not hide the others' results
            print(f"rnnkit bench: {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        print(f"## {name}  ({time.perf_counter() - t0:.0f} s)\n\n{_table(result)}\n", flush=True)
    if skipped:
        print(f"rnnkit bench: skipped for missing packages: {', '.join(skipped)} "
              "(`make bench` installs every extra)", file=sys.stderr)
    if failed:
        raise UserError(f"benchmarks failed: {', '.join(failed)}")
    return 0


def _skip(name: str, exc: ModuleNotFoundError) -> str:
    """A benchmark whose optional dependency is not installed is skipped, not failed."""
    print(f"rnnkit bench: skipping {name}: it needs the package {exc.name!r}, which is not installed",
          file=sys.stderr)
    return f"{name} ({exc.name})"
