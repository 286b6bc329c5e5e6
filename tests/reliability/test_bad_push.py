"""Bad input to the push API against the real services: refused with a clear error, nothing lost.

The push surface's battery beside tests/reliability/test_bad_input.py: reused and contradictory
session ids, abandoned sessions, OpenAI's conventions (the −9999 floor, +1e-7 rounding, ``[]``),
self-contradicting tokens, wrong types, non-finite numbers, huge batches, calls after the end. What
the gateway answers 202 is audited and recorded, every time; what it refuses leaves no trace.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.reliability.pipeline import entries, finish, outcome, push, script, start_session
from tests.reliability.test_bad_input import assert_refused, still_serving
from tests.stack import Stack
from tests.waiting import eventually

pytestmark = pytest.mark.slow

IDLE_S = 3  # UQ_PUSH_IDLE_TIMEOUT_S of this stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {"UQ_PUSH_IDLE_TIMEOUT_S": str(IDLE_S), "UQ_END_TIMEOUT_MS": "3000"}
    with Stack(services=("recorder", "auditor", "alerter", "gateway"), env=env) as s:
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


def fresh_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


async def post_raw(client: httpx.AsyncClient, path: str, body: str) -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": "application/json"})


async def wait_status(client: httpx.AsyncClient, sid: str, status: str, wait_s: float = 60) -> dict[str, Any]:
    got: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        nonlocal got
        got = (await client.get(f"/sessions/{sid}/status")).json()
        return got if got.get("status") == status else None

    return await eventually(
        reached, what=lambda: f"{sid} to be {status}; last: {got}", timeout_s=wait_s, interval_s=0.1
    )


# --- session ids (issue 14, item 1) -------------------------------------------------------------


async def test_reusing_a_finished_push_sessions_id_is_409_and_its_record_stays(
    stack: Stack, client: httpx.AsyncClient, r: Redis
) -> None:
    sid = fresh_id("reuse")
    tokens = script(12, seed=3)
    resp = await client.post("/push/sessions", json={"model": "first", "provider": "p", "session_id": sid})
    assert resp.status_code == 201, resp.text
    await push(client, sid, tokens)
    await finish(client, sid)
    before = await outcome(r, stack, sid, len(tokens))
    assert before["recorded"]["tokens"] == list(range(12))

    again = await client.post("/push/sessions", json={"model": "second", "session_id": sid})
    err = assert_refused(again, 409, param="session_id")
    assert "already exists" in err["message"]
    await r.delete(f"{stack.prefix}push:{sid}")  # as UQ_PUSH_SESSION_TTL_S would, a day later
    assert_refused(await client.post("/push/sessions", json={"model": "third", "session_id": sid}), 409, "session_id")
    assert_refused(await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": "x"}]}), 404)

    detail = (await client.get(f"/sessions/{sid}")).json()
    assert (detail["session"]["model"], detail["session"]["status"]) == ("first", "finished")
    assert [t["seq"] for t in detail["tokens"]] == list(range(12))
    sessions = await entries(r, stack, "sessions", sid)
    assert [(e["seq"], e["status"], e["model"]) for e in sessions] == [
        (0, "queued", "first"),
        (1, "started", "first"),
        (2, "finished", "first"),
    ]


async def test_the_id_of_a_generated_session_is_409(stack: Stack, client: httpx.AsyncClient, r: Redis) -> None:
    job = await client.post("/generate", json={"prompt": "Explain AI", "max_tokens": 3})
    assert job.status_code == 202, job.text
    sid = job.json()["session_id"]
    resp = await client.post("/push/sessions", json={"model": "m", "session_id": sid})
    assert_refused(resp, 409, param="session_id")
    assert [e["status"] for e in await entries(r, stack, "sessions", sid)] == ["queued"]


async def test_concurrent_starts_with_one_id_have_exactly_one_winner(client: httpx.AsyncClient) -> None:
    sid = fresh_id("race")
    answers = await asyncio.gather(
        *(client.post("/push/sessions", json={"model": f"m{i}", "session_id": sid}) for i in range(12))
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 11
    for a in answers:
        if a.status_code == 409:
            assert_refused(a, 409, param="session_id")


# --- abandoned sessions (item 2) and calls after the end ------------------------------------------


async def test_an_abandoned_push_session_ends_failed_and_keeps_its_tokens(
    stack: Stack, client: httpx.AsyncClient, r: Redis
) -> None:
    sid = await start_session(client)
    tokens = script(8, seed=5)
    await push(client, sid, tokens)
    status = await wait_status(client, sid, "failed", wait_s=IDLE_S + 60)
    assert status["reason"].startswith(f"abandoned: no tokens or finish for {IDLE_S} s (UQ_PUSH_IDLE_TIMEOUT_S)")
    late = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": " late"}]})
    assert "already ended failed: abandoned" in assert_refused(late, 409, param="session_id")["message"]
    assert_refused(await client.post(f"/push/sessions/{sid}/finish", json={"status": "finished"}), 409, "session_id")
    got = await outcome(r, stack, sid, len(tokens))
    assert sorted(got["audits"].items()) == [(s, 1) for s in range(len(tokens))]
    assert got["recorded"]["tokens"] == list(range(len(tokens)))
    assert got["recorded"]["status"] == "failed"
    summary = got["alerts"][-1]
    assert (summary["type"], summary["status"], summary["tokens"]) == ("summary", "failed", len(tokens))
    assert [e["status"] for e in await entries(r, stack, "sessions", sid)] == ["queued", "started", "failed"]


async def test_pushing_after_finish_finishing_twice_and_unknown_sessions(client: httpx.AsyncClient) -> None:
    sid = await start_session(client)
    await push(client, sid, [{"text": "a", "logprob": -0.1}])
    await finish(client, sid)
    after = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": "b"}]})
    assert "already ended (finished)" in assert_refused(after, 409, param="session_id")["message"]
    assert_refused(await client.post(f"/push/sessions/{sid}/finish", json={}), 409, param="session_id")
    assert_refused(await client.post("/push/sessions/never-started/tokens", json={"tokens": [{"text": "a"}]}), 404)
    assert_refused(await client.post("/push/sessions/never-started/finish"), 404, param="session_id")
    assert_refused(await client.post("/push/sessions/bad%20id/tokens", json={"tokens": [{"text": "a"}]}), (404, 422))


# --- OpenAI's conventions (item 6) -------------------------------------------------------------------


async def test_openai_floor_rounding_and_empty_lists_are_audited_right(
    stack: Stack, client: httpx.AsyncClient, r: Redis
) -> None:
    sid = await start_session(client)
    floor = [{"token": " b", "logprob": -0.01}, {"token": " a", "logprob": -9999.0}]
    tokens = [
        {"token": " a", "logprob": -9999.0, "top_logprobs": floor},  # below the floor, listed there too
        {"token": " c", "logprob": -9999.0, "top_logprobs": []},  # below the floor, prob-only
        {"token": " d", "logprob": 1e-7, "top_logprobs": [{"token": " d", "logprob": 1.2e-7}]},  # rounding
        {"token": " e", "logprob": -0.5, "top_logprobs": []},
    ]
    await push(client, sid, tokens)
    await finish(client, sid)
    got = await outcome(r, stack, sid, len(tokens))
    audits = {a["seq"]: a for a in await entries(r, stack, "audits", sid)}
    assert [audits[i]["distribution"] for i in range(4)] == ["top_k", "prob_only", "top_k", "prob_only"]
    for i in (0, 1):
        m = audits[i]["metrics"]
        assert (m["prob"], m["surprisal"], m["hbar_s"]) == (0.0, None, None), m
    assert audits[0]["metrics"]["rank"] == 2
    assert (audits[2]["metrics"]["prob"], audits[2]["metrics"]["surprisal"]) == (1.0, 0.0)
    assert audits[3]["metrics"]["surprisal"] == pytest.approx(0.5 / math.log(2))
    summary = got["alerts"][-1]
    assert summary["type"] == "summary"
    assert summary["nll_bits"] == pytest.approx(0.5 / math.log(2))  # the floor tokens' surprisal is unknown
    assert summary["perplexity"] == pytest.approx(2 ** (0.5 / math.log(2) / 2))
    assert summary["low_confidence_share"] == pytest.approx(0.5)  # p = 0 twice, 1 and 0.61
    export = await client.get(f"/sessions/{sid}/export", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(row["prob"], row["surprisal"], row["hbar_s"]) for row in rows[:2]] == [("0.0", "", "")] * 2
    assert [t["metrics"]["surprisal"] for t in (await client.get(f"/sessions/{sid}")).json()["tokens"]] == [
        None,
        None,
        0.0,
        pytest.approx(0.5 / math.log(2)),
    ]


CONTRADICTIONS = [
    (
        {
            "token": "a",
            "logprob": -0.1,
            "top_logprobs": [{"token": "b", "logprob": -2.5}, {"token": "a", "logprob": -2}],
        },
        "tokens.1.logprob",
    ),
    ({"text": "a", "probability": 0.9, "top_logprobs": {"a": -2.0, "b": -3.0}}, "tokens.1.logprob"),
    (
        {"token": "a", "logprob": -0.1, "top_logprobs": [{"token": "b", "logprob": -3}, {"token": "b", "logprob": -3}]},
        "tokens.1.top_logprobs.1.token",
    ),
    ({"text": "z", "logprob": -0.1, "top_logprobs": {"a": -0.5}}, "tokens.1.logprob"),
    ({"text": "a", "top_logprobs": {"a": -0.1, "b": -0.2}}, "tokens.1.top_logprobs"),
]


@pytest.mark.parametrize(("bad", "param"), CONTRADICTIONS)
async def test_a_token_that_contradicts_itself_is_400_naming_the_field(
    client: httpx.AsyncClient, bad: dict[str, Any], param: str
) -> None:
    sid = await start_session(client)
    resp = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": "ok"}, bad]})
    assert_refused(resp, 400, param=param)
    ok = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": "ok"}]})
    assert ok.json()["first_seq"] == 0  # the batch was refused whole: nothing published


# --- garbage ---------------------------------------------------------------------------------------


GARBAGE = [
    '{"tokens": [{"text": "a", "logprob": -Infinity}]}',
    '{"tokens": [{"text": "a", "logprob": NaN}]}',
    '{"tokens": [{"text": "a", "top_logprobs": [{"token": "b", "logprob": NaN}]}]}',
    '{"tokens": [{"text": "a", "top_logprobs": [{"token": "b", "logprob": -Infinity}]}]}',
    '{"tokens": [{"text": "a", "top_logprobs": {"b": Infinity}}]}',
    '{"tokens": [{"text": "a", "top_logprobs": {"b": -Infinity}}]}',
    '{"tokens": [{"text": "a", "logprob": 0.5}]}',
    '{"tokens": [{"text": "a", "probability": 0}]}',
    '{"tokens": [{"text": "a", "probability": 1.5}]}',
    '{"tokens": [{"text": "a", "logprob": -0.1, "probability": 0.9}]}',
    '{"tokens": [{"text": "a", "top_logprobs": [{"token": 5, "logprob": -1}]}]}',
    '{"tokens": [{"text": "a", "top_logprobs": "many"}]}',
    '{"tokens": [{"text": "a", "token_id": "seven"}]}',
    '{"tokens": [{"text": ["a"]}]}',
    '{"tokens": [{"text": "a", "logits": [1, "x"], "token_id": 0}]}',
    '{"tokens": [{"text": "a", "logits": [1e39, 0], "token_id": 0}]}',
    '{"tokens": [null]}',
    '{"tokens": []}',
    '{"tokens": {"text": "a"}}',
    '{"tokens": [{"text": "a"}], "extra": 1}',
]


@pytest.mark.parametrize("body", GARBAGE)
async def test_push_garbage_is_refused_and_nothing_is_published(client: httpx.AsyncClient, body: str) -> None:
    sid = await start_session(client)
    err = assert_refused(await post_raw(client, f"/push/sessions/{sid}/tokens", body), (400, 422))
    assert (err["param"] or "").startswith(("tokens", "extra")), err
    ok = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": [{"text": "ok"}]})
    assert ok.json()["first_seq"] == 0


@pytest.mark.parametrize(
    "body",
    [
        '{"model": ""}',
        '{"model": "m", "session_id": ""}',
        '{"model": "m", "session_id": "has space"}',
        '{"model": "m", "session_id": "' + "x" * 200 + '"}',
        '{"model": "m", "provider": 5}',
        '{"model": "m", "prompt": ' + json.dumps("p" * 40_000) + "}",
        '{"model": "m", "colour": "blue"}',
        "[]",
        "null",
    ],
)
async def test_bad_starts_are_refused(client: httpx.AsyncClient, body: str) -> None:
    assert_refused(await post_raw(client, "/push/sessions", body), (400, 422))


async def test_huge_batches_are_refused_whole(client: httpx.AsyncClient, r: Redis, stack: Stack) -> None:
    sid = await start_session(client)
    over = {"tokens": [{"text": "a", "logprob": -0.1}] * 1_001}
    assert_refused(await client.post(f"/push/sessions/{sid}/tokens", json=over), (400, 422), param="tokens")
    wide = {"tokens": [{"text": "a", "top_logprobs": {f"t{i}": -20.0 for i in range(1_001)}}]}
    assert_refused(await client.post(f"/push/sessions/{sid}/tokens", json=wide), (400, 422))
    full = {"tokens": [{"text": "a", "logprob": -0.1}] * 1_000}
    accepted = await client.post(f"/push/sessions/{sid}/tokens", json=full)
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["first_seq"], accepted.json()["last_seq"]) == (0, 999)
    await finish(client, sid)
    got = await outcome(r, stack, sid, 1_000)
    assert sorted(got["audits"]) == list(range(1_000))


async def test_after_push_abuse_everything_still_serves(stack: Stack, client: httpx.AsyncClient, r: Redis) -> None:
    await still_serving(stack, client, r)
