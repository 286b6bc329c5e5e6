"""The OpenAI surface without a generator: its request models, its feed of audited tokens, its shapes,
and its errors in-process (the real client on the real stack: test_openai_e2e.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from services.gateway.completions import LOGPROB_FLOOR, Feed, Outcome, Token, logprob_of, token_of
from services.gateway.messages import token as token_message
from services.gateway.openai_api import (
    ChatCompletionRequest,
    ChatFormat,
    CompletionFormat,
    CompletionRequest,
    openai_error,
)
from services.gateway.settings import GatewaySettings
from tests.gateway.conftest import running_app

CHAT = [{"role": "user", "content": "Hi"}]


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": CHAT, **fields})


# --- requests ------------------------------------------------------------------------------------


def test_the_job_gets_openais_defaults_and_the_clients_sampling() -> None:
    assert chat().generate_fields() == {
        "model": "m",
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "seed": None,
        "stop": [],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    fields = chat(temperature=0, top_p=0.5, seed=3, stop="END", max_completion_tokens=7).generate_fields()
    assert (fields["temperature"], fields["top_p"], fields["seed"], fields["stop"], fields["max_tokens"]) == (
        0,
        0.5,
        3,
        ["END"],
        7,
    )
    messages = [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert chat(messages=messages).generate_fields()["messages"] == [{"role": "system", "content": "ab"}]
    completion = CompletionRequest.model_validate({"model": "m", "prompt": ["once"], "max_tokens": 2})
    assert (completion.generate_fields()["prompt"], completion.generate_fields()["max_tokens"]) == ("once", 2)


@pytest.mark.parametrize(
    "harmless",
    [
        {"n": 1},
        {"presence_penalty": 0},
        {"frequency_penalty": 0.0},
        {"logit_bias": {}},
        {"tools": []},
        {"tool_choice": "none"},
        {"response_format": {"type": "text"}},
        {"user": "u", "metadata": {"k": "v"}, "store": True, "service_tier": "auto", "parallel_tool_calls": False},
        {"modalities": ["text"]},
        {"n": None, "stop": None, "logprobs": None},
    ],
)
def test_harmless_fields_are_accepted_at_their_defaults(harmless: dict[str, Any]) -> None:
    chat(**harmless)


@pytest.mark.parametrize(
    ("refused", "field", "says"),
    [
        ({"n": 2}, "n", "one choice"),
        ({"presence_penalty": 0.1}, "presence_penalty", "no penalties"),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "logit_bias"),
        ({"tools": [{"type": "function"}]}, "tools", "tools"),
        ({"tool_choice": "auto"}, "tool_choice", "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format", "plain text"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs", "20"),
        ({"temperature": "0"}, "temperature", "number"),
        ({"seed": -1}, "seed", "0"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages", "'assistant'"),
        ({"stream_options": {"include_usage": True}}, "", "stream: true"),
        ({"top_logprobs": 2}, "", "logprobs: true"),
        ({"max_tokens": 3, "max_completion_tokens": 4}, "", "differ"),
        ({"mirostat": 1}, "mirostat", "Extra inputs"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_the_field(refused: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        chat(**refused)
    error = caught.value.errors()[0]
    assert ".".join(str(part) for part in error["loc"]).startswith(field)
    assert says in error["msg"]


@pytest.mark.parametrize(
    "refused", [{"echo": True}, {"best_of": 2}, {"suffix": "x"}, {"prompt": [1, 2]}, {"prompt": ["a", "b"]}]
)
def test_completions_refuse_echo_best_of_suffix_token_ids_and_batches(refused: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m", "prompt": "p", **refused})


# --- the feed ------------------------------------------------------------------------------------


def audit(seq: int, text: str, prob: float, token_id: int = 7, top: list[dict[str, Any]] | None = None) -> str:
    entry = {"type": "audit", "seq": seq, "token_id": token_id, "text": text, "metrics": {"prob": prob}}
    entry["top_k"] = top or []
    return json.dumps(token_message(entry)[1])


def end(status: str, reason: str, tokens: int, **more: Any) -> str:
    return json.dumps({"type": "session", "seq": 2, "status": status, "reason": reason, "tokens": tokens, **more})


async def drain(feed: Feed) -> list[Token | Outcome]:
    return [event async for event in feed.events()]


async def test_the_feed_yields_tokens_in_seq_order_then_the_outcome_once_all_are_in() -> None:
    feed = Feed("s")
    feed.deliver("s", ("token", 1), audit(1, " world", 0.5))
    feed.deliver("s", ("session", 2), end("finished", "max_tokens", 3, prompt_tokens=4))  # before the last audit
    feed.deliver("s", ("token", 0), audit(0, "Hello", 0.25))
    feed.deliver("s", ("alert", 0), "{}")  # not for the feed
    feed.deliver("s", ("token", 2), audit(2, "!", 1.0))
    events = await drain(feed)
    assert [e.text for e in events if isinstance(e, Token)] == ["Hello", " world", "!"]
    assert [e.logprob for e in events if isinstance(e, Token)] == [math.log(0.25), math.log(0.5), 0.0]
    assert events[-1] == Outcome("finished", "max_tokens", 3, 4)
    assert events[-1].finish_reason == "length"


async def test_a_done_with_tokens_missing_fails_the_completion() -> None:
    feed = Feed("s")
    feed.deliver("s", ("token", 0), audit(0, "a", 0.5))
    feed.deliver("s", ("session", 2), end("finished", "eos", 2))
    feed.deliver("s", ("done", 0), json.dumps({"type": "done", "status": "finished", "reason": "eos", "tokens": 2}))
    outcome = (await drain(feed))[-1]
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.tokens) == ("failed", 1)
    assert "only some of the session's 2 tokens" in (outcome.reason or "")


def test_a_tokens_logprob_is_its_own_alternatives_when_listed_else_ln_prob_floored() -> None:
    top = [{"token_id": 3, "text": "x", "logprob": -0.1}, {"token_id": 7, "text": "y", "logprob": -2.5}]
    assert token_of(json.loads(audit(0, "y", 0.09, token_id=7, top=top))).logprob == -2.5
    assert token_of(json.loads(audit(0, "z", 0.09, token_id=8, top=top))).logprob == math.log(0.09)
    assert logprob_of(0.0) == logprob_of(None) == logprob_of(1e-5000) == LOGPROB_FLOOR


# --- shapes --------------------------------------------------------------------------------------


TOKENS = [Token(0, "Hé", -0.5, [("Hé", -0.5), ("H", -1.0), ("Hé", -3.0)]), Token(1, "!", -0.1, [("!", -0.1)])]
DONE = Outcome("finished", "eos", 2, 9)


def test_a_chat_completion_and_its_logprobs() -> None:
    body = ChatFormat("sid", "m", 5, 2).whole(TOKENS, DONE, "stop").model_dump(mode="json")
    assert (body["id"], body["object"], body["uq_session_id"]) == ("chatcmpl-sid", "chat.completion", "sid")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hé!"}
    first = body["choices"][0]["logprobs"]["content"][0]
    assert first["bytes"] == list("Hé".encode())
    assert [t["token"] for t in first["top_logprobs"]] == ["Hé", "H"]
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    assert ChatFormat("sid", "m", 5, None).whole(TOKENS, DONE, "stop").choices[0].logprobs is None
    stream = ChatFormat("sid", "m", 5, None)
    assert [
        json.loads(c.model_dump_json())["choices"][0]["delta"] for c in (stream.first(), stream.token(TOKENS[1]))
    ] == [
        {"role": "assistant", "content": ""},
        {"content": "!"},
    ]
    last = json.loads(stream.last("length").model_dump_json())["choices"][0]
    assert (last["delta"], last["finish_reason"], last["logprobs"]) == ({}, "length", None)


def test_a_streamed_completion_offsets_its_tokens_and_keeps_the_likelier_of_two_alike() -> None:
    fmt = CompletionFormat("sid", "m", 5, 3)
    chunks = [fmt.token(t).model_dump(mode="json") for t in TOKENS]
    assert [c["choices"][0]["logprobs"]["text_offset"] for c in chunks] == [[0], [2]]
    assert chunks[0]["choices"][0]["logprobs"]["top_logprobs"] == [{"Hé": -0.5, "H": -1.0}]
    last = fmt.last("stop").model_dump(mode="json")
    assert (last["choices"][0]["text"], last["choices"][0]["finish_reason"]) == ("", "stop")
    assert fmt.usage_chunk(DONE).choices == []


@pytest.mark.parametrize(
    ("status", "ours", "expected"),
    [
        (422, "invalid_request", (400, "invalid_request_error", "invalid_request")),
        (401, "unauthorized", (401, "authentication_error", "invalid_api_key")),
        (404, "model_not_found", (404, "invalid_request_error", "model_not_found")),
        (429, "rate_limited", (429, "rate_limit_error", "rate_limit_exceeded")),
        (503, "unavailable", (503, "server_error", "unavailable")),
    ],
)
def test_errors_in_openais_shape(status: int, ours: str, expected: tuple[int, str, str]) -> None:
    got, body, headers = openai_error(status, {"error": {"message": "m", "type": ours, "param": "p"}})
    assert (got, body["error"]["type"], body["error"]["code"]) == expected
    assert body["error"]["param"] == "p"
    assert headers == {}
    assert openai_error(500, {"error": {"message": "m", "type": "generation_failed", "param": None}})[2] == {
        "x-should-retry": "false"
    }


async def test_v1_errors_in_process(gw_settings: GatewaySettings) -> None:
    keyed = gw_settings.model_copy(update={"auth": "on", "api_keys": "k"})
    async with running_app(keyed) as (_, client):
        auth = {"Authorization": "Bearer k"}
        refused = await client.get("/v1/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        models = await client.get("/v1/models", headers=auth)
        assert models.json() == {
            "object": "list",
            "data": [{"id": "SmolLM2-135M-Instruct", "object": "model", "created": 0, "owned_by": "uq"}],
        }
        bad = await client.post("/v1/chat/completions", headers=auth, json={"model": "x", "messages": CHAT, "n": 3})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "n"
        unknown = await client.post("/v1/completions", headers=auth, json={"model": "gpt-4o", "prompt": "p"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
        wrong = await client.get("/v1/chat/completions", headers=auth)
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
        json_type = {**auth, "Content-Type": "application/json"}
        garbage = await client.post("/v1/completions", headers=json_type, content=b"{")
        assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"
        assert set(garbage.json()["error"]) == {"message", "type", "param", "code"}
