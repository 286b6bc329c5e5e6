"""Settings of the gateway (env prefix ``UQ_``; every one documented in docs/operations.md)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """The HTTP/WebSocket front door (``python -m services.gateway``)."""

    host: str = Field("127.0.0.1", description="Address the gateway binds.")
    port: int = Field(8080, ge=1, le=65_535, description="Port of REST, WebSocket and the dashboard.")
    frontend_dir: str = Field("frontend/dist", description="Built dashboard served at `/`.")
