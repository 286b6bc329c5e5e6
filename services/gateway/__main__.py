"""``python -m services.gateway``: REST, WebSocket and the dashboard on one port (uvicorn)."""

from __future__ import annotations

import sys

import uvicorn

from services.common.errors import UQError
from services.common.logs import setup_logging
from services.common.runner import settle_gc
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    try:
        settings = GatewaySettings()
    except Exception as exc:  # pydantic names the variable and the problem
        print(f"gateway: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging("gateway", settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except UQError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        ws_max_size=settings.ws_max_message_bytes + 1024,
        ws_per_message_deflate=settings.ws_compression,
        timeout_graceful_shutdown=5,
    )
    settle_gc()  # as every service does: start-up objects frozen, fewer young-generation collections
    try:
        uvicorn.Server(config).run()
    except UQError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
