"""Completions: run one job through ``uq:jobs`` and follow its audited tokens, for the OpenAI surface.

Knows the jobs service and the live state, nothing of HTTP or of OpenAI's wire format
(services/gateway/openai_api.py shapes what this yields; routes_openai.py serves it).

:meth:`CompletionService.start` subscribes a :class:`Feed` to the session *before* submitting the job,
so no message can be missed. The fan-out delivers the session's messages to it as to any WebSocket
(services/gateway/live.py; ``deliver`` never blocks: the feed keeps what it gets, at most one message
per token the job may generate, plus its lifecycle). :meth:`Run.events` yields the audited tokens in
seq order (auditor replicas may publish them out of order), then one :class:`Outcome`: once the
terminal ``session`` entry came and every token it counts was audited, or, when ``done`` comes first
(the auditors are down: ``done`` comes after four grace periods), with what arrived.

The text of a token is the text it released (a token that completes a character or a stop-sequence
prefix carries what was held back; the stop sequence itself is never in the text), so the tokens'
texts join to the completion, as ``GET /sessions/{id}`` shows them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from redis.exceptions import RedisError

from services.common.contracts.events import TERMINAL_STATUSES
from services.gateway.errors import ApiError, BadRequestError, ModelNotFoundError, invalid
from services.gateway.jobs import JobService, new_session_id
from services.gateway.live import LiveState
from services.gateway.messages import MessageKey
from services.gateway.models import request_model
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

#: OpenAI's floor for a log-probability too small to report (vLLM's too).
LOGPROB_FLOOR = -9999.0


def logprob_of(prob: float | None) -> float:
    """ln p, floored at LOGPROB_FLOOR (also for a probability the auditor could not compute: null)."""
    if prob is None or prob <= 0.0:
        return LOGPROB_FLOOR
    return max(math.log(prob), LOGPROB_FLOOR)


@dataclass(frozen=True, slots=True)
class Token:
    """One audited token of the completion."""

    seq: int
    text: str
    logprob: float  # under the raw distribution, before temperature and top-p (see token_of)
    top: list[tuple[str, float]]  # the audit's alternatives (text, logprob), most likely first


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the session ended."""

    status: str  # finished, failed or cancelled
    reason: str | None  # eos, stop, max_tokens, or why it failed
    tokens: int  # tokens generated
    prompt_tokens: int | None  # from the terminal entry, when the engine reports it

    @property
    def finish_reason(self) -> Literal["stop", "length"]:
        """OpenAI's: ``length`` when ``max_tokens`` ended it, else ``stop`` (end of sequence, stop string)."""
        return "length" if self.reason == "max_tokens" else "stop"


def token_of(message: dict[str, Any]) -> Token:
    """The Token of one ``token`` message (an audit, services/gateway/messages.py).

    Its logprob is its own alternative's when it is among the top-k (the generator's float32 value, so
    that it equals its entry in ``top_logprobs``), else ln(``metrics.prob``) (the auditor's, from the
    float16 logits: within about 0.01 of it).
    """
    alternatives = message.get("top_k") or ()
    top = [(str(t["text"]), float(t["logprob"])) for t in alternatives]
    own = [
        float(t["logprob"])
        for t in alternatives
        if t.get("token_id") is not None and t["token_id"] == message.get("token_id")
    ]
    prob = (message.get("metrics") or {}).get("prob")
    logprob = own[0] if own else logprob_of(prob)
    return Token(seq=int(message["seq"]), text=str(message["text"]), logprob=logprob, top=top)


class Feed:
    """A subscriber of one session in the live state that keeps its token and lifecycle messages."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._inbox: deque[tuple[MessageKey, str]] = deque()
        self._arrived = asyncio.Event()

    def deliver(self, session_id: str, key: MessageKey, text: str) -> None:
        if key[0] in ("token", "session", "done"):
            self._inbox.append((key, text))
            self._arrived.set()

    async def events(self) -> AsyncIterator[Token | Outcome]:
        """The tokens in seq order, then the Outcome (see the module's docstring)."""
        pending: dict[int, Token] = {}
        following = 0  # the seq to yield next
        end: dict[str, Any] | None = None  # the terminal session message
        done: dict[str, Any] | None = None
        while True:
            while self._inbox:
                (kind, _seq), text = self._inbox.popleft()
                message = json.loads(text)
                if kind == "token":
                    token = token_of(message)
                    if token.seq >= following:
                        pending[token.seq] = token
                elif kind == "session" and message.get("status") in TERMINAL_STATUSES:
                    end = message
                elif kind == "done":
                    done = message
            while following in pending:
                yield pending.pop(following)
                following += 1
            last = end or done
            if last is not None:
                counted = int(last.get("tokens") or 0)
                if following >= counted:
                    yield Outcome(str(last["status"]), last.get("reason"), following, last.get("prompt_tokens"))
                    return
                if done is not None:  # done came and tokens are still missing: they will not come
                    yield Outcome("failed", _incomplete(counted), following, last.get("prompt_tokens"))
                    return
            self._arrived.clear()
            await self._arrived.wait()


def _incomplete(counted: int) -> str:
    return (
        f"only some of the session's {counted} tokens were audited before it was done "
        "(an auditor is down or behind); GET /sessions/{id} has what was recorded"
    )


class Run:
    """One submitted completion: its session and its feed."""

    def __init__(self, service: CompletionService, session_id: str, feed: Feed) -> None:
        self.service = service
        self.session_id = session_id
        self.feed = feed
        self.ended = False

    async def events(self) -> AsyncIterator[Token | Outcome]:
        async for event in self.feed.events():
            if isinstance(event, Outcome):
                self.ended = True
            yield event

    def close(self) -> None:
        """Stop following; a job that has not ended (the client went away) is cancelled, in the background."""
        self.service.live.unsubscribe(self.session_id, self.feed)
        if not self.ended:
            self.ended = True
            self.service.cancel_soon(self.session_id)


class CompletionService:
    def __init__(self, jobs: JobService, live: LiveState, settings: GatewaySettings) -> None:
        self.jobs = jobs
        self.live = live
        self.settings = settings
        self._cancels: set[asyncio.Task[None]] = set()

    async def models(self) -> list[str]:
        """The models this deployment offers (as ``GET /config`` lists them)."""
        models, _default = await self.jobs.models.offered()
        return models

    async def start(self, fields: dict[str, Any]) -> Run:
        """Validate ``fields`` as a ``POST /generate`` body (this gateway's bounds), check the model,
        subscribe, then submit. Raises ApiError: BadRequestError naming the field, ModelNotFoundError."""
        model = fields.get("model")
        offered = await self.models()
        if model not in offered:
            raise ModelNotFoundError(
                f"the model {model!r} does not exist here; this gateway serves {', '.join(offered)} (GET /v1/models)",
                param="model",
            )
        try:
            request = request_model(self.settings).model_validate(fields)
        except ValidationError as exc:
            raise invalid(exc.errors(), root=fields, error=BadRequestError) from None
        try:
            await self.jobs.models.check(request.model)
        except BadRequestError as exc:
            raise ModelNotFoundError(exc.message, param="model") from None
        session_id = new_session_id()
        feed = Feed(session_id)
        self.live.subscribe(session_id, feed)
        try:
            await self.jobs.submit(request, session_id=session_id)
        except BaseException:
            self.live.unsubscribe(session_id, feed)
            raise
        return Run(self, session_id, feed)

    def cancel_soon(self, session_id: str) -> None:
        """Cancel the job without waiting (the caller may itself be being cancelled)."""
        task = asyncio.create_task(self._cancel(session_id), name=f"cancel-{session_id}")
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _cancel(self, session_id: str) -> None:
        try:
            await self.jobs.cancel(session_id)
        except (ApiError, RedisError, OSError) as exc:
            log.warning("could not cancel an abandoned completion", extra={"session_id": session_id, "error": str(exc)})
        else:
            log.info("cancelled a completion whose client went away", extra={"session_id": session_id})
