"""The FastAPI application: routes, admission to the model processes, API key, error answers.

Bodies are read by us, not by FastAPI: the read is bounded while it happens (``limits.read_body``),
and the bytes go to a model process (``pool.py``, ``worker.py``) that parses them (pydantic,
strict) and runs the model, so neither a large body nor model work ever holds this process's GIL.
OpenAPI still documents every body: each route declares its request model with ``openapi_extra``
and ``_document_bodies`` adds the schemas.
"""
from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
from typing import Any, Callable, Optional

from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import rnnkit
from rnnkit.errors import UserError
from rnnkit.serve.limits import RequestError, ServeLimits, read_body
from rnnkit.serve.pool import Saturated, WorkerPool
from rnnkit.serve.routes import Route, routes_for
from rnnkit.serve.schemas import ErrorResponse, HealthResponse

log = logging.getLogger("rnnkit.serve")
API_KEY_ENV = "RNNKIT_API_KEY"
_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 422, 503)}


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (a host name other than localhost counts as public)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(model_dir: str, limits: Optional[ServeLimits] = None, api_key: Optional[str] = None) -> FastAPI:
    """Start the model processes for ``model_dir`` and return the application serving it
    (``api_key``: required on model routes). The processes stop with the application's lifespan."""
    limits = (limits or ServeLimits()).check()
    pool = WorkerPool(model_dir, limits)
    task = pool.hello["task"]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()

    app = FastAPI(title=f"rnnkit {task} model", version=rnnkit.__version__, lifespan=lifespan,
                  description="A saved rnnkit model behind a typed JSON API (see rnnkit/serve/__init__.py).")
    _install_error_handlers(app, task)
    guard = [Depends(_api_key_check(api_key))] if api_key else []

    async def answer(request: Request, path: str) -> Response:
        """Admit (503 when full), read the body (413/408), have a model process answer it."""
        try:
            ticket = pool.admit()
        except Saturated as exc:
            raise RequestError(503, str(exc)) from None
        try:
            body = await read_body(request.stream(), request.headers.get("content-length"), limits)
            payload = await ticket.run(path, body, limits.timeout_s)
        except TimeoutError as exc:
            raise RequestError(503, str(exc)) from None
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening any more
        finally:
            ticket.release()
        return Response(payload, media_type="application/json")

    def add_route(route: Route) -> None:
        async def endpoint(request: Request) -> Response:
            return await answer(request, route.path)

        body = _json_body(route.request) if route.request is not None else _audio_body(limits)
        app.add_api_route(route.path, endpoint, methods=["POST"], name=route.path.strip("/").replace("-", "_"),
                          summary=route.summary, response_model=route.response, responses=_ERRORS,
                          dependencies=guard, openapi_extra=body)

    @app.get("/health", response_model=HealthResponse, summary="liveness: the task and the rnnkit version")
    async def health() -> HealthResponse:
        return HealthResponse(task=task, rnnkit_version=rnnkit.__version__)

    routes = routes_for(task, limits, pool.hello.get("forecast_schema"))
    for route in routes:
        add_route(route)
    _document_bodies(app, [r.request for r in routes if r.request is not None])
    app.state.pool, app.state.limits = pool, limits
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
