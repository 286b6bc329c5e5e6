"""Bad input against the real services: refused with a clear error, nothing lost, nothing crashes.

REST (hand-written cases; generated ones are tests/gateway/test_schemathesis.py), the WebSocket, and
entries written straight into the streams by a third party. The REST and WebSocket battery: wrong
types, numbers as strings or booleans, NaN/Infinity/1e999, bodies that are not objects, deep nesting,
huge numbers, unknown fields, empty prompts, unserved models, limits at and just over the bound, HEAD,
unknown API paths, trailing slashes, a WebSocket on a wrong path. (Push-specific cases:
tests/reliability/test_bad_push.py.) After each group of cases every service
is still running with a fresh heartbeat, and a good session still flows end to end.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.common.model_policy import ModelPolicy
from services.common.validation import MAX_JSON_DEPTH
from tests.reliability.pipeline import finish, outcome, push, script, start_session
from tests.stack import Stack

pytestmark = pytest.mark.slow

GOOD = script(40, seed=11)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(services=("recorder", "auditor", "alerter", "gateway")) as s:
        yield s


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as c:
        yield c


@pytest.fixture
async def r(stack: Stack) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


async def still_serving(stack: Stack, client: httpx.AsyncClient, r: Redis) -> None:
    """Every process runs, /health is green, heartbeats are fresh, and a good session flows end to end."""
    exited = {name: p.returncode for name, p in stack.procs.items() if p.poll() is not None}
    assert not exited, f"exited: {exited}\n" + "\n".join(stack.log_tail(n) for n in exited)
    health = (await client.get("/health")).json()
    assert health["status"] == "ok", health
    ages = [b["age_s"] for beats in health["services"].values() for b in beats]
    assert ages and max(ages) < 5, health
    sid = await start_session(client)
    await push(client, sid, GOOD)
    await finish(client, sid)
    got = await outcome(r, stack, sid, len(GOOD))
    assert sorted(got["audits"].items()) == [(s, 1) for s in range(len(GOOD))]
    assert got["recorded"]["tokens"] == list(range(len(GOOD)))
    assert got["alerts"][-1]["type"] == "summary"


def assert_refused(resp: httpx.Response, status: int | tuple[int, ...], param: str | None = "any") -> dict[str, Any]:
    """A 4xx in the documented shape ``{"error": {"message", "type", "param"}}``."""
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, (resp.status_code, resp.text[:500])
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param"} <= set(err), err
    assert isinstance(err["message"], str) and len(err["message"]) > 10, err
    if param != "any":
        assert err["param"] == param, err
    return dict(err)


# --- REST --------------------------------------------------------------------------------------


async def test_huge_bodies_are_refused_with_413_or_a_named_limit(client: httpx.AsyncClient) -> None:
    huge = b'{"prompt": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    resp = await client.post("/generate", content=huge, headers={"content-type": "application/json"})
    assert_refused(resp, 413)
    long_prompt = {"prompt": "word " * 200_000, "max_tokens": 5}  # 1 MB: within the body limit, over the prompt limit
    err = assert_refused(await client.post("/generate", json=long_prompt), (400, 422), param="prompt")
    assert "at most" in err["message"]
    sid = await start_session(client)
    too_many = {"tokens": [{"text": "a"}] * 1_001}
    assert_refused(await client.post(f"/push/sessions/{sid}/tokens", json=too_many), (400, 422), param="tokens")
    big_logits = {"tokens": [{"text": "a", "token_id": 0, "logits": [0.0] * 1_000_001}]}
    assert_refused(await client.post(f"/push/sessions/{sid}/tokens", json=big_logits), (400, 413, 422))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 100_000])
async def test_deeply_nested_json_is_refused_before_parsing(client: httpx.AsyncClient, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    sid = await start_session(client)
    for path, body in (
        ("/generate", '{"prompt": "hi", "stop": ' + nested + "}"),
        ("/push/sessions", '{"model": ' + nested + "}"),
        (f"/push/sessions/{sid}/tokens", '{"tokens": ' + nested + "}"),
        (f"/push/sessions/{sid}/finish", '{"reason": ' + "{" * depth),  # unterminated, too
    ):
        resp = await client.post(path, content=body, headers={"content-type": "application/json"})
        err = assert_refused(resp, 400)
        assert (err["type"], f"at most {MAX_JSON_DEPTH} levels" in err["message"]) == ("invalid_json", True), err


async def test_nesting_at_the_limit_reaches_validation(client: httpx.AsyncClient) -> None:
    inner = MAX_JSON_DEPTH - 1  # the body object is one level
    body = '{"prompt": "hi", "stop": ' + "[" * inner + "]" * inner + "}"
    resp = await client.post("/generate", content=body, headers={"content-type": "application/json"})
    assert assert_refused(resp, 422)["param"].startswith("stop")


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/generate", {"prompt": 5}, "prompt"),
        ("/generate", {"prompt": "hi", "max_tokens": "many"}, "max_tokens"),
        ("/generate", {"prompt": "hi", "temperature": [1]}, "temperature"),
        ("/generate", {"prompt": "hi", "max_tokens": 10**30}, "max_tokens"),
        ("/generate", {"prompt": "hi", "top_p": float("nan")}, "any"),
        ("/push/sessions", {"model": {"name": "x"}}, "model"),
        ("/push/sessions", {"model": "m", "session_id": 7}, "session_id"),
        ("/push/sessions", ["model", "m"], "any"),
    ],
)
async def test_wrong_types_are_refused_naming_the_field(
    client: httpx.AsyncClient, path: str, body: Any, param: str
) -> None:
    content = json.dumps(body)  # NaN is written as the non-standard token NaN
    resp = await client.post(path, content=content, headers={"content-type": "application/json"})
    err = assert_refused(resp, (400, 422))
    if param != "any":
        assert param in (err["param"] or ""), err


async def test_wrong_types_in_pushed_tokens(client: httpx.AsyncClient) -> None:
    sid = await start_session(client)
    for tokens in (
        [{"text": 5}],
        [{"text": "a", "logprob": "low"}],
        [{"text": "a", "logprob": 0.5}],
        [{"text": "a", "token_id": -1, "logits": [1.0, 2.0]}],
        [{"text": "a", "top_logprobs": {"b": "x"}}],
        [{"no_text": "a"}],
        "tokens",
    ):
        resp = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": tokens})
        err = assert_refused(resp, (400, 422))
        assert (err["param"] or "").startswith("tokens"), err
    # nothing was accepted: the session still starts at seq 0
    ok = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": "a"}]})
    assert ok.json()["first_seq"] == 0


async def test_pushed_top_logprobs_that_are_no_distribution_are_refused_or_audited(
    client: httpx.AsyncClient, stack: Stack, r: Redis
) -> None:
    """Either refused with a 4xx naming the token, or audited: never "accepted" and then dropped.

    Found by bench/load.py: the push API answers 202 for ``top_logprobs`` whose probabilities sum to
    more than 1 (here 0.90 + 0.82), and the auditor then dead-letters the token ("the top_k
    probabilities sum to more than 1"), so a client told "accepted" loses it.
    """
    sid = await start_session(client)
    bad = {"text": "a", "logprob": -0.1, "top_logprobs": {"a": -0.1, "b": -0.2}}
    resp = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [bad]})
    if resp.status_code == 202:
        await finish(client, sid)
        got = await outcome(r, stack, sid, 1, wait_s=15)
        assert sorted(got["audits"]) == [0], "accepted (202) but never audited: it was dead-lettered"
    else:
        err = assert_refused(resp, (400, 422))
        assert (err["param"] or "").startswith("tokens.0"), err


async def test_malformed_bytes_and_content(client: httpx.AsyncClient) -> None:
    for content in (b"{", b'{"prompt": "\xff\xfe"}', b"\x00\x00", b"", b'{"prompt": "hi"} trailing'):
        resp = await client.post("/generate", content=content, headers={"content-type": "application/json"})
        assert_refused(resp, (400, 422))
    resp = await client.post("/generate", content=b"prompt=hi", headers={"content-type": "text/plain"})
    assert_refused(resp, (400, 415, 422))


async def test_odd_unicode_is_kept_or_refused_clearly(client: httpx.AsyncClient, stack: Stack, r: Redis) -> None:
    # RTL override, zero-width joiner, combining marks, astral emoji, NUL: valid text, kept as sent
    odd = "\u202eabc\u202c \u200d\u0301e\u0301 \U0001f600 a\x00b \ufeff"
    sid = await start_session(client)
    await push(client, sid, [{"text": odd, "probability": 0.5}, {"text": "\u05e9\u05dc\u05d5\u05dd", "logprob": -0.1}])
    await finish(client, sid)
    got = await outcome(r, stack, sid, 2)
    detail = (await client.get(f"/sessions/{sid}")).json()
    assert [t["text"] for t in detail["tokens"]] == [odd, "\u05e9\u05dc\u05d5\u05dd"]
    assert sorted(got["audits"]) == [0, 1]
    # a lone surrogate is valid JSON (\\ud800) but not text: refused, naming the field
    for path, raw in (
        ("/generate", '{"prompt": "a\\ud800b"}'),
        ("/push/sessions", '{"model": "m\\udfff"}'),
    ):
        resp = await client.post(path, content=raw, headers={"content-type": "application/json"})
        assert_refused(resp, (400, 422))
    sid = await start_session(client)
    raw = '{"tokens": [{"text": "x\\ud83d"}]}'
    resp = await client.post(f"/push/sessions/{sid}/tokens", content=raw, headers={"content-type": "application/json"})
    assert_refused(resp, (400, 422))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/sessions/no-such-session", 404),
        ("GET", "/sessions/no-such-session/status", 404),
        ("POST", "/sessions/no-such-session/cancel", 404),
        ("DELETE", "/sessions/no-such-session", 404),
        ("POST", "/push/sessions/no-such-session/finish", 404),
        ("GET", "/sessions/" + "x" * 5_000, (404, 422)),
        ("GET", "/sessions/%00", (404, 422)),
        ("GET", "/sessions/%E2%80%AE", (404, 422)),
        ("GET", "/sessions?limit=-1", (400, 422)),
        ("GET", "/sessions?limit=abc", (400, 422)),
        ("GET", "/push/no/such/route", 404),
    ],
)
async def test_unknown_ids_and_bad_paths(
    client: httpx.AsyncClient, method: str, path: str, status: int | tuple[int, ...]
) -> None:
    resp = await client.request(method, path)
    assert_refused(resp, status)


async def test_push_to_an_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.post("/push/sessions/nope/tokens", json={"tokens": [{"text": "a"}]})
    assert_refused(resp, 404, param="session_id")


# --- REST: strict bodies, limits, models, routes -----------------------------------------------------


def raw_post(client: httpx.AsyncClient, path: str, text: str) -> Any:
    return client.post(path, content=text, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("field", "raw", "says"),
    [
        ("max_tokens", '"5"', "got a string ('5')"),
        ("max_tokens", "true", "got a boolean (true)"),
        ("max_tokens", "5.0", "valid integer"),
        ("temperature", '"0.5"', "got a string ('0.5')"),
        ("temperature", "false", "got a boolean (false)"),
        ("top_p", "NaN", "NaN, Infinity"),
        ("top_p", "Infinity", "NaN, Infinity"),
        ("temperature", "-Infinity", "NaN, Infinity"),
        ("temperature", "1e999", "like 1e999"),
        ("seed", '"7"', "got a string"),
        ("top_k", "[1]", "got an array"),
        ("stop", '"x"', "valid list"),
        ("prompt", "5", "got a number (5)"),
        ("model", "7", "got a number"),
    ],
)
async def test_numbers_are_numbers_and_finite(client: httpx.AsyncClient, field: str, raw: str, says: str) -> None:
    body = '{"prompt": "hi", "' + field + '": ' + raw + "}" if field != "prompt" else '{"prompt": ' + raw + "}"
    err = assert_refused(await raw_post(client, "/generate", body), 422, param=field)
    assert err["message"].startswith(f"{field}: ") and says in err["message"], err


async def test_ints_are_fine_where_floats_belong(client: httpx.AsyncClient) -> None:
    resp = await client.post("/generate", json={"prompt": "hi", "temperature": 1, "top_p": 1, "max_tokens": 1})
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize("body", ["[]", '["prompt", "hi"]', '"x"', "3", "null", "true"])
@pytest.mark.parametrize("path", ["/generate", "/push/sessions"])
async def test_a_body_that_is_not_an_object_names_the_body(client: httpx.AsyncClient, path: str, body: str) -> None:
    err = assert_refused(await raw_post(client, path, body), 422, param="body")
    assert "body:" in err["message"], err


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"prompt": "hi", "max_tokens": 10**30}, "max_tokens", "less than or equal to 4096"),
        ({"prompt": "hi", "seed": 2**64}, "seed", "less than or equal to"),
        ({"prompt": "hi", "temperature": 1e308}, "temperature", "less than or equal to 5"),
        ({"prompt": "hi", "top_k": -(10**20)}, "top_k", "greater than or equal to 0"),
        ({"prompt": "hi", "prompts": "x"}, "prompts", "unknown field"),
        ({"prompt": "hi", "sampling": {"temperature": 0}}, "sampling", "unknown field"),
        ({"messages": [{"role": "user", "content": "hi", "name": "x"}]}, "messages.0.name", "unknown field"),
        ({"prompt": ""}, "prompt", "at least 1 character"),
        ({"messages": []}, "messages", "at least one message"),
        ({"messages": [{"role": "user", "content": ""}]}, "messages.0", "only whitespace"),
        (
            {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": " \n "}]},
            "messages.1",
            "only whitespace",
        ),
        ({"prompt": "hi", "model": ""}, "model", "at least 1 character"),
    ],
)
async def test_huge_numbers_unknown_fields_and_empty_prompts(
    client: httpx.AsyncClient, body: dict[str, Any], param: str, says: str
) -> None:
    err = assert_refused(await client.post("/generate", json=body), 422, param=param)
    assert says in err["message"], err


async def test_limits_at_and_just_over_the_enforced_bound(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["GenerateRequest"]["properties"]
    limit = int(schema["max_tokens"]["maximum"])  # FastAPI writes bounds as JSON floats (4096.0)
    chars = next(s["maxLength"] for s in schema["prompt"]["anyOf"] if s.get("type") == "string")
    config = (await client.get("/config")).json()["limits"]
    assert (limit, chars) == (config["max_tokens"], config["prompt_chars"]) == (4096, 32000)  # the settings
    resp = await client.post("/generate", json={"prompt": "x" * chars, "max_tokens": limit})
    assert resp.status_code == 202, resp.text
    err = assert_refused(
        await client.post("/generate", json={"prompt": "x", "max_tokens": limit + 1}), 422, "max_tokens"
    )
    assert str(limit) in err["message"]
    err = assert_refused(await client.post("/generate", json={"prompt": "x" * (chars + 1)}), 422, param="prompt")
    assert str(chars) in err["message"]
    half = chars // 2
    chat = [{"role": "user", "content": "y" * half}, {"role": "assistant", "content": "z" * (chars - half)}]
    assert (await client.post("/generate", json={"messages": chat})).status_code == 202
    chat[1]["content"] += "!"
    err = assert_refused(await client.post("/generate", json={"messages": chat}), 422, param="messages")
    assert f"at most {chars}" in err["message"]


OFFLINE_GENERATOR = ModelPolicy(default="embedded", aliases=frozenset({"SmolLM2-135M-Instruct"}), hub="offline")


@pytest.fixture
async def offline_generator(stack: Stack, r: Redis) -> AsyncIterator[str]:
    """A generator's heartbeat (as services/generator/__main__.py writes it) whose hub is unreachable."""
    key = f"{stack.prefix}heartbeat:generator:offline-test"
    value = {
        "service": "generator",
        "instance": "offline-test",
        "pid": 0,
        "ts_ns": time.time_ns(),
        "started_ns": time.time_ns(),
        "status": "ready",
        "details": {"model": "SmolLM2-135M-Instruct", "model_policy": OFFLINE_GENERATOR.to_json()},
    }
    await r.set(key, json.dumps(value), px=60_000)
    yield key
    await r.delete(key)


async def post_until(client: httpx.AsyncClient, body: dict[str, Any], status: int) -> httpx.Response:
    """POST /generate until it answers ``status``: the gateway rereads heartbeats about once a second."""
    deadline = time.monotonic() + 15
    while True:
        resp = await client.post("/generate", json=body)
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        await asyncio.sleep(0.1)


async def test_a_model_this_deployment_does_not_serve_is_refused_at_submit(
    client: httpx.AsyncClient, offline_generator: str
) -> None:
    resp = await post_until(client, {"prompt": "hi", "model": "mistralai/Mistral-7B-Instruct-v0.3"}, 400)
    err = assert_refused(resp, 400, param="model")
    assert "hub is unreachable" in err["message"] and "offline-test" in err["message"], err
    err = assert_refused(await client.post("/generate", json={"prompt": "hi", "model": "no such model!"}), 400, "model")
    assert "neither a local folder" in err["message"]
    for served in (None, "embedded", "SmolLM2-135M-Instruct", "/models/on/the/generator"):
        resp = await client.post("/generate", json={"prompt": "hi", "model": served})
        assert resp.status_code == 202, (served, resp.text)


async def test_without_a_generator_heartbeat_jobs_are_queued(client: httpx.AsyncClient, stack: Stack, r: Redis) -> None:
    assert [k async for k in r.scan_iter(match=f"{stack.prefix}heartbeat:generator:*")] == []
    resp = await post_until(client, {"prompt": "hi", "model": "org/some-model"}, 202)  # once no policy is left
    assert (resp.status_code, resp.json()["status"]) == (202, "queued"), resp.text


async def test_head_works_on_every_get_route(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    gets = [p.replace("{session_id}", "no-such-session") for p, ops in paths.items() if "get" in ops]
    assert len(gets) >= 7, gets
    for path in [*gets, "/", "/docs", "/openapi.json", "/dashboard/route"]:
        got, head = await client.get(path), await client.head(path)
        assert (path, head.status_code, head.content) == (path, got.status_code, b"")
        assert head.headers.get("content-type") == got.headers.get("content-type"), path


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/sessions",
        "/sessions/a/b/c",
        "/push/x",
        "/generate/x",
        "/ws/x",
    ],
)
async def test_unknown_api_paths_get_the_json_404_not_the_dashboard(client: httpx.AsyncClient, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        resp = await client.request(method, path)
        assert resp.headers["content-type"] == "application/json", (method, path, resp.text[:200])
        assert assert_refused(resp, 404)["type"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "meant"),
    [
        ("GET", "/health/", "/health"),
        ("GET", "/config/", "/config"),
        ("GET", "/sessions/", "/sessions"),
        ("POST", "/generate/", "/generate"),
        ("POST", "/push/sessions/", "/push/sessions"),
    ],
)
async def test_trailing_slashes_get_a_404_naming_the_path_without_it(
    client: httpx.AsyncClient, method: str, path: str, meant: str
) -> None:
    resp = await client.request(method, path, json={})
    assert "location" not in resp.headers  # no redirect: a client would replay a POST body to it
    err = assert_refused(resp, 404)
    assert f"did you mean {meant!r}" in err["message"], err


async def test_a_wrong_method_is_405_naming_the_allowed_ones(client: httpx.AsyncClient) -> None:
    resp = await client.get("/generate")
    assert (assert_refused(resp, 405)["type"], resp.headers["allow"]) == ("method_not_allowed", "POST")
    resp = await client.delete("/health")
    assert resp.headers["allow"] == "GET, HEAD" and "allowed: GET, HEAD" in assert_refused(resp, 405)["message"]


async def test_after_rest_abuse_everything_still_serves(stack: Stack, client: httpx.AsyncClient, r: Redis) -> None:
    await still_serving(stack, client, r)


# --- WebSocket ---------------------------------------------------------------------------------


async def recv(ws: ClientConnection, wait_s: float = 30) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return msg


async def test_websocket_garbage_gets_errors_and_the_socket_stays_open(stack: Stack) -> None:
    async with connect(stack.ws_url) as ws:
        for garbage in ("{{{", "[1, 2]", '"text"', "null", '{"type": 5}', '{"no": "type"}', "\x00\x01", "\ud7ff\u202e"):
            await ws.send(garbage)
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["error"]["type"] in ("invalid_json", "invalid_request"), (
                garbage,
                msg,
            )
        await ws.send(json.dumps({"type": "dance"}))
        assert (await recv(ws))["error"]["param"] == "type"
        await ws.send(json.dumps({"type": "subscribe", "session_id": "no-such-session"}))
        assert (await recv(ws))["error"]["type"] == "not_found"
        await ws.send(json.dumps({"type": "subscribe", "session_id": "x", "after_seq": "zero"}))
        assert (await recv(ws))["error"]["param"] == "after_seq"
        await ws.send(json.dumps({"type": "generate", "prompt": 5}))
        assert (await recv(ws))["type"] == "error"
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("text", "param", "says"),
    [
        ('{"type": "generate", "prompt": "hi", "max_tokens": "5"}', "max_tokens", "got a string"),
        ('{"type": "generate", "prompt": "hi", "max_tokens": true}', "max_tokens", "got a boolean"),
        ('{"type": "generate", "prompt": "hi", "temperature": NaN}', "temperature", "NaN"),
        ('{"type": "generate", "prompt": "hi", "top_p": Infinity}', "top_p", "NaN"),
        ('{"type": "generate", "prompt": "hi", "temperature": 1e999}', "temperature", "1e999"),
        ('{"type": "generate", "prompt": "hi", "max_tokens": 100000000000000000000}', "max_tokens", "4096"),
        ('{"type": "generate", "prompt": "hi", "max_tokens": 4097}', "max_tokens", "4096"),
        ('{"type": "generate", "prompt": "hi", "prompts": 1}', "prompts", "unknown field"),
        ('{"type": "generate", "prompt": ""}', "prompt", "at least 1 character"),
        ('{"type": "generate", "messages": [{"role": "user", "content": "  "}]}', "messages.0", "whitespace"),
        ('{"type": "generate", "prompt": "x", "stop": [' + "[" * 40 + "]" * 40 + "]}", None, "levels deep"),
        ("[" * 100_000 + "]" * 100_000, None, "levels deep"),
        ('{"type": "subscribe", "session_id": ' + "{" * 50_000, None, "levels deep"),
        ("[]", "body", "JSON object"),
        ('"generate"', "body", "JSON object"),
        ("3", "body", "JSON object"),
        ('{"type": ["generate"]}', "type", "string 'type'"),
        ('{"type": "subscribe", "session_id": "x", "after_seq": true}', "after_seq", "integer"),
        ('{"type": "subscribe", "session_id": "x", "after_seq": 1.5}', "after_seq", "integer"),
    ],
)
async def test_websocket_bad_messages_get_errors_naming_the_field(
    stack: Stack, text: str, param: str | None, says: str
) -> None:
    async with connect(stack.ws_url, max_size=None) as ws:
        await ws.send(text)
        msg = await recv(ws)
        err = msg["error"]
        kind = "invalid_json" if says == "levels deep" else "invalid_request"
        assert (msg["type"], err["type"], err["param"], says in err["message"]) == ("error", kind, param, True), msg
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}  # the socket stays open


async def test_websocket_generate_at_the_bound_and_unserved_models(stack: Stack, offline_generator: str) -> None:
    async with connect(stack.ws_url) as ws:
        await ws.send(json.dumps({"type": "generate", "prompt": "x" * 32_000, "max_tokens": 4096}))
        msg = await recv(ws)
        assert (msg["type"], msg["status"]) == ("session", "queued"), msg
        deadline = time.monotonic() + 15
        while True:  # until the gateway has read the offline generator's heartbeat (it caches heartbeats ~1 s)
            await ws.send(json.dumps({"type": "generate", "prompt": "hi", "model": "org/not-cached"}))
            msg = await recv(ws)
            limited = msg["type"] == "error" and msg["error"]["type"] == "rate_limited"
            if (msg["type"] == "error" and not limited) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # under the 50 requests/s limit
        assert (msg["type"], msg["error"]["type"], msg["error"]["param"]) == ("error", "bad_request", "model"), msg
        assert "hub is unreachable" in msg["error"]["message"]


@pytest.mark.parametrize("path", ["/", "/wss", "/ws/", "/socket", "/api/ws"])
async def test_a_websocket_on_a_wrong_path_gets_a_json_404_naming_ws(stack: Stack, path: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(stack.url.replace("http", "ws") + path):
            pass
    response = refused.value.response
    body = json.loads(response.body)
    assert (response.status_code, body["error"]["type"]) == (404, "not_found")
    assert "the WebSocket is at /ws" in body["error"]["message"]


async def test_after_websocket_abuse_everything_still_serves(stack: Stack, client: httpx.AsyncClient, r: Redis) -> None:
    await still_serving(stack, client, r)


async def closed_with(ws: ClientConnection) -> int | None:
    """The close code the server sent (messages before the close are skipped)."""
    try:
        for _ in range(100):
            await asyncio.wait_for(ws.recv(), 30)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    raise AssertionError("the server did not close the socket")


async def test_websocket_binary_and_oversize_frames_close_with_the_documented_codes(stack: Stack) -> None:
    async with connect(stack.ws_url) as ws:
        await ws.send(b"\x00\xff binary")
        assert await closed_with(ws) == 1003
    async with connect(stack.ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * (300 * 1024)}))
        assert await closed_with(ws) == 1009


async def test_websocket_flood_is_answered_and_others_are_served(
    stack: Stack, client: httpx.AsyncClient, r: Redis
) -> None:
    sid = await start_session(client)
    async with connect(stack.ws_url) as viewer, connect(stack.ws_url) as flooder:
        await viewer.send(json.dumps({"type": "subscribe", "session_id": sid, "after_seq": -1}))

        async def flood() -> int:
            for _ in range(5_000):
                await flooder.send('{"type": "ping"}')
            answers = 0
            try:
                while answers < 5_000:
                    msg = await recv(flooder, 10)
                    answers += msg["type"] in ("pong", "error")
            except (TimeoutError, ConnectionClosed):
                pass
            return answers

        flooding = asyncio.create_task(flood())
        await push(client, sid, GOOD)
        await finish(client, sid)
        seen: list[int] = []
        while True:
            msg = await recv(viewer, 60)
            if msg["type"] == "token":
                seen.append(msg["seq"])
            if msg["type"] == "done":
                break
        answers = await flooding
    assert seen == list(range(len(GOOD)))
    assert answers > 0  # answered (pong, or rate_limited errors), not silently dropped or crashed
    await still_serving(stack, client, r)


# --- entries written straight into the streams ------------------------------------------------------


def data(**event: Any) -> bytes:
    return json.dumps(event, allow_nan=True).encode()


def token_fields(**over: Any) -> dict[str, Any]:
    event = {
        "schema_version": 1,
        "type": "token",
        "session_id": "third-party",
        "seq": 0,
        "ts_ns": time.time_ns(),
        "text": "x",
        "distribution": "top_k",
        "top_k": [{"token_id": 1, "text": "x", "logprob": -0.1}],
        "model": "m",
        **over,
    }
    return {"data": data(**event)}


def logits(values: list[float]) -> bytes:
    return np.asarray(values, dtype="<f2").tobytes()


BAD_TOKENS: dict[str, dict[str, Any]] = {
    "no data field": {"payload": b"{}"},
    "data not JSON": {"data": b"{not json"},
    "data not UTF-8": {"data": b'{"text": "\xff"}'},
    "missing text": {"data": json.dumps({"type": "token", "session_id": "s", "seq": 1, "model": "m"}).encode()},
    "seq a string": token_fields(seq="one"),
    "seq negative": token_fields(seq=-5),
    "unknown field": token_fields(colour="blue"),
    "NaN logprob": token_fields(logprob=math.nan, distribution="prob_only", top_k=[]),
    "NaN logits": {
        **token_fields(distribution="full", vocab_size=4, logits_dtype="float16", token_id=0, top_k=[]),
        "logits": logits([1.0, math.nan, 0.0, 2.0]),
    },
    "wrong vocabulary size": {
        **token_fields(distribution="full", vocab_size=50, logits_dtype="float16", token_id=0, top_k=[]),
        "logits": logits([1.0, 2.0, 0.0, 2.0]),
    },
    "token id outside the vocabulary": {
        **token_fields(distribution="full", vocab_size=4, logits_dtype="float16", token_id=9, top_k=[]),
        "logits": logits([1.0, 2.0, 0.0, 2.0]),
    },
    "5 MB entry": token_fields(text="y" * (5 * 1024 * 1024)),
}

BAD_AUDITS: dict[str, dict[str, Any]] = {
    "no data field": {"x": b"1"},
    "audit without metrics": {
        "data": data(type="token", session_id="s", seq=0, text="a", distribution="none", model="m")
    },
    "wrong type": {"data": data(type="banana", session_id="s", seq=0)},
    "5 MB entry": {"data": b'{"type": "token", "text": "' + b"z" * (5 * 1024 * 1024) + b'"}'},
}

BAD_SESSIONS: dict[str, dict[str, Any]] = {
    "no data field": {"status": b"finished"},
    "unknown status": {"data": data(type="session", session_id="s", seq=2, status="exploded")},
    "seq a list": {"data": data(type="session", session_id="s", seq=[2], status="finished")},
}


async def test_malformed_stream_entries_are_dead_lettered_with_reasons(
    stack: Stack, client: httpx.AsyncClient, r: Redis
) -> None:
    written: dict[bytes, tuple[str, str]] = {}
    for stream, cases in (("tokens", BAD_TOKENS), ("audits", BAD_AUDITS), ("sessions", BAD_SESSIONS)):
        for name, fields in cases.items():
            eid: Any = await r.xadd(f"{stack.prefix}{stream}", fields)  # type: ignore[arg-type]
            written[eid] = (stream, name)
    expected = {"tokens": {"auditors"}, "audits": {"alerters", "recorders"}, "sessions": {"alerters", "recorders"}}
    want = sum(len(expected[s]) for s, _ in written.values())

    deadline = time.monotonic() + 60
    while True:
        dead: list[Any] = list(await r.xrange(f"{stack.prefix}dead") or [])
        ours = [f for _, f in dead if f[b"entry_id"] in written]
        if len(ours) >= want or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    groups: dict[bytes, set[str]] = {eid: set() for eid in written}
    for f in ours:
        stream, name = written[f[b"entry_id"]]
        assert f[b"stream"].decode() == f"{stack.prefix}{stream}"
        assert len(f[b"reason"]) > 10, (stream, name, f[b"reason"])
        assert sum(len(v) for k, v in f.items() if k.startswith(b"original:")) <= 1024 * 1024 + 16
        if name == "5 MB entry":
            assert f[b"truncated"] == b"1"
        groups[f[b"entry_id"]].add(f[b"group"].decode())
    missing = {
        f"{written[eid][0]}: {written[eid][1]}": sorted(expected[written[eid][0]] - got)
        for eid, got in groups.items()
        if not expected[written[eid][0]] <= got
    }
    assert not missing, f"not dead-lettered by: {missing}"
    await still_serving(stack, client, r)
