"""REST: submit a generation job, its status, cancel it."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.deps import GatewayDep, Guarded, SessionIdPath
from services.gateway.models import CancelResponse, ErrorResponse, GenerateRequest, GenerateResponse, StatusResponse

router = APIRouter(tags=["jobs"], dependencies=Guarded, responses={"default": {"model": ErrorResponse}})


@router.post("/generate", status_code=202, response_model=GenerateResponse)
async def generate(body: GenerateRequest, gw: GatewayDep) -> GenerateResponse:
    """Queue a generation; follow it on `/ws` (subscribe) or poll `GET /sessions/{id}`."""
    return await gw.jobs.submit(body)


@router.get("/sessions/{session_id}/status", response_model=StatusResponse)
async def session_status(session_id: SessionIdPath, gw: GatewayDep) -> StatusResponse:
    """The session's current status, tokens so far and risk."""
    return await gw.history.status(session_id)


@router.post("/sessions/{session_id}/cancel", status_code=202, response_model=CancelResponse)
async def cancel(session_id: SessionIdPath, gw: GatewayDep) -> CancelResponse:
    """Ask the generator to stop at its next token."""
    return await gw.jobs.cancel(session_id)
