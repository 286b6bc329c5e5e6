"""The WebSocket protocol of ``/ws``: every message, both directions, as a pydantic model.

This module is the protocol's contract, as services.common.contracts is the streams': docgen emits
its JSON Schema (``docs/schemas/ws-client.json``, ``docs/schemas/ws-server.json``) and the WebSocket
tables of docs/api.md from it, the dashboard's types and validators are generated from that schema,
and ``tests/common/test_docs.py`` fails on drift. Messages are *built* in one place,
services.gateway.messages; the fan-out's hot path builds plain dicts there, and the tests validate
them against :data:`ServerMessage`.

Client → server messages are strict like every request body (services.gateway.models); the server's
messages are what it sends, and a client should ignore types and fields it does not know.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from services.common.contracts import (
    AlertEvent,
    RiskEvent,
    ScoresEvent,
    SessionEvent,
    SessionStatus,
    SummaryEvent,
)
from services.common.contracts.events import Seq, SessionId
from services.gateway.models import ErrorDetail, GenerateRequest, TokenMessage, _Request

# --- client → server ----------------------------------------------------------------------------


class GenerateMessage(GenerateRequest):
    """Start a job (the fields of ``POST /generate``) and follow it: its ``session`` (queued) comes first."""

    type: Literal["generate"] = Field(description="Message type.")


class SubscribeMessage(_Request):
    """Follow a session: first a replay of what happened (tokens after ``after_seq``), then ``replayed``, then live."""

    type: Literal["subscribe"] = Field(description="Message type.")
    session_id: SessionId
    after_seq: int = Field(-1, ge=-1, description="Replay only tokens with a larger seq; -1 = from the start.")


class UnsubscribeMessage(_Request):
    """Stop following a session."""

    type: Literal["unsubscribe"] = Field(description="Message type.")
    session_id: SessionId


class CancelMessage(_Request):
    """Cancel a session; no reply: its ``cancelled`` lifecycle message follows."""

    type: Literal["cancel"] = Field(description="Message type.")
    session_id: SessionId | None = Field(None, description="null = the last session this socket started.")


class PingMessage(_Request):
    """Answered with ``pong``."""

    type: Literal["ping"] = Field(description="Message type.")


ClientMessage: TypeAlias = Annotated[
    GenerateMessage | SubscribeMessage | UnsubscribeMessage | CancelMessage | PingMessage,
    Field(discriminator="type"),
]
#: Each client message type's model (``generate`` is validated with the gateway's own bounds:
#: services.gateway.models.request_model).
CLIENT_MODELS: dict[str, type[BaseModel]] = {
    "generate": GenerateMessage,
    "subscribe": SubscribeMessage,
    "unsubscribe": UnsubscribeMessage,
    "cancel": CancelMessage,
    "ping": PingMessage,
}


# --- server → client ----------------------------------------------------------------------------


class SessionMessage(SessionEvent):
    """A session's lifecycle (``seq`` 0 queued, 1 started, 2 ended): the ``uq:sessions`` entry, live and replayed."""


class AlertMessage(AlertEvent):
    """One alert per token, listing every rule that fired on it: the ``uq:alerts`` entry."""


class RiskMessage(RiskEvent):
    """The session's risk level changed, with a sentence naming its evidence: the ``uq:alerts`` entry."""


class ScoresMessage(ScoresEvent):
    """Live sequence scores (when the answer is complete and every UQ_SCORES_EVERY tokens); a replay has the latest."""


class DoneMessage(BaseModel):
    """Once per session, after its terminal ``session`` message: the alerter's summary or, when none came, null."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["done"] = Field("done", description="Message type.")
    session_id: SessionId
    status: SessionStatus = Field(description="How the session ended.")
    reason: str | None = Field(None, description="Why it ended.")
    tokens: int = Field(ge=0, description="Tokens generated.")
    summary: SummaryEvent | None = Field(description="The alerter's summary, or null (an alerter is down).")


class ReplayedMessage(BaseModel):
    """The replay part of a subscribe is over; live messages follow."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["replayed"] = Field("replayed", description="Message type.")
    session_id: SessionId
    last_seq: int = Field(ge=-1, description="Largest token seq replayed (``after_seq`` when none).")


class MissedMessage(BaseModel):
    """This socket was too slow and messages of a session were dropped; fetch ``GET /sessions/{id}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["missed"] = Field("missed", description="Message type.")
    session_id: SessionId
    from_seq: Seq | None = Field(description="First token seq dropped; null when only alerts or risk were.")
    to_seq: Seq | None = Field(description="Last token seq dropped; null when only alerts or risk were.")
    dropped: int = Field(ge=1, description="Messages dropped.")


class PongMessage(BaseModel):
    """The answer to ``ping``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["pong"] = Field("pong", description="Message type.")


class ErrorMessage(BaseModel):
    """A message the server could not act on; the socket stays open. ``error`` is the REST error body."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["error"] = Field("error", description="Message type.")
    error: ErrorDetail = Field(description="As in REST: message, type (invalid_request, not_found, …), param.")
    session_id: SessionId | None = Field(None, description="The session it concerns, if one.")


ServerMessage: TypeAlias = Annotated[
    SessionMessage
    | TokenMessage
    | AlertMessage
    | RiskMessage
    | ScoresMessage
    | DoneMessage
    | ReplayedMessage
    | MissedMessage
    | PongMessage
    | ErrorMessage,
    Field(discriminator="type"),
]
