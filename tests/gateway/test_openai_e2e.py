"""The OpenAI surface end to end: the official ``openai`` client against the real stack (tests/stack.py,
the embedded model), its answers checked against what the same job gives through ``POST /generate``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

KEY = "k-openai-test"
CHAT = [{"role": "user", "content": "Name three colours."}]
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(env={"UQ_AUTH": "on", "UQ_API_KEYS": KEY}) as s:
        yield s


@pytest.fixture(scope="module")
def rest(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def model(rest: httpx.Client) -> str:
    name: str = rest.get("/config").json()["default_model"]
    return name


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{stack.url}/v1", api_key=KEY, max_retries=0, timeout=120) as c:
        yield c


def session(rest: httpx.Client, sid: str) -> dict[str, Any]:
    """``GET /sessions/{id}`` once the session has ended and all its tokens are recorded."""
    last: dict[str, Any] = {}

    def ended() -> dict[str, Any] | None:
        nonlocal last
        last = rest.get(f"/sessions/{sid}").json()
        record = last.get("session") or {}
        if record.get("status") in ("finished", "failed", "cancelled") and len(last["tokens"]) == record["tokens"]:
            return last
        return None

    return wait_until(
        ended,
        what=lambda: f"session {sid} to end with its tokens recorded; last: {last}",
        timeout_s=120,
        interval_s=0.2,
    )


def generate_text(rest: httpx.Client, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The text (its tokens joined) and session of the same job through ``POST /generate``."""
    resp = rest.post("/generate", json=body)
    assert resp.status_code == 202, resp.text
    detail = session(rest, resp.json()["session_id"])
    return "".join(t["text"] for t in detail["tokens"]), detail


def test_models_are_the_config_models(client: OpenAI, rest: httpx.Client) -> None:
    assert [m.id for m in client.models.list()] == rest.get("/config").json()["models"]


def test_chat_greedy_equals_generate_and_names_its_session(client: OpenAI, rest: httpx.Client, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=CHAT, max_tokens=8, temperature=0)  # type: ignore[arg-type]
    completion = raw.parse()
    sid = raw.headers["X-UQ-Session-Id"]
    assert completion.model_extra is not None and completion.model_extra["uq_session_id"] == sid
    assert completion.id == f"chatcmpl-{sid}"
    text = completion.choices[0].message.content
    assert text
    detail = session(rest, sid)
    assert detail["session"]["status"] == "finished"
    assert "".join(t["text"] for t in detail["tokens"]) == text
    assert completion.choices[0].finish_reason == ("length" if detail["session"]["reason"] == "max_tokens" else "stop")
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(detail["tokens"])
    assert completion.usage.prompt_tokens > 5  # the chat template around one short message
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    same, _ = generate_text(rest, {"messages": CHAT, "max_tokens": 8, "temperature": 0, "top_p": 1.0, "model": model})
    assert same == text


async def test_async_stream_with_a_stop_sequence_and_usage(stack: Stack, rest: httpx.Client, model: str) -> None:
    async with AsyncOpenAI(base_url=f"{stack.url}/v1", api_key=KEY, max_retries=0, timeout=120) as aclient:
        whole = await aclient.chat.completions.create(model=model, messages=CHAT, max_tokens=12, temperature=0)  # type: ignore[arg-type]
        text = whole.choices[0].message.content or ""
        words = text.split()
        assert len(words) >= 3, text
        stop = words[2]  # greedy: the same tokens again, cut before the first occurrence of the stop string
        cut = text[: text.find(stop)]
        stream = await aclient.chat.completions.create(
            model=model,
            messages=CHAT,  # type: ignore[arg-type]
            max_tokens=12,
            temperature=0,
            stop=[stop],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == cut
    assert stop not in streamed  # OpenAI's convention: the stop string is not returned
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    sids = {c.model_extra["uq_session_id"] for c in chunks if c.model_extra}
    assert len(sids) == 1
    detail = session(rest, sids.pop())
    assert (detail["session"]["status"], detail["session"]["reason"]) == ("finished", "stop")
    assert last.usage.completion_tokens == len(detail["tokens"])
    same, _ = generate_text(
        rest, {"messages": CHAT, "max_tokens": 12, "temperature": 0, "top_p": 1.0, "stop": [stop], "model": model}
    )
    assert same == cut


def test_chat_logprobs_are_the_audited_probabilities(client: OpenAI, rest: httpx.Client, model: str) -> None:
    completion = client.chat.completions.create(
        model=model,
        messages=CHAT,  # type: ignore[arg-type]
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=5,
    )
    sid = completion.model_extra["uq_session_id"] if completion.model_extra else ""
    tokens = session(rest, sid)["tokens"]
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert len(logprobs.content) == len(tokens)
    for item, token in zip(logprobs.content, tokens, strict=True):
        assert item.token == token["text"]
        assert item.bytes == list(token["text"].encode("utf-8"))
        assert [(t.token, t.logprob) for t in item.top_logprobs] == [
            (alt["text"], alt["logprob"]) for alt in token["top_k"][:5]
        ]
        # greedy: the token is the top alternative, with that same (float32) logprob; the auditor's
        # metrics.prob comes from the float16 logits, within 0.01
        own = token["top_k"][0]
        assert own["token_id"] == token["token_id"]
        assert item.logprob == own["logprob"]
        assert item.logprob == pytest.approx(math.log(token["metrics"]["prob"]), abs=1e-2)
    assert "".join(item.token for item in logprobs.content) == completion.choices[0].message.content


def test_completions_sync_and_streamed_with_logprobs(client: OpenAI, rest: httpx.Client, model: str) -> None:
    completion = client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=3)
    choice = completion.choices[0]
    sid = completion.model_extra["uq_session_id"] if completion.model_extra else ""
    assert completion.id == f"cmpl-{sid}"
    tokens = session(rest, sid)["tokens"]
    assert choice.text == "".join(t["text"] for t in tokens)
    assert choice.logprobs is not None
    assert choice.logprobs.tokens == [t["text"] for t in tokens]
    assert choice.logprobs.token_logprobs == [t["top_k"][0]["logprob"] for t in tokens]  # greedy: the top one
    assert choice.logprobs.token_logprobs == pytest.approx([math.log(t["metrics"]["prob"]) for t in tokens], abs=1e-2)
    offsets = [sum(len(t["text"]) for t in tokens[:i]) for i in range(len(tokens))]
    assert choice.logprobs.text_offset == offsets
    assert choice.logprobs.top_logprobs is not None
    assert all(1 <= len(top) <= 3 for top in choice.logprobs.top_logprobs)
    same, _ = generate_text(rest, {"prompt": PROMPT, "max_tokens": 6, "temperature": 0, "top_p": 1.0, "model": model})
    assert same == choice.text

    with client.completions.create(model=model, prompt=PROMPT, max_tokens=6, temperature=0, stream=True) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert chunks[-1].choices[0].finish_reason == choice.finish_reason


def test_seeded_sampling_equals_generate_with_the_same_seed(client: OpenAI, rest: httpx.Client, model: str) -> None:
    body = {"max_tokens": 8, "temperature": 1.2, "top_p": 0.95, "seed": 1234}
    completion = client.completions.create(model=model, prompt=PROMPT, n=1, **body)  # type: ignore[arg-type]
    same, _ = generate_text(rest, {"prompt": PROMPT, "model": model, **body})
    assert completion.choices[0].text == same


def test_harmless_defaults_are_accepted(client: OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        ],  # type: ignore[list-item]
        max_completion_tokens=1,
        n=1,
        presence_penalty=0,
        frequency_penalty=0.0,
        logit_bias={},
        user="someone",
        response_format={"type": "text"},
        store=False,
        temperature=0,
    )
    assert completion.usage is not None and completion.usage.completion_tokens <= 1


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"max_tokens": 10**6}, "max_tokens"),
        ({"top_logprobs": 3}, "body"),  # without logprobs: true
    ],
)
def test_what_cannot_be_honoured_is_a_bad_request_naming_the_field(
    client: OpenAI, model: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=CHAT, extra_body=extra)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


def test_errors_raise_the_clients_own_exceptions(stack: Stack, client: OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model=model, messages=CHAT, extra_body={"mirostat": 2})  # type: ignore[arg-type]
    assert unknown.value.param == "mirostat" and "unknown field" in unknown.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=CHAT)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found" and model in missing.value.message
    with (
        OpenAI(base_url=f"{stack.url}/v1", api_key="wrong", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        stranger.models.list()
    assert refused.value.code == "invalid_api_key"
    resp = httpx.get(f"{stack.url}/v1/embeddings", headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_a_client_that_leaves_mid_stream_cancels_its_job(client: OpenAI, rest: httpx.Client, model: str) -> None:
    # a seeded chat answer that runs long, so the job is still going when the client leaves (an unseeded
    # one may reach its end of text a few tokens in, before the cancel lands)
    story = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
    stream = client.chat.completions.create(
        model=model,
        messages=story,
        max_tokens=400,
        temperature=0.8,
        seed=7,
        stream=True,  # type: ignore[arg-type]
    )
    sid = stream.response.headers["X-UQ-Session-Id"]
    for n, _chunk in enumerate(stream):
        if n == 2:
            break
    stream.close()
    detail = session(rest, sid)
    assert detail["session"]["status"] == "cancelled"
    assert detail["session"]["tokens"] < 400
