"""REST: the push API, for tokens any other LLM produced."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.deps import GatewayDep, Guarded, SessionIdPath
from services.gateway.models import (
    ErrorResponse,
    PushFinishRequest,
    PushFinishResponse,
    PushStartRequest,
    PushStartResponse,
    PushTokensRequest,
    PushTokensResponse,
)

router = APIRouter(prefix="/push", tags=["push"], dependencies=Guarded, responses={"default": {"model": ErrorResponse}})


@router.post("/sessions", status_code=201, response_model=PushStartResponse)
async def start(body: PushStartRequest, gw: GatewayDep) -> PushStartResponse:
    """Start a session whose tokens you push."""
    return await gw.push.start(body)


@router.post("/sessions/{session_id}/tokens", status_code=202, response_model=PushTokensResponse)
async def push_tokens(session_id: SessionIdPath, body: PushTokensRequest, gw: GatewayDep) -> PushTokensResponse:
    """Push tokens, in order; each gets the next seq. They are audited like generated ones."""
    return await gw.push.push(session_id, body.tokens)


@router.post("/sessions/{session_id}/finish", response_model=PushFinishResponse)
async def finish(
    session_id: SessionIdPath, gw: GatewayDep, body: PushFinishRequest | None = None
) -> PushFinishResponse:
    """End the session (finished, failed or cancelled)."""
    return await gw.push.finish(session_id, body or PushFinishRequest())
