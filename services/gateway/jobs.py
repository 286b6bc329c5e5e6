"""Jobs: submit a generation, cancel it. Knows Redis and the contracts, nothing of HTTP."""

from __future__ import annotations

import uuid

from services.common.bus import Bus
from services.common.contracts import JobRequest, SamplingParams, SessionEvent
from services.gateway.errors import BadRequestError, NotFoundError
from services.gateway.history import HistoryService
from services.gateway.live import TERMINAL
from services.gateway.models import CancelResponse, GenerateRequest, GenerateResponse, SessionUrls
from services.gateway.settings import GatewaySettings


def new_session_id() -> str:
    return uuid.uuid4().hex


def session_urls(session_id: str) -> SessionUrls:
    return SessionUrls(
        session=f"/sessions/{session_id}",
        status=f"/sessions/{session_id}/status",
        cancel=f"/sessions/{session_id}/cancel",
        ws="/ws",
    )


def check_limits(req: GenerateRequest, settings: GatewaySettings) -> None:
    """Bounds on prompt length and max_tokens; BadRequestError naming the field otherwise."""
    if req.max_tokens > settings.max_tokens_limit:
        raise BadRequestError(
            f"max_tokens is {req.max_tokens}; this gateway allows at most {settings.max_tokens_limit} "
            "(setting UQ_MAX_TOKENS_LIMIT)",
            param="max_tokens",
        )
    chars = len(req.prompt or "") + sum(len(m.content) for m in req.messages or ())
    if chars > settings.max_prompt_chars:
        raise BadRequestError(
            f"the prompt has {chars} characters; this gateway allows at most {settings.max_prompt_chars} "
            "(setting UQ_MAX_PROMPT_CHARS)",
            param="messages" if req.messages is not None else "prompt",
        )


class JobService:
    def __init__(self, bus: Bus, settings: GatewaySettings, history: HistoryService) -> None:
        self.bus = bus
        self.settings = settings
        self.history = history

    async def submit(self, req: GenerateRequest, session_id: str | None = None) -> GenerateResponse:
        """Publish the session's ``queued`` entry, then the job; the generator takes it from there."""
        check_limits(req, self.settings)
        sid = session_id or new_session_id()
        sampling = SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            seed=req.seed,
            max_tokens=req.max_tokens,
            stop=req.stop,
        )
        prompt = req.prompt if req.prompt is not None else _render(req)
        queued = SessionEvent(
            session_id=sid, seq=0, status="queued", model=req.model, provider="transformers", prompt=prompt
        )
        job = JobRequest(
            session_id=sid, seq=0, prompt=req.prompt, messages=req.messages, model=req.model, sampling=sampling
        )
        self.history.live.ensure(sid, model=req.model, provider="transformers", prompt=prompt)
        await self.bus.publish_many([("sessions", queued), ("jobs", job)])
        return GenerateResponse(session_id=sid, status="queued", urls=session_urls(sid))

    async def cancel(self, session_id: str) -> CancelResponse:
        """Set the cancel key the generator checks between tokens (with a TTL)."""
        status = await self.history.known_status(session_id)
        if status is None:
            raise NotFoundError(f"no session {session_id!r}", param="session_id")
        if status in TERMINAL:
            return CancelResponse(session_id=session_id, status=status)
        await self.bus.redis.set(self.bus.key(f"cancel:{session_id}"), b"1", ex=self.settings.cancel_ttl_s)
        return CancelResponse(session_id=session_id, status="cancelling")


def _render(req: GenerateRequest) -> str:
    """The chat as one line per message, for the session record."""
    return "\n".join(f"{m.role}: {m.content}" for m in req.messages or ())
