"""The upstream engine: jobs run on any OpenAI-compatible server (registered as "openai").

vLLM, llama.cpp's server, Ollama, TGI and hosted APIs all stream the OpenAI wire format with
``logprobs`` / ``top_logprobs``. This engine asks for exactly that and publishes each token as a top-k
entry: the auditor computes its metrics from the k alternatives plus one bucket for the rest of the
vocabulary (``coverage`` says how much the server showed), so they are marked inexact. Each token
carries :class:`~services.common.contracts.TopKSource`: the k asked for, whether the server's
log-probabilities are the raw distribution or the processed (sampling) one, and its floor.

Chat jobs go to ``/chat/completions``, prompt jobs to ``/completions``. The server's text is kept
unchanged: the tokens' texts concatenate to the content it streamed, so a client of our ``/v1``
receives exactly what the server answered. Settings (docs/generator.md, "Upstream engines"):

    UQ_ENGINE=openai UQ_UPSTREAM_URL=http://127.0.0.1:8000/v1 UQ_MODEL=<the server's model id>

``UQ_MODEL=embedded`` (the default) takes the first model the server lists. Steps wait on the
network, so the worker gives each job a thread of its own (``compute_bound = False``).
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import Field

from services.common.contracts import TopKAlternative, TopKSource
from services.generator.engine import (
    Engine,
    EngineOptions,
    Finished,
    FinishReason,
    GenerationRequest,
    Step,
    TokenStep,
    register_engine,
)
from services.generator.errors import GeneratorError, ModelLoadError

#: OpenAI's finish reasons → ours (the server's "stop" is an end of text or a stop sequence).
_FINISH: dict[str, FinishReason] = {"length": "max_tokens", "stop": "eos", "eos": "eos", "content_filter": "stop"}


class UpstreamError(GeneratorError):
    """The upstream server refused or failed the request; the message says which server and why."""

    def __init__(self, url: str, cause: str) -> None:
        self.url = url
        self.cause = cause
        super().__init__(f"the upstream server at {url} failed the request: {cause}")


class UpstreamOptions(EngineOptions):
    """Options of the upstream engine; each is also a generator setting of the same name (``UQ_UPSTREAM_*``)."""

    upstream_url: str = Field("http://127.0.0.1:8000/v1", min_length=1)
    upstream_api_key: str = ""
    upstream_top_logprobs: int = Field(20, ge=0, le=20)
    upstream_logprobs: Literal["raw", "processed"] = "raw"
    upstream_logprob_floor: float | None = Field(None, le=0.0)
    upstream_timeout_s: float = Field(120.0, gt=0)
    upstream_stream_usage: bool = True


@register_engine
class UpstreamEngine(Engine):
    """Streams each job from an OpenAI-compatible server with ``logprobs``; top-k entries, inexact."""

    name = "openai"
    provider = "openai"
    Options = UpstreamOptions
    full_logits = False
    chat = True
    seeded = True  # the seed is passed on; whether the server honours it is the server's
    compute_bound = False

    def __init__(self, model: str, options: EngineOptions) -> None:
        super().__init__(model, options)
        assert isinstance(options, UpstreamOptions)
        self.opts: UpstreamOptions = options
        self.client: Any = None
        self.upstream_model = model

    def load(self) -> None:
        import openai

        self.client = openai.OpenAI(
            base_url=self.opts.upstream_url,
            api_key=self.opts.upstream_api_key or "not-needed",
            timeout=self.opts.upstream_timeout_s,
            max_retries=1,
        )
        if self.model != "embedded":
            return
        try:
            listed = [m.id for m in self.client.models.list()]
        except openai.OpenAIError as exc:
            raise ModelLoadError(
                self.model, f"the upstream server at {self.opts.upstream_url} did not list its models ({exc})"
            ) from None
        if not listed:
            raise ModelLoadError(
                self.model, f"the upstream server at {self.opts.upstream_url} lists no model; set UQ_MODEL"
            )
        self.upstream_model = self.display_name = listed[0]

    def source(self, k: int) -> TopKSource:
        return TopKSource(k=k, logprobs=self.opts.upstream_logprobs, floor=self.opts.upstream_logprob_floor)

    def stream(self, request: GenerationRequest) -> Iterator[Step]:
        import openai

        if self.client is None:
            raise RuntimeError("UpstreamEngine.stream called before load()")
        k = min(request.top_k_alternatives, self.opts.upstream_top_logprobs)
        try:
            if request.messages is not None:
                chunks = self._chat(request, k)
                yield from _chat_steps(chunks, self.source(k), bool(request.sampling.stop))
            else:
                chunks = self._completion(request, k)
                yield from _completion_steps(chunks, self.source(k), bool(request.sampling.stop))
        except _UnfinishedError:
            raise UpstreamError(
                self.opts.upstream_url, "its stream ended without a finish reason (its log says why)"
            ) from None
        except openai.APIStatusError as exc:
            raise UpstreamError(self.opts.upstream_url, f"HTTP {exc.status_code}: {_message(exc)}") from None
        except openai.OpenAIError as exc:
            raise UpstreamError(self.opts.upstream_url, str(exc) or type(exc).__name__) from None

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {
            "model": self.upstream_model,
            "stream": True,
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
        }
        if s.seed is not None:
            params["seed"] = s.seed
        if s.stop:
            params["stop"] = s.stop
        if s.top_k:
            params["extra_body"] = {"top_k": s.top_k}  # vLLM, llama.cpp, Ollama and TGI take it; OpenAI does not
        if self.opts.upstream_stream_usage:
            params["stream_options"] = {"include_usage": True}
        return params

    def _chat(self, request: GenerationRequest, k: int) -> Any:
        messages = [{"role": m.role, "content": m.content} for m in request.messages or []]
        extra = {"logprobs": True, "top_logprobs": k} if k else {"logprobs": True}
        return self.client.chat.completions.create(messages=messages, **self._params(request), **extra)

    def _completion(self, request: GenerationRequest, k: int) -> Any:
        return self.client.completions.create(prompt=request.prompt or "", logprobs=max(k, 1), **self._params(request))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class _UnfinishedError(Exception):
    """The server's stream stopped without a finish reason. llama-cpp-python, for one, closes the stream
    without a word when the request fails after its 200 (a prompt longer than its context, say)."""


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(exc)


def _alternatives(pairs: Sequence[tuple[str, float]]) -> list[TopKAlternative]:
    """The server's alternatives, most likely first; NaN or positive values (broken servers) are dropped."""
    alts = [TopKAlternative(text=t, logprob=min(lp, 0.0)) for t, lp in pairs if lp is not None and not math.isnan(lp)]
    alts.sort(key=lambda a: a.logprob, reverse=True)
    return alts


def _finish(reason: str | None, has_stop: bool) -> FinishReason:
    mapped = _FINISH.get(reason or "stop", "eos")
    return "stop" if mapped == "eos" and has_stop and reason == "stop" else mapped


def _split(content: str, texts: list[str]) -> list[str]:
    """Per-token texts that concatenate to ``content``: the server's own when they do, else all of it on the
    first token (a server may hold back part of a character, or its token strings may not be the text)."""
    if not texts or "".join(texts) == content:
        return texts
    return [content] + [""] * (len(texts) - 1)


class _Decoder:
    """Token texts from the servers' ``bytes`` (UTF-8 split across tokens is joined), else their strings."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def text(self, token: str, raw: Sequence[int] | None) -> str:
        if raw is None:
            return token
        return self._utf8.decode(bytes(raw))


def _chat_steps(chunks: Any, source: TopKSource, has_stop: bool) -> Iterator[Step]:
    decoder = _Decoder()
    finish: FinishReason | None = None
    prompt_tokens: int | None = None
    for chunk in chunks:
        if chunk.usage is not None:
            prompt_tokens = chunk.usage.prompt_tokens
        for choice in chunk.choices[:1]:
            content = choice.delta.content or "" if choice.delta is not None else ""
            entries = (choice.logprobs.content or []) if choice.logprobs is not None else []
            texts = _split(content, [decoder.text(e.token, e.bytes) for e in entries])
            for entry, text in zip(entries, texts, strict=True):
                pairs = [(a.token, a.logprob) for a in entry.top_logprobs or []]
                yield _step(text, entry.logprob, pairs, source)
            if not entries and content:
                yield _step(content, None, [], source)
            if choice.finish_reason is not None:
                finish = _finish(choice.finish_reason, has_stop)
    if finish is None:
        raise _UnfinishedError
    yield Finished(finish, prompt_tokens=prompt_tokens)


def _completion_steps(chunks: Any, source: TopKSource, has_stop: bool) -> Iterator[Step]:
    finish: FinishReason | None = None
    prompt_tokens: int | None = None
    for chunk in chunks:
        if chunk.usage is not None:
            prompt_tokens = chunk.usage.prompt_tokens
        for choice in chunk.choices[:1]:
            content = choice.text or ""
            lp = choice.logprobs
            tokens = list(lp.tokens or []) if lp is not None else []
            if tokens:
                logprobs = list(lp.token_logprobs or [None] * len(tokens))
                tops = list(lp.top_logprobs or [None] * len(tokens))
                for text, token_lp, top in zip(_split(content, tokens), logprobs, tops, strict=False):
                    pairs = list((top or {}).items())
                    yield _step(text, token_lp, pairs, source)
            elif content:
                yield _step(content, None, [], source)
            if choice.finish_reason is not None:
                finish = _finish(choice.finish_reason, has_stop)
    if finish is None:
        raise _UnfinishedError
    yield Finished(finish, prompt_tokens=prompt_tokens)


def _step(text: str, logprob: float | None, pairs: Sequence[tuple[str, float]], source: TopKSource) -> TokenStep:
    lp = None if logprob is None or math.isnan(logprob) else min(float(logprob), 0.0)
    return TokenStep(
        token_id=None,
        text=text,
        logprob=lp,
        top_k=_alternatives(pairs),
        vocab_size=None,
        top_k_source=source,
    )
