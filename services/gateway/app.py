"""The gateway's ASGI app: routers, middleware, error rendering and lifespan, wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import ConfigError
from services.common.health import Heartbeat
from services.common.leases import Leases, sweep_forever
from services.common.runner import connect
from services.common.validation import JsonTooDeepError, check_depth
from services.gateway import routes_jobs, routes_openai, routes_ops, routes_push, routes_sessions
from services.gateway.errors import ApiError, InvalidJsonError, error_body, invalid
from services.gateway.history import open_history
from services.gateway.openai_api import openai_error
from services.gateway.security import RateLimiter
from services.gateway.services import Gateway
from services.gateway.settings import GatewaySettings
from services.gateway.ws import serve_socket

log = logging.getLogger(__name__)
#: Paths (and everything under them) that belong to the API: an unknown one gets the JSON 404, never the
#: dashboard's index.html. ``/v1`` and ``/api`` are reserved for API surfaces (OpenAI wire format, versions).
API_PREFIXES = (
    "/generate",
    "/sessions",
    "/push",
    "/health",
    "/metrics",
    "/config",
    "/export",
    "/ws",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/v1",
    "/api",
)
#: The OpenAI-compatible surface: its errors are rendered in OpenAI's shape (openai_api.openai_error).
OPENAI_PREFIX = "/v1"
WS_PATH = "/ws"
_DASHBOARD_ROUTE = "/{path:path}"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "bad_request"}


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway app for ``settings`` (default: from the environment)."""
    settings = settings or GatewaySettings()
    if settings.auth_required and not settings.api_key_list:
        raise ConfigError(
            f"API keys are required (UQ_AUTH={settings.auth}, bound to {settings.host}) but UQ_API_KEYS is empty: "
            "set UQ_API_KEYS=<key1>,<key2>, or UQ_AUTH=off to serve without keys"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = await connect(settings)
        gw = Gateway.build(settings, redis, open_history(settings.database_url))
        app.state.gateway = gw
        beat = Heartbeat(
            redis,
            settings,
            "gateway",
            settings.instance_name(),
            details=lambda: {"ws_clients": gw.metrics.clients, "fanout_entries": gw.fanout.entries},
        )
        await gw.fanout.start()
        every_s = min(settings.lease_timeout_s, settings.push_idle_timeout_s) / 3
        sweeper = asyncio.create_task(
            sweep_forever(Leases(gw.bus), settings.lease_timeout_s, every_s), name="lease-sweeper"
        )
        beat.status = "running"
        beat.start()
        log.info("gateway ready", extra={"host": settings.host, "port": settings.port, "auth": settings.auth_required})
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await gw.fanout.stop()
            await beat.stop()
            if gw.history.store is not None:
                await gw.history.store.close()
            await redis.aclose()

    app = FastAPI(
        title="Semantic Uncertainty Runtime gateway",
        version="1.0.0",
        description="Jobs, live token-level uncertainty over WebSocket, the push API for any LLM, history, health.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    _errors(app)
    app.include_router(routes_jobs.build_router(settings))
    for module in (routes_sessions, routes_push, routes_ops, routes_openai):
        app.include_router(module.router)

    @app.websocket(WS_PATH)
    async def websocket(ws: WebSocket) -> None:
        await serve_socket(ws, ws.app.state.gateway)

    @app.websocket(_DASHBOARD_ROUTE)
    async def no_socket_here(ws: WebSocket) -> None:
        """A WebSocket to any other path: a JSON 404 for the upgrade request (or, where the server cannot
        send one, accepted and closed with 4404 and a reason naming /ws)."""
        message = f"no WebSocket at {ws.url.path!r}; the WebSocket is at {WS_PATH}"
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            # uvicorn's websockets-sansio logs a spurious "returned without completing handshake" after
            # a denial response (Kludex/uvicorn#3138); the client gets the 404 all the same
            await ws.send_denial_response(JSONResponse(error_body(message, "not_found"), status_code=404))
            return
        await ws.accept()
        await ws.close(code=4404, reason=message[:120])

    _frontend(app, Path(settings.frontend_dir))
    origins = settings.split(settings.cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    return app


def error_response(
    path: str, body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one rendering of an error: {"error": {"message", "type", "param"}}; under /v1, OpenAI's shape
    and status codes (openai_api.openai_error), so OpenAI's clients raise their own exception classes."""
    if path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/"):
        status, body, extra = openai_error(status, body)
        headers = {**(headers or {}), **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    """One JSON shape for every error (error_response)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = RateLimiter.retry_after_header(exc.retry_after_s)
        return error_response(request.url.path, exc.body(), exc.status, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        err: dict[str, Any] = exc.errors()[0]
        if err.get("type") == "json_invalid":
            bad: ApiError = InvalidJsonError(f"the body is not valid JSON: {err.get('msg')}")
        else:
            bad = invalid(exc.errors(), root=exc.body, request=True)
        return error_response(request.url.path, bad.body(), bad.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = request.url.path
        status, headers = exc.status_code, exc.headers
        message = str(exc.detail)
        if status in (404, 405):  # from routing: the dashboard's catch-all matches every GET
            allowed = _methods(app, path)
            method = request.scope.get(ORIGINAL_METHOD, request.method)
            if allowed and method not in allowed:
                status, headers = 405, {"Allow": ", ".join(sorted(allowed))}
                message = f"{method} is not allowed on {path}; allowed: {headers['Allow']}"
            else:
                status, headers, message = 404, None, _no_route(app, path)
        kind = _HTTP_TYPES.get(status, "http_error")
        return error_response(path, error_body(message, kind), status, headers)

    @app.exception_handler(RedisError)
    async def redis_down(request: Request, exc: RedisError) -> JSONResponse:
        log.error("redis error", extra={"path": request.url.path, "error": str(exc)})
        message = f"Redis is not reachable or failed ({exc}); the gateway retries on the next request"
        return error_response(request.url.path, error_body(message, "unavailable"), 503)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", extra={"path": request.url.path})
        return error_response(
            request.url.path, error_body("internal error; see the gateway's log", "internal_error"), 500
        )


def is_api_path(path: str) -> bool:
    """Whether ``path`` is one of API_PREFIXES or lies under one (``/sessions/x``; not ``/sessionsx``)."""
    return any(path == p or path.startswith(p + "/") for p in API_PREFIXES)


def _methods(app: FastAPI, path: str) -> set[str]:
    """The methods the API routes (the dashboard's catch-all aside) serve on ``path``."""
    allowed: set[str] = set()
    for method in _METHODS:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        for route in app.router.routes:
            if getattr(route, "path", None) == _DASHBOARD_ROUTE:
                continue
            if route.matches(scope)[0] is Match.FULL:
                allowed.add(method)
                break
    if "GET" in allowed:
        allowed.add("HEAD")
    return allowed


def _no_route(app: FastAPI, path: str) -> str:
    """The 404 message: what was asked, and the likely right path (no trailing slashes; /ws is a WebSocket)."""
    if path == WS_PATH:
        return f"{WS_PATH} is the WebSocket: connect with a WebSocket client (ws://…{WS_PATH}), not plain HTTP"
    stripped = path.rstrip("/")
    if stripped != path and stripped and _methods(app, stripped):
        return f"no route {path!r}: paths take no trailing slash; did you mean {stripped!r}?"
    return f"no route {path!r}; see /docs"


def _frontend(app: FastAPI, root: Path) -> None:
    """The built dashboard at ``/``; unknown non-API paths get index.html (client-side routing)."""

    @app.get(_DASHBOARD_ROUTE, include_in_schema=False)
    def dashboard(path: str) -> Response:
        if is_api_path("/" + path):
            raise StarletteHTTPException(404)
        base = root.resolve()
        index = base / "index.html"
        if not index.is_file():
            return JSONResponse(
                error_body(
                    f"the dashboard is not built at {root} (run `npm run build` in frontend/, or set UQ_FRONTEND_DIR); "
                    "the API is at /docs",
                    "not_found",
                ),
                status_code=404,
            )
        target = (base / path).resolve()
        if path and target.is_relative_to(base) and target.is_file():
            return FileResponse(target)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})


ORIGINAL_METHOD = "uq.original_method"


class HeadAsGet:
    """HEAD on every GET route: the GET's status and headers without its body.

    Starlette's own routes answer HEAD, FastAPI's do not (they answer 405); this runs HEAD as GET and
    drops the body. The scope keeps the original method under ORIGINAL_METHOD for error messages.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", ORIGINAL_METHOD: "HEAD"}, receive, headers_only)


class BodyGuard:
    """Before the app reads a body: 413 when it is over ``max_bytes`` (declared or streamed), and 400 when
    JSON in it nests deeper than MAX_JSON_DEPTH (the parser would exhaust its recursion)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _may_be_json(scope):
            try:
                check_depth(body)
            except JsonTooDeepError as exc:
                problem = error_body(f"the body is not usable JSON: {exc}", "invalid_json")
                await error_response(scope["path"], problem, 400)(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than {self.max_bytes} bytes (setting UQ_MAX_BODY_BYTES)"
        await error_response(scope["path"], error_body(message, "payload_too_large"), 413)(scope, receive, send)


def _may_be_json(scope: Scope) -> bool:
    """Whether FastAPI would parse the body as JSON: no content type, or a JSON one."""
    content_type = dict(scope.get("headers", ())).get(b"content-type", b"").lower()
    return not content_type or b"json" in content_type
