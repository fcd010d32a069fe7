"""The FastAPI application: routes, admission to the worker pool, API key, error answers.

Bodies are read and parsed by us, not by FastAPI: the read is bounded while it happens
(``limits.read_body``), and the parse (pydantic, strict) runs on a worker thread with the model
work, so a large body never stalls the event loop. OpenAPI still documents every body: each
route declares its request model with ``openapi_extra`` and ``_document_bodies`` adds the schemas.
"""
from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import sys
from typing import Any, Callable, Optional

from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import rnnkit
from rnnkit.errors import UserError
from rnnkit.serve import handlers
from rnnkit.serve.limits import RequestError, ServeLimits, json_depth, read_body
from rnnkit.serve.pool import Saturated, WorkerPool
from rnnkit.serve.schemas import (ClassifyResponse, ErrorResponse, ForecastResponse, HealthResponse,
                                  NextWordResponse, TextResponse, TranscribeResponse, classify_request, describe,
                                  forecast_request, text_requests)

log = logging.getLogger("rnnkit.serve")
API_KEY_ENV = "RNNKIT_API_KEY"
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 422, 503)}


def task_of(model: Any) -> str:
    """The model's task: its ``task`` attribute if it names one, else its class via ``rnnkit.TASKS``."""
    task = getattr(model, "task", None)
    if isinstance(task, str) and task in rnnkit.TASKS:
        return task
    for name, cls_name in rnnkit.TASKS.items():
        if type(model).__name__ == cls_name:
            return name
    raise UserError(f"cannot serve a {type(model).__name__}")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (a host name other than localhost counts as public)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(model_dir: str, limits: Optional[ServeLimits] = None, api_key: Optional[str] = None) -> FastAPI:
    """Load ``model_dir`` once and return the application serving it (``api_key``: required on model routes)."""
    limits = (limits or ServeLimits()).check()
    model = rnnkit.load(model_dir)
    task = task_of(model)
    pool = WorkerPool(limits.workers, limits.queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()

    app = FastAPI(title=f"rnnkit {task} model", version=rnnkit.__version__, lifespan=lifespan,
                  description="A saved rnnkit model behind a typed JSON API (see rnnkit/serve/__init__.py).")
    _install_error_handlers(app, task)
    guard = [Depends(_api_key_check(api_key))] if api_key else []

    def parse(schema: type[BaseModel], body: bytes) -> BaseModel:
        """Strict JSON -> request model (worker thread)."""
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

    async def answer(request: Request, work: Callable[[bytes, Any], BaseModel]) -> Response:
        """Admit (503 when full), read the body (413/408), run ``work(body, deadline)`` on a worker."""
        try:
            ticket = pool.admit()
        except Saturated as exc:
            raise RequestError(503, str(exc)) from None
        try:
            body = await read_body(request.stream(), request.headers.get("content-length"), limits)
            payload = await ticket.run(lambda deadline: work(body, deadline).model_dump_json(), limits.timeout_s)
        except TimeoutError as exc:
            raise RequestError(503, str(exc)) from None
        except UserError as exc:
            raise RequestError(400, str(exc)) from None
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening any more
        finally:
            ticket.release()
        return Response(payload, media_type="application/json")

    def json_route(path: str, schema: type[BaseModel], response: type[BaseModel], run: Callable, summary: str):
        async def endpoint(request: Request) -> Response:
            return await answer(request, lambda body, deadline: run(model, parse(schema, body), deadline))

        app.add_api_route(path, endpoint, methods=["POST"], name=path.strip("/").replace("-", "_"),
                          summary=summary, response_model=response, responses=_ERRORS, dependencies=guard,
                          openapi_extra=_json_body(schema))
        return schema

    @app.get("/health", response_model=HealthResponse, summary="liveness: the task and the rnnkit version")
    async def health() -> HealthResponse:
        return HealthResponse(task=task, rnnkit_version=rnnkit.__version__)

    bodies: list[type[BaseModel]] = []
    if task == "forecast":
        bodies.append(json_route("/predict", forecast_request(limits, model.schema), ForecastResponse,
                                 handlers.forecast, "forecast the horizon after each series"))
    elif task == "text":
        text_body, next_body = text_requests(limits)
        bodies.append(json_route("/predict", text_body, TextResponse, handlers.generate, "generate a continuation"))
        bodies.append(json_route("/next-word", next_body, NextWordResponse, handlers.next_word,
                                 "the k most likely next words"))
    elif task == "classify":
        bodies.append(json_route("/predict", classify_request(limits), ClassifyResponse, handlers.classify,
                                 "classify sequences"))
    elif task == "speech":
        async def transcribe(request: Request) -> Response:
            return await answer(request, lambda body, deadline: handlers.transcribe(model, body, limits, deadline))

        app.add_api_route("/transcribe", transcribe, methods=["POST"], name="transcribe",
                          summary="transcribe one audio file", response_model=TranscribeResponse,
                          responses=_ERRORS, dependencies=guard, openapi_extra=_audio_body(limits))
    _document_bodies(app, bodies)
    app.state.pool, app.state.limits, app.state.model = pool, limits, model
    return app


def _json_body(schema: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{schema.__name__}"}}}}}


def _audio_body(limits: ServeLimits) -> dict:
    binary = {"schema": {"type": "string", "format": "binary",
                         "description": f"a WAV/FLAC/OGG file of at most {limits.max_audio_seconds:g} s"}}
    return {"requestBody": {"required": True, "content": {t: binary for t in
                                                          ("audio/wav", "audio/flac", "audio/ogg",
                                                           "application/octet-stream")}}}


def _document_bodies(app: FastAPI, bodies: list[type[BaseModel]]) -> None:
    """Add the request models (and the models they use) to the OpenAPI components."""
    _, defs = models_json_schema([(m, "validation") for m in bodies], ref_template="#/components/schemas/{model}")
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        return app.openapi_schema

    app.openapi = openapi


def _api_key_check(api_key: str) -> Callable:
    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
    header = APIKeyHeader(name="X-API-Key", auto_error=False)
    expected = api_key.encode()

    async def check(credentials: Optional[HTTPAuthorizationCredentials] = Security(bearer),
                    x_api_key: Optional[str] = Security(header)) -> None:
        given = credentials.credentials if credentials else x_api_key
        if not given or not hmac.compare_digest(given.encode(), expected):  # constant time: no timing oracle
            raise RequestError(401, "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")

    return check


def _install_error_handlers(app: FastAPI, task: str) -> None:
    routes = {"forecast": "POST /predict", "text": "POST /predict, POST /next-word",
              "classify": "POST /predict", "speech": "POST /transcribe"}[task]

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> JSONResponse:  # noqa: ARG001 - FastAPI signature
        content: dict = {"error": exc.message}
        if exc.detail:
            content["detail"] = exc.detail
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.status in (408, 413):  # the body was not read to its end: do not wait for the rest of it
            headers["Connection"] = "close"
        return JSONResponse(status_code=exc.status, content=content, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code in (404, 405):
            message = f"no route {request.method} {request.url.path}; this {task} server answers GET /health, {routes}"
        return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=exc.headers)


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000, limits: Optional[ServeLimits] = None,
          api_key: Optional[str] = None, log_level: str = "info") -> None:
    """Serve ``model_dir`` until SIGINT/SIGTERM. A non-loopback ``host`` needs an API key
    (``api_key`` or the ``RNNKIT_API_KEY`` environment variable)."""
    import uvicorn

    api_key = api_key or os.environ.get(API_KEY_ENV) or None
    if not is_loopback(host) and not api_key:
        raise UserError(f"--host {host} is reachable from other machines: set --api-key KEY "
                        f"(or the {API_KEY_ENV} environment variable), or serve on 127.0.0.1")
    limits = (limits or ServeLimits()).check()
    app = create_app(model_dir, limits, api_key)
    # A worker thread in Python code (e.g. token-by-token generation) holds the GIL; the event loop
    # needs it several times per request and waits up to the switch interval each time. 1 ms
    # instead of 5 ms keeps /health fast while a long request runs (measured: bench/serve_abuse.py).
    sys.setswitchinterval(0.001)
    try:
        from rnnkit.serve.protocol import header_timeout_protocol

        http: Any = header_timeout_protocol(limits.read_timeout_s)
    except (ImportError, AttributeError):  # uvicorn internals moved: plain h11 (no request-head timeout)
        http = "h11"
    # timeout_keep_alive: an idle connection is closed after 5 s; timeout_graceful_shutdown: on
    # SIGINT/SIGTERM, requests still running get 5 s before they are cancelled (worker threads are
    # daemons, so a generation still in progress does not hold the process).
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=http, timeout_keep_alive=5,
                timeout_graceful_shutdown=5)
