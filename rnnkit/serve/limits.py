"""Request limits of ``rnnkit serve`` and the two checks that run before any JSON is parsed.

Every limit has a safe default and a CLI flag (``rnnkit serve --help``); ``ServeLimits.check``
refuses nonsense values with a ``UserError`` before the server starts.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, fields

from rnnkit.errors import UserError


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for. Memory stays bounded by about
    ``(workers + queue) * max_body_bytes`` of buffered bodies plus ``workers`` requests being decoded."""

    max_body_bytes: int = 10 * 1024 * 1024  # refused with 413 while reading, never read whole
    max_audio_seconds: float = 60.0         # /transcribe: checked from the audio header before decoding
    max_length: int = 2000                  # text /predict: tokens generated
    max_k: int = 100                        # text /next-word: words ranked
    max_prompt_chars: int = 10_000          # text: prompt length
    max_sequences: int = 1000               # classify: sequences per request
    max_sequence_length: int = 10_000       # classify: steps (or characters) per sequence
    max_total_steps: int = 1_000_000        # classify: steps summed over a request (~3 s for a small model)
    max_rows: int = 100_000                 # forecast: table rows per request
    max_combined_points: int = 12_000       # forecast, models that blend ETS/Theta: points refitted per request,
                                            # each series' last 300 + 50 for its fits (~0.75 ms CPU per point:
                                            # ~9 s at the limit, a third of the time limit; combine.refit_cost)
    max_depth: int = 16                     # JSON nesting (the deepest body, classify numeric, needs 4)
    timeout_s: float = 30.0                 # model work per request; over it -> 503
    read_timeout_s: float = 30.0            # receiving the request head, and the whole body (else 408 / closed)
    workers: int = 1                        # worker threads running model code
    queue: int = 32                         # requests waiting for a worker; more -> 503

    def check(self) -> "ServeLimits":
        for f in fields(self):
            value = getattr(self, f.name)
            least = 0 if f.name == "queue" else 1e-9  # no queue at all is allowed; no workers is not
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= least):
                raise UserError(f"serve limit {f.name} ({flag_of(f.name)}) must be a "
                                f"{'non-negative' if least == 0 else 'positive'} number, got {value!r}")
        if not 4 <= self.max_depth <= 200:  # 4: deepest valid body; 200: the JSON parser's own ceiling
            raise UserError(f"--max-depth must lie in 4..200, got {self.max_depth}")
        return self


def flag_of(name: str) -> str:
    """The ``rnnkit serve`` flag that sets the ``ServeLimits`` field ``name``."""
    return {"max_body_bytes": "--max-body-mb", "timeout_s": "--timeout", "read_timeout_s": "--read-timeout"}.get(
        name, "--" + name.replace("_", "-"))


class RequestError(Exception):
    """A request the server refuses: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, detail: list | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail = status, message, detail


_NOT_MARK = bytes(b for b in range(256) if b not in b'"[]{}')


def json_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, counted without parsing it, in C-speed passes:
    drop escaped backslashes and quotes, keep only quotes and brackets, count brackets outside
    strings (after an even number of quotes) with a cumulative sum. Malformed JSON still gets a
    number; the parser rejects it afterwards."""
    import numpy as np

    if b"\\" in raw:  # inside a JSON string every backslash escapes the next byte: pair them off first
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = np.frombuffer(raw.translate(None, _NOT_MARK), dtype=np.uint8)
    if marks.size == 0:
        return 0
    outside = (np.cumsum(marks == ord('"'), dtype=np.int32) & 1) == 0
    opens = outside & ((marks == ord("[")) | (marks == ord("{")))
    closes = outside & ((marks == ord("]")) | (marks == ord("}")))
    return int(np.cumsum(opens.astype(np.int32) - closes).max())


async def read_body(receive_stream, content_length: str | None, limits: ServeLimits) -> bytes:
    """The request body, read chunk by chunk: 413 as soon as it exceeds ``max_body_bytes``
    (or when Content-Length announces more), 408 when it has not fully arrived within
    ``read_timeout_s`` (a client announcing more than it sends cannot hold the request open)."""
    limit = limits.max_body_bytes
    if content_length is not None:
        if not content_length.isdigit():
            raise RequestError(400, f"bad Content-Length header {content_length[:40]!r}")
        if int(content_length) > limit:
            raise RequestError(413, f"request body of {int(content_length)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.read_timeout_s):
            async for chunk in receive_stream:
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, f"request body is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(408, f"request body did not arrive within {limits.read_timeout_s:g} s") from None
    return b"".join(chunks)
