"""The routes a task's server offers, in one table that both sides read: the server builds its
endpoints and OpenAPI schemas from it, the model process parses and runs requests with it.

Parsing (strict JSON -> pydantic request model) happens in the model process with the model
work, so a 10 MB body never holds the server's GIL (see ``worker.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from pydantic import BaseModel, ValidationError

from rnnkit.serve import handlers
from rnnkit.serve.ipc import Deadline
from rnnkit.serve.limits import RequestError, ServeLimits, json_depth
from rnnkit.serve.schemas import (ClassifyResponse, ForecastResponse, NextWordResponse, TextResponse,
                                  TranscribeResponse, classify_request, describe, forecast_request, text_requests)


@dataclass(frozen=True)
class Route:
    """One POST route. ``request`` None: the raw body (audio) goes to ``run`` as bytes."""

    path: str
    request: Optional[type[BaseModel]]
    response: type[BaseModel]
    run: Callable[[Any, Any, Deadline], BaseModel]  # (model, parsed request or bytes, deadline) -> response
    summary: str


def routes_for(task: str, limits: ServeLimits, forecast_schema: Optional[dict] = None) -> list[Route]:
    """The POST routes of a ``task`` server (``forecast_schema``: the forecaster's training columns)."""
    if task == "forecast":
        return [Route("/predict", forecast_request(limits, forecast_schema or {}), ForecastResponse,
                      handlers.forecast, "forecast the horizon after each series")]
    if task == "text":
        text_body, next_body = text_requests(limits)
        return [Route("/predict", text_body, TextResponse, handlers.generate, "generate a continuation"),
                Route("/next-word", next_body, NextWordResponse, handlers.next_word, "the k most likely next words")]
    if task == "classify":
        return [Route("/predict", classify_request(limits), ClassifyResponse, handlers.classify,
                      "classify sequences")]
    if task == "speech":
        return [Route("/transcribe", None, TranscribeResponse,
                      lambda model, audio, deadline: handlers.transcribe(model, audio, limits, deadline),
                      "transcribe one audio file")]
    raise ValueError(f"no routes for task {task!r}")


def parse(schema: type[BaseModel], body: bytes, limits: ServeLimits) -> BaseModel:
    """Strict JSON -> request model; RequestError 400 (not JSON, too deep) or 422 (wrong shape)."""
    if not body.strip():
        raise RequestError(400, "request body must be a JSON object")
    depth = json_depth(body)
    if depth > limits.max_depth:
        raise RequestError(400, f"JSON nested {depth} levels deep; this server accepts up to {limits.max_depth}")
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        status, message, errors = describe(exc)
        raise RequestError(status, message, errors) from None


def answer(route: Route, model: Any, body: bytes, limits: ServeLimits, deadline: Deadline) -> bytes:
    """Parse and run one request; the response JSON."""
    request = body if route.request is None else parse(route.request, body, limits)
    return route.run(model, request, deadline).model_dump_json().encode()
