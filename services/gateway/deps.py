"""Dependencies shared by the routers: the service layer, and the guard (API key + rate limit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.services import Gateway

_bearer = HTTPBearer(auto_error=False, description="An API key (UQ_API_KEYS), when the gateway requires one.")


async def gateway(request: Request) -> Gateway:
    """The service layer. ``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
    hop on every request for one attribute read."""
    gw: Gateway = request.app.state.gateway
    return gw


GatewayDep = Annotated[Gateway, Depends(gateway)]


async def guard(
    request: Request,
    gw: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who calls (for the rate limit); raises 401 without a valid key when keys are required, 429 over the limit."""
    authorization = f"Bearer {credentials.credentials}" if credentials is not None else None
    client = request.client.host if request.client else "unknown"
    caller = gw.auth.identify(authorization, request.query_params.get("api_key"), client)
    await gw.limiter.check(caller)
    return caller


Guarded = [Depends(guard)]
SessionIdPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="Session identifier.")
]
