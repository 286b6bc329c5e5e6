"""Gateway fixtures: settings on the test's prefix and a temp SQLite audit trail, the app in-process
(with its lifespan, for httpx), and a real uvicorn server on a free port (for WebSockets)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.common.settings import CommonSettings
from services.gateway.app import create_app
from services.gateway.services import Gateway
from services.gateway.settings import GatewaySettings
from services.recorder import migrate as migrations
from tests.waiting import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def gw_settings(settings: CommonSettings, tmp_path: Path) -> GatewaySettings:
    """A gateway's settings, its history database created as the recorder creates it."""
    url = f"sqlite:///{tmp_path}/uq.sqlite3"
    engine = migrations.create(url)
    migrations.upgrade(engine)
    engine.dispose()
    return GatewaySettings(
        **settings.model_dump(),
        database_url=url,
        auth="off",
        done_grace_s=0.3,
        frontend_dir=str(tmp_path / "dist"),
    )


@asynccontextmanager
async def running_app(settings: GatewaySettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and an httpx client calling it in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield app, client


@pytest.fixture
async def client(gw_settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(gw_settings) as (_, c):
        yield c


def gateway_of(app: FastAPI) -> Gateway:
    gw: Gateway = app.state.gateway
    return gw


@asynccontextmanager
async def serving(settings: GatewaySettings, **overrides: Any) -> AsyncIterator[tuple[str, FastAPI]]:
    """A real uvicorn server on a free port; yields its ``host:port`` and the app."""
    port = free_port()
    settings = settings.model_copy(update={"port": port, **overrides})
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()  # it failed to start: its error, not a timeout
        return bool(server.started)

    await eventually(started, what=f"uvicorn to listen on port {port}")
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task
