"""Request and response bodies of the REST API and the WebSocket.

What a client sends is strict: unknown fields are refused, a number is a JSON number (``"1"`` and
``true`` are not; an integer is fine where a float belongs), and NaN or ±Infinity (which Python's
JSON parser reads, also from ``1e999``) are refused. The stream contracts (services.common.contracts)
stay the source of truth for what flows through Redis; these models are what a client sends and receives.

The bounds that are settings (``max_tokens`` ≤ ``UQ_MAX_TOKENS_LIMIT``, the prompt ≤
``UQ_MAX_PROMPT_CHARS``) are built into the request model of each app by
:func:`generate_request_model`, so the OpenAPI schema, the validation and its error state the same number.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from services.auditor.metrics.stats import MASS_TOLERANCE
from services.common.contracts import (
    AlertEvent,
    AuditEvent,
    ChatMessage,
    RiskEvent,
    SamplingParams,
    ScoresEvent,
    SessionRecord,
    SessionStatus,
    SummaryEvent,
)
from services.common.contracts.events import SessionId
from services.gateway.settings import GatewaySettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Request(BaseModel):
    """What a client sends: unknown fields refused, no strings or booleans for numbers, no NaN/Infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --- jobs ----------------------------------------------------------------------------------------

DEFAULT_MAX_TOKENS = 256


def _said(message: ChatMessage) -> ChatMessage:
    if not message.content.strip():
        raise ValueError("the message's content is empty or only whitespace: there is nothing to answer")
    return message


class GenerateRequest(SamplingParams, _Request):
    """Body of ``POST /generate`` and of the WebSocket ``generate`` message (without ``type``).

    The sampling fields are the job's ``SamplingParams`` (services.common.contracts), strict as every
    request body is. The bounds shown here are the widest any gateway allows; each app validates with
    :func:`generate_request_model`, whose bounds are its settings.
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    #: Most characters of the prompt, or of all chat messages together (UQ_MAX_PROMPT_CHARS).
    prompt_chars_limit: ClassVar[int] = 200_000

    prompt: str | None = Field(None, min_length=1, max_length=200_000, description="Plain prompt; or use messages.")
    messages: list[Annotated[ChatMessage, AfterValidator(_said)]] | None = Field(
        None, max_length=1_000, description="Chat messages instead of prompt."
    )
    model: str | None = Field(
        None, min_length=1, max_length=512, description="Model; null = the generator's default (see GET /config)."
    )
    verify: int = Field(
        0,
        ge=0,
        le=20,
        description="Extra answers sampled after this one to check it; their agreement becomes the session's "
        "consistency (docs/metrics.md). 0 = none.",
    )

    @field_validator("messages")
    @classmethod
    def _chat(cls, messages: list[ChatMessage] | None) -> list[ChatMessage] | None:
        if messages is None:
            return None
        if not messages:
            raise ValueError("must hold at least one message")
        chars = sum(len(m.content) for m in messages)
        if chars > cls.prompt_chars_limit:
            raise ValueError(
                f"the messages hold {chars} characters; this gateway allows at most {cls.prompt_chars_limit} "
                "(setting UQ_MAX_PROMPT_CHARS)"
            )
        return messages

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self


@lru_cache(maxsize=16)
def generate_request_model(max_tokens: int, prompt_chars: int) -> type[GenerateRequest]:
    """GenerateRequest with the bounds of one gateway's settings (``UQ_MAX_TOKENS_LIMIT``, ``UQ_MAX_PROMPT_CHARS``).

    Same name in the OpenAPI schema; the REST route and the WebSocket validate with it.
    """
    model = create_model(
        "GenerateRequest",
        __base__=GenerateRequest,
        __module__=__name__,
        __doc__="Body of ``POST /generate`` and of the WebSocket ``generate`` message (without ``type``); "
        "``max_tokens`` and the prompt are bounded by this gateway's UQ_MAX_TOKENS_LIMIT and UQ_MAX_PROMPT_CHARS.",
        prompt=(
            str | None,
            Field(None, min_length=1, max_length=prompt_chars, description=_described(GenerateRequest, "prompt")),
        ),
        max_tokens=(
            int,
            Field(
                min(DEFAULT_MAX_TOKENS, max_tokens),
                ge=1,
                le=max_tokens,
                description=_described(GenerateRequest, "max_tokens"),
            ),
        ),
    )
    model.prompt_chars_limit = prompt_chars
    return model


def request_model(settings: GatewaySettings) -> type[GenerateRequest]:
    """The GenerateRequest a gateway with ``settings`` validates with."""
    return generate_request_model(settings.max_tokens_limit, settings.max_prompt_chars)


def _described(model: type[BaseModel], field: str) -> str | None:
    return model.model_fields[field].description


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
    live_scores: ScoresEvent | None = Field(
        None, description="While the session runs: its latest sequence scores (the summary has the final ones)."
    )


# --- push API ------------------------------------------------------------------------------------


class PushStartRequest(_Request):
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
    """One entry of OpenAI's ``top_logprobs`` (chat format), accepted as it comes (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    token: str = Field(max_length=4_096)
    logprob: float = Field(description="Natural-log probability; finite, <= 0 (checked by the push API).")
    bytes: list[int] | None = None


class PushToken(_Request):
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


class PushTokensRequest(_Request):
    tokens: list[PushToken] = Field(min_length=1, description="Tokens in order.")


class PushTokensResponse(_Strict):
    session_id: str
    accepted: int
    first_seq: int
    last_seq: int


class PushFinishRequest(_Request):
    status: Literal["finished", "failed", "cancelled"] = Field("finished", description="How it ended.")
    reason: str | None = Field(None, max_length=4_096, description="Why, e.g. stop or length.")


class PushFinishResponse(_Strict):
    session_id: str
    status: SessionStatus
    tokens: int


# --- operations ----------------------------------------------------------------------------------


class Thresholds(_Strict):
    """The thresholds HIGH_UNCERTAINTY and LOW_CONFIDENCE use for a model (the chart draws them)."""

    hbar_s: float = Field(description="ℏₛ above which HIGH_UNCERTAINTY fires.")
    prob: float = Field(description="Token probability below which LOW_CONFIDENCE fires.")
    source: Literal["alerter", "defaults"] = Field(
        description="alerter: from a running alerter's settings (its heartbeat); defaults: no alerter heartbeat "
        "seen, the alerter's documented defaults."
    )


class Limits(_Strict):
    max_tokens: int
    prompt_chars: int
    push_batch: int


class Calibration(_Strict):
    """Whether a model's signals are calibrated (docs/evaluation.md): its profile, if any."""

    calibrated: bool = Field(description="False: no calibration profile; the risk follows the rules' firings.")
    profile: str | None = Field(description="Profile id; null = uncalibrated.")
    p_wrong: bool = Field(description="Whether the profile gives a calibrated P(answer wrong).")
    risk_rates: dict[str, float] = Field(
        description="Share of the model's reference sessions at each peak risk level: what to expect on ordinary text."
    )
    thresholds: Thresholds = Field(description="The token rules' thresholds for this model (relative with a profile).")


class ConfigResponse(_Strict):
    models: list[str]
    default_model: str
    thresholds: Thresholds = Field(description="The token rules' thresholds for the default model.")
    limits: Limits
    auth_required: bool
    calibration: dict[str, Calibration] = Field(description="Per model: its calibration profile, if any.")


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
    message: str = Field(description="What went wrong and what to do, in one sentence.")
    type: str = Field(
        description="invalid_request, invalid_json, bad_request, not_found, unauthorized, … (docs/api.md)."
    )
    param: str | None = Field(description="The offending field, as a dotted path into what was sent; or null.")


class ErrorResponse(_Strict):
    error: ErrorDetail
