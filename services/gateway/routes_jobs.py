"""REST: submit a generation job, its status, cancel it."""

# No ``from __future__ import annotations`` here: the body's type is each app's own GenerateRequest
# (its bounds are that app's settings), and FastAPI reads it from the annotation object.

from fastapi import APIRouter

from services.gateway.deps import GatewayDep, Guarded, SessionIdPath
from services.gateway.models import CancelResponse, ErrorResponse, GenerateResponse, StatusResponse, request_model
from services.gateway.settings import GatewaySettings


def build_router(settings: GatewaySettings) -> APIRouter:
    """The jobs routes, validating ``POST /generate`` with the bounds of ``settings``."""
    router = APIRouter(tags=["jobs"], dependencies=Guarded, responses={"default": {"model": ErrorResponse}})
    Body = request_model(settings)

    @router.post("/generate", status_code=202, response_model=GenerateResponse)
    async def generate(body: Body, gw: GatewayDep) -> GenerateResponse:  # type: ignore[valid-type]
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

    return router
