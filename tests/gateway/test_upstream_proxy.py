"""The proxy path: an OpenAI client pointed at our ``/v1``, the generator on the upstream engine in front
of llama.cpp's server (tests/llama_server.py). The answer must be the upstream's, unchanged (the same
text and token count as calling the server directly), and the session audited like any other."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.test_openai_e2e import session
from tests.llama_server import MODEL_ALIAS, LlamaServer
from tests.stack import ROOT, Stack
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

CHAT = [{"role": "user", "content": "Name three colours."}]
GREEDY: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 24}


@pytest.fixture(scope="module")
def upstream() -> Iterator[LlamaServer]:
    with LlamaServer() as s:
        yield s


@pytest.fixture(scope="module")
def stack(upstream: LlamaServer) -> Iterator[Stack]:
    env = {"UQ_ENGINE": "openai", "UQ_UPSTREAM_URL": upstream.base_url, "UQ_MAX_CONCURRENT_JOBS": "4"}
    with Stack(env=env) as s:
        # the generator's heartbeat names the server's model once its engine has asked for it (a second or two)
        wait_until(
            lambda: httpx.get(f"{s.url}/config").json()["default_model"] == MODEL_ALIAS,
            what="the upstream's model as the gateway's default",
        )
        yield s


@pytest.fixture(scope="module")
def rest(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def ours(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def direct(upstream: LlamaServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def level(direct: openai.OpenAI) -> None:
    """Put the server's KV cache in one known state before a compared call.

    llama-cpp-python's server keeps the previous request's KV cache and reuses its longest common
    prefix: the same prompt twice in a row evaluates only its last token, in a batch of one, and that
    batch split changes the last digits of the logits, which can flip a close greedy call (measured:
    "The" against "This" at token 5 of the chat answer). A different short request first gives both the
    proxied and the direct call the same start, so the comparison is of like with like.
    """
    direct.completions.create(model=MODEL_ALIAS, prompt="Reset.", max_tokens=1, temperature=0.0)


def test_the_upstreams_model_is_ours(ours: openai.OpenAI, rest: httpx.Client) -> None:
    assert [m.id for m in ours.models.list()] == [MODEL_ALIAS]
    assert rest.get("/config").json()["default_model"] == MODEL_ALIAS


def test_chat_answer_is_the_upstreams_unchanged_and_audited(
    ours: openai.OpenAI, direct: openai.OpenAI, rest: httpx.Client
) -> None:
    level(direct)
    raw = ours.chat.completions.with_raw_response.create(model=MODEL_ALIAS, messages=CHAT, **GREEDY)  # type: ignore[arg-type]
    mine = raw.parse()
    level(direct)
    theirs = direct.chat.completions.create(model=MODEL_ALIAS, messages=CHAT, **GREEDY)  # type: ignore[arg-type]
    assert mine.choices[0].message.content == theirs.choices[0].message.content
    assert mine.usage is not None and theirs.usage is not None
    assert mine.usage.completion_tokens == theirs.usage.completion_tokens
    assert mine.choices[0].finish_reason == theirs.choices[0].finish_reason

    detail = session(rest, raw.headers["x-uq-session-id"])
    assert detail["session"]["provider"] == "openai" and detail["session"]["model"] == MODEL_ALIAS
    tokens = detail["tokens"]
    assert "".join(t["text"] for t in tokens) == mine.choices[0].message.content
    metrics = [t["metrics"] for t in tokens]
    assert all(m["exact"] is False and 0 < m["coverage"] <= 1 for m in metrics)  # top-k, inexact
    assert all(m["entropy"] is not None and m["surprisal"] is not None for m in metrics)
    sid = raw.headers["x-uq-session-id"]
    summary = wait_until(lambda: rest.get(f"/sessions/{sid}").json()["summary"], what="the session's summary")
    assert summary["tokens"] == len(tokens)


def test_streamed_chat_with_logprobs(ours: openai.OpenAI, direct: openai.OpenAI) -> None:
    text, logprobs = "", []
    level(direct)
    for chunk in ours.chat.completions.create(
        model=MODEL_ALIAS,
        messages=CHAT,  # type: ignore[arg-type]
        stream=True,
        logprobs=True,
        top_logprobs=5,
        **GREEDY,
    ):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            if chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                logprobs += chunk.choices[0].logprobs.content
    level(direct)
    theirs = direct.chat.completions.create(
        model=MODEL_ALIAS,
        messages=CHAT,  # type: ignore[arg-type]
        logprobs=True,
        top_logprobs=5,
        **GREEDY,
    )
    assert text == theirs.choices[0].message.content
    assert theirs.choices[0].logprobs is not None and theirs.choices[0].logprobs.content is not None
    expected = theirs.choices[0].logprobs.content
    assert [e.token for e in logprobs] == [e.token for e in expected]
    assert [round(e.logprob, 4) for e in logprobs] == [round(e.logprob, 4) for e in expected]
    assert all(1 <= len(e.top_logprobs) <= 5 for e in logprobs)


def test_completion_with_stop_sequence(ours: openai.OpenAI, direct: openai.OpenAI) -> None:
    args: dict[str, Any] = {"model": MODEL_ALIAS, "prompt": "The capital of France is", "stop": ["\n"], **GREEDY}
    level(direct)
    mine = ours.completions.create(**args)
    level(direct)
    theirs = direct.completions.create(**args)
    assert mine.choices[0].text == theirs.choices[0].text and "\n" not in mine.choices[0].text
    assert mine.usage is not None and theirs.usage is not None
    assert mine.usage.completion_tokens == theirs.usage.completion_tokens


def test_concurrent_requests_each_get_their_own_answer(stack: Stack, direct: openai.OpenAI) -> None:
    prompts = ["One plus one is", "The sky is", "Water boils at"]
    expected = [direct.completions.create(model=MODEL_ALIAS, prompt=p, **GREEDY).choices[0].text for p in prompts]

    async def all_at_once() -> list[str]:
        async with openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0) as c:
            answers = await asyncio.gather(
                *(c.completions.create(model=MODEL_ALIAS, prompt=p, **GREEDY) for p in prompts)
            )
        return [a.choices[0].text for a in answers]

    assert asyncio.run(all_at_once()) == expected


def test_an_upstream_failure_is_an_openai_error_with_the_servers_reason(ours: openai.OpenAI) -> None:
    # llama-cpp-python closes the stream of a prompt longer than its context (2,048 tokens)
    with pytest.raises(openai.APIError, match="upstream server"):
        ours.chat.completions.create(
            model=MODEL_ALIAS, messages=[{"role": "user", "content": "word " * 3000}], max_tokens=4
        )


def test_the_proxy_example_finds_the_same_answer(
    stack: Stack, upstream: LlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("openai_proxy", ROOT / "examples" / "openai_proxy.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--upstream", upstream.base_url, "--gateway", f"{stack.url}/v1"]) == 0
    out = capsys.readouterr().out
    assert "the same answer" in out and "coverage=" in out and f"model: {MODEL_ALIAS}" in out
