"""REST: session history (from the recorder's store, merged with what is live), deletion, export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from services.common.contracts import RiskLevel, SessionStatus
from services.common.contracts.history import SessionQuery, SessionSort, SortOrder
from services.gateway.deps import GatewayDep, Guarded, SessionIdPath
from services.gateway.errors import BadRequestError
from services.gateway.models import ErrorResponse, SessionDetail, SessionList

router = APIRouter(tags=["sessions"], dependencies=Guarded, responses={"default": {"model": ErrorResponse}})
Format = Literal["jsonl", "csv"]
_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


async def session_query(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    status: SessionStatus | None = None,
    risk: RiskLevel | None = None,
    q: Annotated[str | None, Query(max_length=500, description="Case-insensitive substring of the prompt.")] = None,
    model: Annotated[str | None, Query(max_length=512, description="Exact model name.")] = None,
    peak: Annotated[RiskLevel | None, Query(description="Only sessions whose peak risk reached this level.")] = None,
    since_ns: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Created at or after (ns since the epoch).")
    ] = None,
    until_ns: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Created before (ns since the epoch).")
    ] = None,
    sort: Annotated[SessionSort, Query(description="Sort key; ties are newest first.")] = "created",
    order: Annotated[SortOrder, Query(description="asc or desc.")] = "desc",
) -> SessionQuery:
    """``GET /sessions``'s query parameters, checked."""
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise BadRequestError("until_ns is before since_ns", param="until_ns")
    return SessionQuery(limit, offset, status, risk, q, model, peak, since_ns, until_ns, sort, order)


@router.get("/sessions", response_model=SessionList)
async def list_sessions(gw: GatewayDep, query: Annotated[SessionQuery, Depends(session_query)]) -> SessionList:
    """Sessions, newest first by default, optionally only those with a status, a current risk level, a
    peak risk at or above a level, a prompt containing ``q``, one model, or a creation time window."""
    return await gw.history.list_sessions(query)


@router.get("/sessions/{session_id}", response_model=SessionDetail)
async def get_session(session_id: SessionIdPath, gw: GatewayDep) -> SessionDetail:
    """The session with its tokens (and metrics), alerts, risk changes and summary."""
    return await gw.history.detail(session_id)


@router.delete("/sessions/{session_id}", status_code=204)
async def delete_session(session_id: SessionIdPath, gw: GatewayDep) -> Response:
    """Delete a session's audit trail."""
    await gw.history.delete(session_id)
    return Response(status_code=204)


def _stream(rows: AsyncIterator[str], fmt: str, filename: str) -> StreamingResponse:
    return StreamingResponse(
        rows, media_type=_MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    )


@router.get("/sessions/{session_id}/export", response_class=StreamingResponse)
async def export_session(session_id: SessionIdPath, gw: GatewayDep, format: Format = "jsonl") -> StreamingResponse:
    """One session's audit trail as JSON lines or CSV."""
    await gw.history.status(session_id)  # 404 before the stream starts
    return _stream(
        gw.history.export(session_id=session_id, since_ns=None, until_ns=None, fmt=format), format, session_id
    )


@router.get("/export", response_class=StreamingResponse)
async def export_all(
    gw: GatewayDep,
    since_ns: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    until_ns: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    format: Format = "jsonl",
) -> StreamingResponse:
    """Every session's audit trail in a time window (ns since the epoch), as JSON lines or CSV."""
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise BadRequestError("until_ns is before since_ns", param="until_ns")
    rows = gw.history.export(session_id=None, since_ns=since_ns, until_ns=until_ns, fmt=format)
    return _stream(rows, format, "sessions")
