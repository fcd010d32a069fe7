"""Derived-data caches (token files, speech features): where they live and how an entry is built once.

An entry is a folder ``cache_dir(kind) / KEY`` built in a temporary sibling and renamed into place,
so a reader never sees half of one; a lock file per key makes concurrent processes (DDP ranks,
parallel runs) wait for the first builder instead of building the same entry twice.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Optional, TypeVar

from rnnkit.errors import UserError

T = TypeVar("T")


def cache_dir(kind: str) -> Path:
    """``$RNNKIT_CACHE_DIR/KIND``, else ``$XDG_CACHE_HOME/rnnkit/KIND`` (``~/.cache/rnnkit/KIND``)."""
    env = os.environ.get("RNNKIT_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnkit"
    return base / kind


def _lock(fh) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-process lock, last writer wins
        return
    fcntl.flock(fh, fcntl.LOCK_EX)


def build_once(folder: Path, load: Callable[[], Optional[T]], build: Callable[[Path], None]) -> tuple[T, bool]:
    """The entry in ``folder``: ``load()`` it if complete, else ``build(tmp)`` it first.

    ``load`` returns None for a missing or incomplete entry. Returns (entry, reused).
    """
    found = load()
    if found is not None:
        return found, True
    root = folder.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f"{folder.name}.lock", "w")  # noqa: SIM115
    except OSError as exc:
        raise UserError(f"cannot write the cache {root} ({exc.strerror}); set RNNKIT_CACHE_DIR to a writable folder") from None
    try:
        _lock(lock)
        found = load()  # another process may have built it while we waited
        if found is not None:
            return found, True
        tmp = root / f"{folder.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            build(tmp)
            shutil.rmtree(folder, ignore_errors=True)  # an incomplete entry left by a killed run
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.close()  # releases the lock
    found = load()
    if found is None:
        raise UserError(f"{folder}: cache entry unreadable right after writing it")
    return found, False
