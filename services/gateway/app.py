"""The gateway's ASGI app: routers, middleware, error rendering and lifespan, wired in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import ConfigError
from services.common.health import Heartbeat
from services.common.leases import Leases, sweep_forever
from services.common.runner import connect, instance_name
from services.gateway import routes_jobs, routes_ops, routes_push, routes_sessions
from services.gateway.errors import ApiError, error_body
from services.gateway.history import open_store
from services.gateway.security import RateLimiter
from services.gateway.services import Gateway
from services.gateway.settings import GatewaySettings
from services.gateway.ws import serve_socket

log = logging.getLogger(__name__)
API_PREFIXES = ("/generate", "/sessions", "/push", "/health", "/metrics", "/config", "/export", "/ws", "/docs")
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
        gw = Gateway.build(settings, redis, open_store(settings.database_url))
        app.state.gateway = gw
        beat = Heartbeat(
            redis,
            settings,
            "gateway",
            instance_name(settings),
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
    for module in (routes_jobs, routes_sessions, routes_push, routes_ops):
        app.include_router(module.router)

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        await serve_socket(ws, ws.app.state.gateway)

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
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def _errors(app: FastAPI) -> None:
    """One JSON shape for every error: {"error": {"message", "type", "param"}}."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = RateLimiter.retry_after_header(exc.retry_after_s)
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err: dict[str, Any] = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        if err.get("type") == "json_invalid":
            return JSONResponse(
                error_body(f"the body is not valid JSON: {err.get('msg')}", "invalid_json"), status_code=400
            )
        where = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
        where = [p for p in where if not p.startswith("function-after")]
        param = ".".join(where) or None
        more = len(exc.errors()) - 1
        message = f"{param}: {err.get('msg')}" if param else str(err.get("msg"))
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        return JSONResponse(error_body(message, "invalid_request", param), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_TYPES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.url.path!r}; see /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(error_body(message, kind), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RedisError)
    async def redis_down(request: Request, exc: RedisError) -> JSONResponse:
        log.error("redis error", extra={"path": request.url.path, "error": str(exc)})
        message = f"Redis is not reachable or failed ({exc}); the gateway retries on the next request"
        return JSONResponse(error_body(message, "unavailable"), status_code=503)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", extra={"path": request.url.path})
        return JSONResponse(error_body("internal error; see the gateway's log", "internal_error"), status_code=500)


def _frontend(app: FastAPI, root: Path) -> None:
    """The built dashboard at ``/``; unknown non-API paths get index.html (client-side routing)."""

    @app.get("/{path:path}", include_in_schema=False)
    def dashboard(path: str) -> Response:
        if ("/" + path).startswith(API_PREFIXES):
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


class BodyLimit:
    """413 for request bodies over ``max_bytes`` (declared or streamed), before the app reads them."""

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
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            error_body(
                f"request body larger than {self.max_bytes} bytes (setting UQ_MAX_BODY_BYTES)", "payload_too_large"
            ),
            status_code=413,
        )
        await response(scope, receive, send)
