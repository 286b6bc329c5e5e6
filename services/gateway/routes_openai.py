"""REST: the OpenAI-compatible surface under ``/v1`` (docs/api.md, "OpenAI-compatible API").

Thin, like every router: the bodies are services.gateway.openai_api's models, the job and its audited
tokens come from services.gateway.completions, and openai_api's formats shape the answer. Errors are
rendered in OpenAI's shape by the app (services/gateway/app.py → ``openai_api.openai_error``).

Every answer names its audit session: the ``X-UQ-Session-Id`` header and ``uq_session_id`` on the body
and on every chunk. A client that goes away (a closed stream, an abandoned request) gets its job cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from services.gateway.completions import Outcome, Run, Token
from services.gateway.deps import GatewayDep, Guarded
from services.gateway.errors import ApiError, GenerationFailedError, SessionCancelledError
from services.gateway.openai_api import (
    SESSION_HEADER,
    SSE_DONE,
    ChatCompletion,
    ChatCompletionRequest,
    ChatFormat,
    Completion,
    CompletionFormat,
    CompletionRequest,
    Format,
    ModelCard,
    ModelList,
    OpenAIErrorResponse,
    openai_error,
    sse,
)

router = APIRouter(
    prefix="/v1", tags=["openai"], dependencies=Guarded, responses={"default": {"model": OpenAIErrorResponse}}
)
_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The completion; with `stream: true`, server-sent events (`data: <chunk>` … `data: [DONE]`).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get("/models", response_model=ModelList)
async def list_models(gw: GatewayDep) -> ModelList:
    """The models this deployment serves (`GET /config`'s `models`)."""
    return ModelList(data=[ModelCard(id=m) for m in await gw.completions.models()])


@router.post("/chat/completions", response_model=ChatCompletion, responses=_STREAMED)
async def chat_completions(body: ChatCompletionRequest, request: Request, gw: GatewayDep) -> Response:
    """A chat completion, generated and audited like any job; streamed with `stream: true`."""
    return await _complete(body, ChatFormat, request, gw)


@router.post("/completions", response_model=Completion, responses=_STREAMED)
async def completions(body: CompletionRequest, request: Request, gw: GatewayDep) -> Response:
    """A text completion (OpenAI's legacy endpoint), generated and audited like any job."""
    return await _complete(body, CompletionFormat, request, gw)


async def _complete(
    body: ChatCompletionRequest | CompletionRequest,
    make: Callable[[str, str, int, int | None], Format],
    request: Request,
    gw: GatewayDep,
) -> Response:
    run = await gw.completions.start(body.generate_fields())
    fmt = make(run.session_id, body.model, int(time.time()), body.top_n)
    headers = {SESSION_HEADER: run.session_id}
    if body.stream:
        chunks = _stream(run, fmt, include_usage=body.include_usage)
        return StreamingResponse(
            chunks, media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"}
        )
    try:
        collected = await _collect(run, request)
    finally:
        run.close()
    if collected is None:
        return Response(status_code=499)  # the client went away (and its job was cancelled); nobody reads this
    tokens, outcome = collected
    failure = _failure(outcome, run.session_id)
    if failure is not None:
        raise failure
    return JSONResponse(fmt.whole(tokens, outcome, outcome.finish_reason).model_dump(mode="json"), headers=headers)


async def _stream(run: Run, fmt: Format, *, include_usage: bool) -> AsyncIterator[str]:
    """The chunks as server-sent events; a session that fails ends the stream with an ``error`` event."""
    try:
        first = fmt.first()
        if first is not None:
            yield sse(first)
        async for event in run.events():
            if isinstance(event, Token):
                yield sse(fmt.token(event))
                continue
            failure = _failure(event, run.session_id)
            if failure is not None:
                _status, body, _headers = openai_error(failure.status, failure.body())
                yield sse(body)
                return
            yield sse(fmt.last(event.finish_reason))
            if include_usage:
                yield sse(fmt.usage_chunk(event))
        yield SSE_DONE
    finally:
        run.close()


async def _collect(run: Run, request: Request) -> tuple[list[Token], Outcome] | None:
    """Every token and the outcome; None when the client disconnected first."""

    async def gather() -> tuple[list[Token], Outcome]:
        tokens: list[Token] = []
        async for event in run.events():
            if isinstance(event, Outcome):
                return tokens, event
            tokens.append(event)
        raise RuntimeError("the feed ended without an outcome")

    work = asyncio.create_task(gather())
    gone = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, gone):
            task.cancel()
    if work.done() and not work.cancelled():
        return work.result()
    return None


async def _disconnected(request: Request) -> None:
    """Returns once the client has disconnected (the body has been read, so nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _failure(outcome: Outcome, session_id: str) -> ApiError | None:
    """The error for a session that did not finish (the reason, and where its audit trail is)."""
    if outcome.status == "finished":
        return None
    where = f"(session {session_id}: GET /sessions/{session_id})"
    if outcome.status == "cancelled":
        return SessionCancelledError(f"the session was cancelled: {outcome.reason} {where}")
    return GenerationFailedError(f"the generation failed: {outcome.reason} {where}")
