"""What the server and its model processes share: the frame format on their pipes, and ``Deadline``.

A frame is an 8-byte big-endian length and then that many bytes; heads are JSON, bodies raw
bytes, so nothing on the pipes is pickled. Reads on the server side take a time limit (``select``
before every ``read``), so a model process that hangs cannot hang the thread waiting for it.
"""
from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any, Optional

_LENGTH = struct.Struct(">Q")
_CHUNK = 1 << 20


class Deadline:
    """Wall-clock budget of one job; long loops call ``check()`` between steps to stop early."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds

    def left(self) -> float:
        return self.expires - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0

    def check(self) -> None:
        if self.expired():
            raise TimeoutError(f"request took longer than the limit of {self.seconds:g} s")


def write_frame(fd: int, data: bytes) -> None:
    """Write one frame (blocks until the pipe takes it; BrokenPipeError when the reader is gone)."""
    for part in (_LENGTH.pack(len(data)), data):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view):]


def write_json(fd: int, obj: Any) -> None:
    write_frame(fd, json.dumps(obj).encode())


def read_frame(fd: int, until: Optional[float] = None) -> bytes:
    """Read one frame. ``until``: a ``time.monotonic()`` after which TimeoutError is raised
    (None: wait as long as it takes). EOFError when the writer closed the pipe."""
    (size,) = _LENGTH.unpack(_read_exact(fd, _LENGTH.size, until))
    return _read_exact(fd, size, until)


def read_json(fd: int, until: Optional[float] = None) -> Any:
    return json.loads(read_frame(fd, until))


def _read_exact(fd: int, size: int, until: Optional[float]) -> bytes:
    parts, got = [], 0
    while got < size:
        if until is not None:
            left = until - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("no answer from the model process in time")
        chunk = os.read(fd, min(size - got, _CHUNK))
        if not chunk:
            raise EOFError("the model process closed its pipe")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
