"""Request and response bodies of the REST API and the WebSocket (strict: unknown fields are refused).

The stream contracts (services.common.contracts) stay the source of truth for what flows through
Redis; these models are what a client sends and receives.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.auditor.metrics.stats import MASS_TOLERANCE
from services.common.contracts import (
    AlertEvent,
    AuditEvent,
    ChatMessage,
    RiskEvent,
    SessionRecord,
    SessionStatus,
    SummaryEvent,
)
from services.common.contracts.events import SessionId


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- jobs ----------------------------------------------------------------------------------------


class GenerateRequest(_Strict):
    """Body of ``POST /generate`` and of the WebSocket ``generate`` message (without ``type``)."""

    prompt: str | None = Field(None, max_length=200_000, description="Plain prompt; or use messages.")
    messages: list[ChatMessage] | None = Field(None, max_length=1_000, description="Chat messages instead of prompt.")
    max_tokens: int = Field(256, ge=1, le=32_768, description="Most tokens to generate.")
    temperature: float = Field(0.7, ge=0.0, le=5.0, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass; 1 disables it.")
    top_k: int = Field(0, ge=0, le=100_000, description="Sample among the k most likely; 0 disables it.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Same seed, same text.")
    stop: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=16, description="Stop strings."
    )
    model: str | None = Field(None, max_length=512, description="Model; null = the generator's default.")

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' must hold at least one message")
        return self


class SessionUrls(_Strict):
    session: str = Field(description="GET: the session with tokens, alerts and risk.")
    status: str = Field(description="GET: the session's current status.")
    cancel: str = Field(description="POST: cancel it.")
    ws: str = Field(description="WebSocket path; send {'type': 'subscribe', 'session_id': ...}.")


class GenerateResponse(_Strict):
    session_id: str
    status: SessionStatus
    urls: SessionUrls


class StatusResponse(_Strict):
    """A session's current state, from the live view or, once it is gone from there, the audit trail."""

    session_id: str
    status: SessionStatus
    reason: str | None = None
    tokens: int = Field(0, description="Tokens audited so far.")
    risk: str = Field("safe", description="Current risk level.")
    source: Literal["live", "history"] = Field(description="Where the answer came from.")


class CancelResponse(_Strict):
    session_id: str
    status: Literal["cancelling", "cancelled", "finished", "failed"] = Field(
        description="cancelling: the generator stops at its next token; otherwise the session had already ended."
    )


# --- history -------------------------------------------------------------------------------------


class SessionList(_Strict):
    items: list[SessionRecord]
    total: int


class TokenMessage(AuditEvent):
    """A ``uq:audits`` entry as the WebSocket and ``GET /sessions/{id}`` show it: ``type`` is ``token``."""

    type: Literal["token"] = Field("token", description="Message type.")  # type: ignore[assignment]


class SessionDetail(_Strict):
    """``GET /sessions/{id}``: the messages a WebSocket subscriber gets, from the audit trail."""

    session: SessionRecord
    tokens: list[TokenMessage] = Field(description="Tokens with their metrics, in seq order.")
    alerts: list[AlertEvent] = Field(description="Alerts, by the token that fired them.")
    risks: list[RiskEvent] = Field(description="Risk level changes.")
    summary: SummaryEvent | None = Field(description="The alerter's summary once the session ended, else null.")


# --- push API ------------------------------------------------------------------------------------


class PushStartRequest(_Strict):
    """Start a session whose tokens some other LLM produces."""

    model: str = Field(min_length=1, max_length=512, description="Model name, e.g. gpt-4o-mini.")
    provider: str = Field("push", min_length=1, max_length=128, description="Who runs it, e.g. openai.")
    prompt: str | None = Field(None, max_length=200_000, description="The prompt, for the record.")
    session_id: SessionId | None = Field(None, description="Your own id; null = the gateway makes one.")


class PushStartResponse(_Strict):
    session_id: str
    status: SessionStatus
    urls: SessionUrls


#: The largest logprob accepted: up to log(1 + MASS_TOLERANCE) ≈ +0.001 over 0 is a producer's float
#: rounding (OpenAI sends +1e-7 and the like) and is clamped to 0, as the top-k sums are.
MAX_LOGPROB = math.log1p(MASS_TOLERANCE)


class OpenAITopLogprob(BaseModel):
    """One entry of OpenAI's ``top_logprobs`` (chat format), accepted as it comes."""

    model_config = ConfigDict(extra="ignore")

    token: str = Field(max_length=4_096)
    logprob: float = Field(description="Natural-log probability; finite, <= 0 (checked by the push API).")
    bytes: list[int] | None = None


class PushToken(_Strict):
    """One token: text plus whatever is known of its distribution.

    Accepts OpenAI's ``logprobs.content[i]`` items as they come (``token``, ``logprob``, ``bytes``,
    ``top_logprobs``). ``top_logprobs`` may also be the legacy completions dict ``{token: logprob}``.
    Full ``logits`` are a list of numbers or base64 of little-endian float16; they need ``token_id``.
    """

    text: str | None = Field(None, max_length=4_096, description="The token's text (or `token`).")
    token: str | None = Field(None, max_length=4_096, description="OpenAI's name for `text`.")
    bytes: list[int] | None = Field(None, max_length=16_384, description="OpenAI's UTF-8 bytes; ignored.")
    token_id: int | None = Field(None, ge=0, description="Vocabulary id; required with `logits`.")
    logprob: float | None = Field(
        None,
        le=MAX_LOGPROB,
        allow_inf_nan=False,
        description="Natural-log probability of the token; up to +0.001 is rounding, taken as 0; "
        "-9999 or less is OpenAI's and vLLM's 'below the floor'.",
    )
    probability: float | None = Field(None, gt=0.0, le=1.0, description="Probability of the token.")
    top_logprobs: list[OpenAITopLogprob] | dict[str, float] | None = Field(
        None,
        description="OpenAI-format alternatives (most likely first, or any order); `[]` = none known "
        "(the token is then `prob_only`, or `none` without a logprob).",
    )
    logits: list[float] | str | None = Field(
        None, description="Full next-token logits: a list, or base64 of little-endian float16."
    )

    @model_validator(mode="after")
    def _text(self) -> PushToken:
        if self.text is None and self.token is None:
            raise ValueError("give the token's 'text' (or OpenAI's 'token')")
        if self.logprob is not None and self.probability is not None:
            raise ValueError("give 'logprob' or 'probability', not both")
        return self


class PushTokensRequest(_Strict):
    tokens: list[PushToken] = Field(min_length=1, description="Tokens in order.")


class PushTokensResponse(_Strict):
    session_id: str
    accepted: int
    first_seq: int
    last_seq: int


class PushFinishRequest(_Strict):
    status: Literal["finished", "failed", "cancelled"] = Field("finished", description="How it ended.")
    reason: str | None = Field(None, max_length=4_096, description="Why, e.g. stop or length.")


class PushFinishResponse(_Strict):
    session_id: str
    status: SessionStatus
    tokens: int


# --- operations ----------------------------------------------------------------------------------


class Thresholds(_Strict):
    hbar_s: float
    prob: float


class Limits(_Strict):
    max_tokens: int
    prompt_chars: int
    push_batch: int


class ConfigResponse(_Strict):
    models: list[str]
    default_model: str
    thresholds: Thresholds
    limits: Limits
    auth_required: bool


class ServiceBeat(_Strict):
    instance: str
    age_s: float
    status: str


class HealthResponse(_Strict):
    status: Literal["ok", "unhealthy"]
    redis: dict[str, Any]
    services: dict[str, list[ServiceBeat]]
    missing: list[str] = Field(description="Required parts that are missing; empty when healthy.")


class ErrorDetail(_Strict):
    message: str
    type: str
    param: str | None


class ErrorResponse(_Strict):
    error: ErrorDetail
