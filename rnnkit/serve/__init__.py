"""`rnnkit serve`: any saved model folder behind a small, typed JSON HTTP API (FastAPI).

Routes (request and response bodies are pydantic models, shown in ``/openapi.json`` and ``/docs``):

- ``GET  /health``   -> ``{"task", "rnnkit_version"}`` (never needs the API key)
- ``POST /predict``  task-specific body:
    forecast: ``{"data": [{"<time>": ..., "<target>": ...}, ...], "quantiles": [0.1, 0.9]}`` -> ``{"forecast": [rows]}``
              optional: ``"format": "nixtla"``, ``"level": [80]``; ``"static": {"<id>": {"<column>": value}}``
              for a model trained with ``--static`` (required there, 400 elsewhere; rules as ``--static FILE``)
    text:     ``{"prompt": "...", "length": 200, "temperature": 1.0, "top_k": null, "top_p": null, "seed": null}``
              -> ``{"text"}``
    classify: ``{"sequences": ["text", ...] | [[[f1, f2], ...], ...] | [[x1, x2, ...], ...]}``
              -> ``{"labels", "probabilities"}``
- ``POST /next-word`` (text models): ``{"prompt": "...", "k": 5}`` -> ``{"words": [{"word", "probability"}]}``
- ``POST /transcribe`` (speech models): the audio file (WAV/FLAC/OGG) as the raw body -> ``{"text"}``

Errors are ``{"error": "<one line>"}`` (plus ``"detail"``: the validation errors, for 422):
400 malformed JSON or input the model cannot use, 401 missing/wrong API key, 404/405 unknown
route, 408 body not received in time, 413 body or audio too large, 422 body does not match the
schema (strict types: no strings for numbers, no NaN/Infinity, no unknown keys, no ragged
sequences), 503 busy (queue full) or over the time limit.

Limits (``ServeLimits``; CLI flag in brackets; defaults are safe for a public port):
body 10 MB [--max-body-mb], audio 60 s [--max-audio-seconds] (from the header, before decoding),
generated tokens 2000 [--max-length], next words k <= 100 [--max-k], prompt 10,000 characters
[--max-prompt-chars], 1000 sequences per request [--max-sequences] of up to 10,000 steps
[--max-sequence-length] and 1,000,000 in all [--max-total-steps], 100,000 forecast rows [--max-rows], JSON nesting 16 [--max-depth],
model work 30 s per request [--timeout] (then 503), body upload 30 s [--read-timeout] (then 408).

JSON routes read the body as JSON whatever its Content-Type says (``curl -d`` sends form encoding).

Concurrency: model work (parsing the body included) runs in ``--workers`` model processes (default 1,
each with its own copy of the model; ``worker.py``) behind a queue of ``--queue`` requests (default
32; more -> 503), so the event loop and ``/health`` never wait for a model. A request past
``--timeout`` is answered 503; if its process does not stop within 2 s it is killed and replaced,
and so is a process that dies.
Security: binding to a non-loopback ``--host`` needs ``--api-key`` (or ``RNNKIT_API_KEY``);
with a key set, model routes need ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (else 401).
"""
from typing import Any

from rnnkit.serve.limits import ServeLimits

__all__ = ["ServeLimits", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    # The app needs FastAPI (the [serve] extra); the limits alone do not (the CLI reads their defaults).
    if name in ("create_app", "serve"):
        from rnnkit.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'rnnkit.serve' has no attribute {name!r}")
