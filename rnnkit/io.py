"""Atomic file output: the one way rnnkit writes a user-visible file.

``with atomic_path(out) as tmp: write(tmp)`` writes into a temp file next to ``out`` (same
folder, so the rename is atomic; same suffix, so writers that look at it pick the right
format) and renames it onto ``out`` only when the block succeeds. On any error the temp
file is removed and ``out`` is untouched: no half-written outputs.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[Path]:
    """Yield a temp path to write; it replaces ``path`` when the block exits without error."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp alone gives 0600
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Union[str, os.PathLike], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_figure(fig, path: Union[str, os.PathLike], dpi: int = 90, **savefig_kwargs) -> Path:
    """Write matplotlib ``fig`` to ``path`` as PNG atomically, then close it (no pyplot state left)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, **savefig_kwargs)
    finally:
        plt.close(fig)
    return path
