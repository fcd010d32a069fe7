"""The kernels' private cache folder: a shared library runs with the user's rights when loaded, so
nothing is loaded from a folder or file another user could have written (see ``rnnkit.nn.kernels``)."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Optional


def cache_candidates() -> list[Path]:
    """Where kernels may be cached, in order of preference (each must pass ``private_dir``)."""
    out = []
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.environ.get("RNNKIT_CACHE_DIR"):
        out.append(Path(os.environ["RNNKIT_CACHE_DIR"]) / "kernels")
    elif os.path.isabs(xdg):  # XDG: a relative path is invalid and ignored
        out.append(Path(xdg) / "rnnkit" / "kernels")
    else:
        try:
            out.append(Path.home() / ".cache" / "rnnkit" / "kernels")
        except RuntimeError:  # no home folder known
            pass
    # A read-only home falls back to a folder of our own in the shared temp folder.
    return out + [Path(tempfile.gettempdir()) / f"rnnkit-{os.getuid()}"]


def private_dir(path: Path) -> Optional[Path]:
    """``path`` as a folder only this user can use: created 0700 if missing; if it exists it must be
    a real folder (not a symlink) owned by us, and is narrowed to 0700. None when it cannot be made
    safe (then nothing is loaded from it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return None
        parent = os.stat(path.parent)
        if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
            return None  # anyone may rename our folder away and put theirs in its place
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path, 0o700)
    except OSError:
        return None
    return path


def trusted_file(path: Path) -> bool:
    """A regular file (not a symlink) owned by us that no group or other user can write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
