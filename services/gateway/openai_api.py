"""The OpenAI wire format of ``/v1`` (docs/api.md, "OpenAI-compatible API"): its models and builders.

Pure: no I/O. services/gateway/completions.py runs the job and yields its audited tokens
(:class:`~services.gateway.completions.Token`, then an :class:`~services.gateway.completions.Outcome`);
:class:`ChatFormat` and :class:`CompletionFormat` turn them into OpenAI's bodies and stream chunks;
services/gateway/routes_openai.py serves them. :func:`openai_error` is how every error under ``/v1``
is rendered (services/gateway/app.py calls it), so OpenAI's own client raises its own exception classes.

Requests are strict like every body of this gateway (unknown fields refused, a number is a JSON number,
no NaN), with one OpenAI twist: the optional fields OpenAI clients send are accepted *at the values
that change nothing* (``n: 1``, ``presence_penalty: 0``, ``logit_bias: {}``, ``tools: []``,
``response_format: {"type": "text"}``, …) and refused, naming the field, at any other value, because
this gateway cannot honour them. ``user``, ``metadata``, ``store``, ``service_tier`` and
``parallel_tool_calls`` are accepted and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from services.gateway.completions import Outcome, Token

MAX_TOP_LOGPROBS = 20
#: Sampling defaults of the OpenAI API where a field is omitted (``max_tokens``: the gateway's, see docs/api.md).
DEFAULT_TEMPERATURE = 1.0
SESSION_HEADER = "X-UQ-Session-Id"


# --- requests ------------------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _only(*allowed: Any, why: str) -> AfterValidator:
    """A field accepted only at a value that changes nothing (or null); any other value is refused with ``why``."""

    def check(value: Any) -> Any:
        if value is not None and not any(value == a and type(value) is type(a) for a in allowed):
            shown = "".join(f"{a!r} or " for a in allowed)
            raise ValueError(f"{why}; send {shown}leave it out")
        return value

    return AfterValidator(check)


_NUMBER_ZERO = (0, 0.0)
Penalty = Annotated[float | None, _only(*_NUMBER_ZERO, why="this gateway applies no penalties")]
OneChoice = Annotated[int | None, _only(1, why="this gateway returns one choice per request")]
NoLogitBias = Annotated[dict[str, Any] | None, _only({}, why="this gateway applies no logit_bias")]
NoTools = Annotated[list[Any] | None, _only([], why="this gateway does not call tools or functions")]
NoToolChoice = Annotated[str | dict[str, Any] | None, _only("none", why="this gateway does not call tools")]


class StreamOptions(_Request):
    include_usage: bool | None = Field(None, description="Send a last chunk with `usage` (and no choices).")


class TextPart(_Request):
    """A text part of a message's content (images, audio and files are refused)."""

    type: Literal["text"]
    text: str


class OpenAIChatMessage(_Request):
    """One chat message. ``developer`` is taken as ``system``; ``name`` is accepted and ignored."""

    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="Who speaks (tool and function messages are refused: this gateway calls no tools)."
    )
    content: str | list[TextPart] = Field(description="Text, or a list of text parts (joined).")
    name: str | None = Field(None, max_length=256, description="Accepted and ignored.")

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class _Sampling(_Request):
    """The fields both endpoints share."""

    model: str = Field(min_length=1, max_length=512, description="One of `GET /v1/models`.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens; omitted = the gateway's default (256).")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0 = greedy; omitted = 1.")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus mass; omitted = 1.")
    top_k: int | None = Field(None, ge=0, description="Extension (as vLLM's): sample among the k most likely.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Same seed, same text.")
    stop: str | list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="Up to 16 stop strings; the text ends before the first one (which is not returned)."
    )
    stream: bool | None = Field(None, description="Server-sent events, ending with `data: [DONE]`.")
    stream_options: StreamOptions | None = None
    n: OneChoice = None
    presence_penalty: Penalty = None
    frequency_penalty: Penalty = None
    logit_bias: NoLogitBias = None
    user: str | None = Field(None, max_length=512, description="Accepted and ignored.")

    @model_validator(mode="after")
    def _stream_options(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        return self

    def generate_fields(self) -> dict[str, Any]:
        """The job's fields (``POST /generate``'s body) for this request."""
        fields: dict[str, Any] = {
            "model": self.model,
            "temperature": DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "top_k": self.top_k or 0,
            "seed": self.seed,
            "stop": [self.stop] if isinstance(self.stop, str) else list(self.stop or []),
        }
        if self._max_tokens() is not None:
            fields["max_tokens"] = self._max_tokens()
        return fields

    def _max_tokens(self) -> int | None:
        return self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[OpenAIChatMessage] = Field(min_length=1, description="The conversation so far.")
    max_completion_tokens: int | None = Field(None, ge=1, description="OpenAI's newer name for max_tokens.")
    logprobs: bool | None = Field(None, description="Return each token's logprob.")
    top_logprobs: int | None = Field(
        None, ge=0, le=MAX_TOP_LOGPROBS, description="Alternatives per token (needs logprobs: true)."
    )
    tools: NoTools = None
    tool_choice: NoToolChoice = None
    parallel_tool_calls: bool | None = Field(None, description="Accepted and ignored (no tools).")
    functions: NoTools = None
    function_call: NoToolChoice = None
    response_format: Annotated[
        dict[str, Any] | None, _only({"type": "text"}, why="this gateway returns plain text only")
    ] = None
    modalities: Annotated[list[str] | None, _only(["text"], why="this gateway returns text only")] = None
    metadata: dict[str, str] | None = Field(None, description="Accepted and ignored.")
    store: bool | None = Field(None, description="Accepted and ignored: every session is recorded anyway.")
    service_tier: str | None = Field(None, max_length=64, description="Accepted and ignored.")

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        both = (self.max_tokens, self.max_completion_tokens)
        if None not in both and both[0] != both[1]:
            raise ValueError("max_tokens and max_completion_tokens differ; give one of them")
        return self

    def _max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def generate_fields(self) -> dict[str, Any]:
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]
        return {**super().generate_fields(), "messages": messages}

    @property
    def top_n(self) -> int | None:
        """Alternatives per token to return; None = no logprobs."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Sampling):
    """Body of ``POST /v1/completions`` (the legacy text completions)."""

    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)] = Field(
        description="The prompt: a string, or a list of exactly one (token ids and batches are refused)."
    )
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS, description="Alternatives per token; 0 = none.")
    echo: Annotated[bool | None, _only(False, why="this gateway does not echo the prompt")] = None
    best_of: OneChoice = None
    suffix: Annotated[str | None, _only(why="this gateway does not insert (suffix)")] = None

    def generate_fields(self) -> dict[str, Any]:
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        return {**super().generate_fields(), "prompt": prompt}

    @property
    def top_n(self) -> int | None:
        return self.logprobs


# --- responses -----------------------------------------------------------------------------------


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(_Response):
    prompt_tokens: int = Field(description="Prompt tokens after the chat template; 0 when the engine does not say.")
    completion_tokens: int = Field(description="Tokens generated (audited).")
    total_tokens: int


class TopLogprob(_Response):
    token: str
    logprob: float = Field(description="ln p under the raw distribution (before temperature/top-p), floored at -9999.")
    bytes: list[int] | None = Field(description="UTF-8 bytes of `token`.")


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(description="The most likely alternatives, most likely first.")


class ChoiceLogprobs(_Response):
    content: list[TokenLogprob] | None


class AssistantMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str


FinishReason = Literal["stop", "length"]


class ChatChoice(_Response):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason


class _Identified(_Response):
    id: str = Field(description="`chatcmpl-<session id>` / `cmpl-<session id>`.")
    created: int = Field(description="Unix seconds.")
    model: str
    uq_session_id: str = Field(description="Extension: the audit session (`GET /sessions/{id}`, WebSocket subscribe).")


class ChatCompletion(_Identified):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(_Response):
    """What a chunk adds: its fields only when set (the last chunk's is ``{}``, as OpenAI's)."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _set_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatChunkChoice(_Response):
    index: int = 0
    delta: ChatDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(_Identified):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]
    usage: Usage | None = Field(None, description="Only on the last chunk, with stream_options.include_usage.")


class CompletionLogprobs(_Response):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int] = Field(description="Where each token starts in the completion's text (from 0).")


class CompletionChoice(_Response):
    index: int = 0
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class Completion(_Identified):
    """A text completion, and each chunk of a streamed one (``finish_reason`` and ``usage`` on the last)."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(_Response):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "uq"


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorDetail(_Response):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, rate_limit_error or server_error.")
    param: str | None
    code: str | None = Field(description="This gateway's error type (docs/api.md), e.g. model_not_found.")


class OpenAIErrorResponse(_Response):
    error: OpenAIErrorDetail


# --- building them -------------------------------------------------------------------------------


def usage(outcome: Outcome) -> Usage:
    prompt = outcome.prompt_tokens or 0
    return Usage(prompt_tokens=prompt, completion_tokens=outcome.tokens, total_tokens=prompt + outcome.tokens)


def _utf8(text: str) -> list[int]:
    return list(text.encode("utf-8"))


class _Format:
    """What one endpoint's responses look like, for one request."""

    prefix = ""

    def __init__(self, session_id: str, model: str, created: int, top_n: int | None) -> None:
        self.ids: dict[str, Any] = {"id": f"{self.prefix}{session_id}", "created": created, "model": model}
        self.ids["uq_session_id"] = session_id
        self.top_n = top_n

    def _top(self, token: Token) -> list[tuple[str, float]]:
        return token.top[: self.top_n or 0]


class ChatFormat(_Format):
    prefix = "chatcmpl-"

    def _logprobs(self, tokens: list[Token]) -> ChoiceLogprobs | None:
        if self.top_n is None:
            return None
        content = [
            TokenLogprob(
                token=t.text,
                logprob=t.logprob,
                bytes=_utf8(t.text),
                top_logprobs=[TopLogprob(token=s, logprob=lp, bytes=_utf8(s)) for s, lp in self._top(t)],
            )
            for t in tokens
        ]
        return ChoiceLogprobs(content=content)

    def whole(self, tokens: list[Token], outcome: Outcome, finish: FinishReason) -> ChatCompletion:
        message = AssistantMessage(content="".join(t.text for t in tokens))
        choice = ChatChoice(message=message, logprobs=self._logprobs(tokens), finish_reason=finish)
        return ChatCompletion(**self.ids, choices=[choice], usage=usage(outcome))

    def first(self) -> ChatCompletionChunk | None:
        return ChatCompletionChunk(**self.ids, choices=[ChatChunkChoice(delta=ChatDelta(role="assistant", content=""))])

    def token(self, token: Token) -> ChatCompletionChunk:
        choice = ChatChunkChoice(delta=ChatDelta(content=token.text), logprobs=self._logprobs([token]))
        return ChatCompletionChunk(**self.ids, choices=[choice])

    def last(self, finish: FinishReason) -> ChatCompletionChunk:
        return ChatCompletionChunk(**self.ids, choices=[ChatChunkChoice(delta=ChatDelta(), finish_reason=finish)])

    def usage_chunk(self, outcome: Outcome) -> ChatCompletionChunk:
        return ChatCompletionChunk(**self.ids, choices=[], usage=usage(outcome))


class CompletionFormat(_Format):
    prefix = "cmpl-"

    def __init__(self, session_id: str, model: str, created: int, top_n: int | None) -> None:
        super().__init__(session_id, model, created, top_n)
        self.offset = 0  # where the next streamed token starts in the text

    def _logprobs(self, tokens: list[Token], offset: int) -> CompletionLogprobs | None:
        if self.top_n is None:
            return None
        offsets = []
        for t in tokens:
            offsets.append(offset)
            offset += len(t.text)
        tops = []
        for t in tokens:
            alternatives: dict[str, float] = {}
            for text, lp in self._top(t):
                alternatives.setdefault(text, lp)  # two tokens that decode alike: the likelier one
            tops.append(alternatives)
        return CompletionLogprobs(
            tokens=[t.text for t in tokens],
            token_logprobs=[t.logprob for t in tokens],
            top_logprobs=tops,
            text_offset=offsets,
        )

    def whole(self, tokens: list[Token], outcome: Outcome, finish: FinishReason) -> Completion:
        text = "".join(t.text for t in tokens)
        choice = CompletionChoice(text=text, logprobs=self._logprobs(tokens, 0), finish_reason=finish)
        return Completion(**self.ids, choices=[choice], usage=usage(outcome))

    def first(self) -> Completion | None:
        return None

    def token(self, token: Token) -> Completion:
        choice = CompletionChoice(text=token.text, logprobs=self._logprobs([token], self.offset))
        self.offset += len(token.text)
        return Completion(**self.ids, choices=[choice])

    def last(self, finish: FinishReason) -> Completion:
        return Completion(**self.ids, choices=[CompletionChoice(text="", finish_reason=finish)])

    def usage_chunk(self, outcome: Outcome) -> Completion:
        return Completion(**self.ids, choices=[], usage=usage(outcome))


Format = ChatFormat | CompletionFormat
FormatFactory = Callable[[str, str, int, int | None], Format]


def sse(data: BaseModel | dict[str, Any]) -> str:
    """One server-sent event: ``data: <json>`` and a blank line."""
    text = data.model_dump_json() if isinstance(data, BaseModel) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n"


SSE_DONE = "data: [DONE]\n\n"


# --- errors --------------------------------------------------------------------------------------

_KINDS = {401: "authentication_error", 429: "rate_limit_error"}
#: This gateway's error types that OpenAI names otherwise (the rest keep their name as ``code``).
_CODES = {"unauthorized": "invalid_api_key", "rate_limited": "rate_limit_exceeded"}
#: Errors that would fail the same way again: OpenAI's client is told not to retry them.
NO_RETRY = frozenset({"generation_failed", "cancelled"})


def openai_error(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """This gateway's error (status, ``{"error": {message, type, param}}``) as OpenAI renders it:
    (status, ``{"error": {message, type, param, code}}``, extra headers).

    422 becomes 400 (OpenAI answers a bad parameter with 400, which its client raises as
    ``BadRequestError``); ``type`` is OpenAI's kind, ``code`` this gateway's type.
    """
    ours = body.get("error", {})
    kind = str(ours.get("type", "internal_error"))
    status = 400 if status == 422 else status
    openai_kind = "server_error" if status >= 500 else _KINDS.get(status, "invalid_request_error")
    error = {
        "message": ours.get("message", ""),
        "type": openai_kind,
        "param": ours.get("param"),
        "code": _CODES.get(kind, kind),
    }
    headers = {"x-should-retry": "false"} if kind in NO_RETRY else {}
    return status, {"error": error}, headers
