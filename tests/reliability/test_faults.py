"""Faults: the real services (tests/stack.py) and a real Redis, one process killed with SIGKILL in the
middle of a session, then started again. Tokens enter through the push API, so that the same scripted
sequence can be run undisturbed and disturbed and the outputs compared: the alerter's output is
deterministic for the same audits.

What must hold after every fault: each token audited exactly once (one ``uq:audits`` entry per
``(session, seq)``), the same alerts, risk changes and summary as the undisturbed run, every token and
alert recorded once, and the session finished.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.reliability.pipeline import (
    comparable,
    entries,
    finish,
    outcome,
    pending,
    push,
    run_script,
    script,
    start_session,
)
from tests.stack import Stack
from tests.waiting import eventually

pytestmark = pytest.mark.slow

N = 300
TOKENS = script(N)
ENDED = ("finished", "failed", "cancelled")
# UQ_REORDER_MAX above N: while tokens stranded on a killed auditor wait to be reclaimed, the alerter
# buffers every later audit of the session; with the default 256 it would give up on the gap once
# 256 had arrived, which for N = 300 depends on which tokens the auditor held when it died.
FAST_RECLAIM = {"UQ_CLAIM_IDLE_MS": "2000", "UQ_RECORDER_BATCH_SIZE": "64", "UQ_REORDER_MAX": "1000"}
RETAINED = 500  # UQ_MAXLEN_TOKENS of the fault stack (default 5,000), so that outrunning it is cheap


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {**FAST_RECLAIM, "UQ_MAXLEN_TOKENS": str(RETAINED)}
    with Stack(services=("recorder", "auditor", "alerter", "gateway"), auditors=2, env=env) as s:
        yield s


@pytest.fixture(scope="module")
def own_redis_stack() -> Iterator[Stack]:
    services = ("recorder", "auditor", "alerter", "generator", "gateway")
    with Stack(services=services, own_redis=True, env=FAST_RECLAIM) as s:
        yield s


async def redis_of(stack: Stack) -> Redis:
    return Redis.from_url(stack.redis_url)


@pytest.fixture
async def r(stack: Stack) -> AsyncIterator[Redis]:
    client = await redis_of(stack)
    yield client
    await client.aclose()


_reference: dict[str, dict[str, Any]] = {}


async def reference(stack: Stack, r: Redis) -> dict[str, Any]:
    """The outputs of the scripted session run with nothing disturbed (once per stack)."""
    if stack.prefix not in _reference:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            sid = await run_script(client, TOKENS)
        got = await outcome(r, stack, sid, N)
        assert sorted(got["audits"].items()) == [(s, 1) for s in range(N)]
        assert sum(a["type"] == "alert" for a in got["alerts"]) >= 5, "the script must make the rules fire"
        assert {a["type"] for a in got["alerts"]} == {"alert", "risk", "scores", "summary"}
        _reference[stack.prefix] = {**got, "sid": sid}
    return _reference[stack.prefix]


async def wait_healthy(stack: Stack, wait_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        while True:
            try:
                resp = await client.get("/health")
                if resp.status_code == 200 or time.monotonic() > deadline:
                    body: dict[str, Any] = resp.json()
                    return body
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.25)


def assert_all_running(stack: Stack) -> None:
    exited = {name: p.returncode for name, p in stack.procs.items() if p.poll() is not None}
    assert not exited, f"exited: {exited}\n" + "\n".join(stack.log_tail(n) for n in exited)


def assert_same_outputs(got: dict[str, Any], ref: dict[str, Any], n: int) -> None:
    assert sorted(got["audits"].items()) == [(s, 1) for s in range(n)], "every token audited exactly once"
    assert comparable(got["alerts"]) == comparable(ref["alerts"]), "the same alerts, risks and summary, once each"
    rec = got["recorded"]
    assert rec["tokens"] == list(range(n))
    # the recorder keeps every alert and risk change, once (live scores are not stored: the summary has them)
    assert rec["alerts"] == sorted(a["seq"] for a in got["alerts"] if a["type"] in ("alert", "risk"))
    assert rec["summaries"] == 1
    assert rec["status"] == "finished"


@pytest.mark.parametrize("victim", ["auditor-1", "alerter", "recorder"])
async def test_a_service_killed_mid_session_and_restarted_loses_and_repeats_nothing(
    stack: Stack, r: Redis, victim: str
) -> None:
    ref = await reference(stack, r)

    async def between(batch: int) -> None:
        if batch == 3:  # tokens of batches 0-3 are still in flight
            assert stack.kill(victim) == -9
        elif batch == 8:
            stack.start_service(victim)

    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        sid = await run_script(client, TOKENS, between=between)
    got = await outcome(r, stack, sid, N)
    assert_same_outputs(got, ref, N)
    assert_all_running(stack)
    assert (await wait_healthy(stack))["status"] == "ok"
    left: dict[str, int] = {}

    async def all_acknowledged() -> bool:  # the last acknowledgements may trail the outputs a little
        left.update(await pending(r, stack))
        return not any(left.values())

    await eventually(all_acknowledged, what=lambda: f"nothing pending or unread; last: {left}", timeout_s=30)
    assert await r.xlen(f"{stack.prefix}dead") == 0


async def test_both_auditors_killed_then_one_restarted_under_another_name(stack: Stack, r: Redis) -> None:
    """Entries pending on a consumer that never comes back are reclaimed (XAUTOCLAIM) by another."""
    ref = await reference(stack, r)

    async def between(batch: int) -> None:
        if batch == 2:
            stack.kill("auditor-1")
            stack.kill("auditor-2")
        elif batch == 5:
            stack.modules["auditor-3"] = "auditor"
            stack.start_service("auditor-3")

    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        sid = await run_script(client, TOKENS, between=between)
    got = await outcome(r, stack, sid, N)
    assert_same_outputs(got, ref, N)
    stack.start_service("auditor-1")
    stack.start_service("auditor-2")
    stack.stop_service("auditor-3")
    del stack.procs["auditor-3"]


async def _caught_up(r: Redis, key: str) -> bool:
    groups = await r.xinfo_groups(key)
    return bool(groups) and all(g.get("lag") == 0 and g["pending"] == 0 for g in groups)


async def test_consumer_groups_destroyed_under_the_services_are_created_again(stack: Stack, r: Redis) -> None:
    """A group can vanish without a broken connection (Redis restarted empty between two reads, a flush,
    ``XGROUP DESTROY``): every consumer gets NOGROUP. Each service creates its group again and goes on;
    re-reading the retained entries from the start repeats no audit, alert or row."""
    ref = await reference(stack, r)
    destroyed = 0
    for stream in ("tokens", "audits", "alerts", "sessions"):
        for g in await r.xinfo_groups(f"{stack.prefix}{stream}"):
            destroyed += await r.xgroup_destroy(f"{stack.prefix}{stream}", g["name"])
    assert destroyed == 6  # auditors; alerters ×2; recorders ×3

    async def groups_back() -> bool:  # each consumer hits NOGROUP at its next read and creates its group again
        streams = ("tokens", "audits", "alerts", "sessions")
        return sum([len(await r.xinfo_groups(f"{stack.prefix}{s}")) for s in streams]) == destroyed

    await eventually(groups_back, what="every service to create its group again", timeout_s=60)
    # the auditors' new group starts at the beginning of the retained entries; until it has re-read them
    # the push API rightly refuses more (503: they would not fit unread), so wait for the group to catch up
    await eventually(
        lambda: _caught_up(r, f"{stack.prefix}tokens"),
        what="the auditors to re-read the retained tokens",
        timeout_s=120,
        interval_s=0.2,
    )
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        sid = await run_script(client, TOKENS)
    assert_same_outputs(await outcome(r, stack, sid, N), ref, N)
    assert_all_running(stack)
    assert len(await entries(r, stack, "audits", ref["sid"])) == N, "earlier sessions are not audited twice"


async def test_tokens_pushed_while_no_auditor_runs_are_audited_later_or_refused(stack: Stack, r: Redis) -> None:
    """What the push API accepts (202) is audited once an auditor is back, however long it was away; if
    it cannot keep that promise it must say so (503/429 with Retry-After) instead of accepting.

    Fails today: ``uq:tokens`` is trimmed to ``UQ_MAXLEN_TOKENS`` (~N entries) whether or not the
    auditors have read them, and the push API keeps answering 202, so every token beyond N that
    arrives while no auditor reads is lost without a trace (not even dead-lettered). bench/load.py
    loses the same way under overload (the auditors fall behind by more than N).
    """
    tokens = script(2 * RETAINED, seed=3)
    stack.kill("auditor-1")
    stack.kill("auditor-2")
    accepted = refused = 0
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        sid = await start_session(client)
        for start in range(0, len(tokens), 100):
            resp = await client.post(f"/push/sessions/{sid}/tokens", json={"tokens": tokens[start : start + 100]})
            if resp.status_code == 202:
                accepted += resp.json()["accepted"]
            else:
                assert resp.status_code in (429, 503), resp.text
                assert "retry-after" in resp.headers
                refused += 1
        stack.start_service("auditor-1")
        stack.start_service("auditor-2")
        await finish(client, sid)
    got = await outcome(r, stack, sid, accepted, wait_s=30)
    assert len(got["audits"]) == accepted, f"{accepted - len(got['audits'])} of {accepted} accepted tokens lost"


# --- the generator ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator_stack() -> Iterator[Stack]:
    env = {"UQ_LEASE_TIMEOUT_S": "3", "UQ_REQUIRED_SERVICES": "generator,auditor"}
    with Stack(services=("auditor", "generator", "gateway"), env=env) as s:
        yield s


async def status_of(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/sessions/{sid}/status")).json()
    return body


async def wait_status(
    client: httpx.AsyncClient, sid: str, done: Callable[[dict[str, Any]], bool], wait_s: float
) -> dict[str, Any]:
    """The session's status once ``done(status)`` holds, or the last one after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        body = await status_of(client, sid)
        if done(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.25)


@pytest.mark.model
async def test_generator_killed_mid_generation_fails_the_session_after_the_lease_timeout(
    generator_stack: Stack,
) -> None:
    stack = generator_stack
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        resp = await client.post("/generate", json={"prompt": "Tell a long story", "max_tokens": 2000, "seed": 1})
        assert resp.status_code == 202
        sid = resp.json()["session_id"]
        assert (await wait_status(client, sid, lambda b: b.get("tokens", 0) >= 3, 120))["tokens"] >= 3
        assert stack.kill("generator") == -9
        # UQ_LEASE_TIMEOUT_S = 3, plus the sweeper's interval and slack
        body = await wait_status(client, sid, lambda b: b["status"] in ENDED, 30)
        assert body["status"] == "failed", body
        assert "UQ_LEASE_TIMEOUT_S" in (body.get("reason") or ""), body
        assert body["tokens"] >= 3

        stack.start_service("generator")  # a restarted generator does not run the dead job again
        await wait_healthy(stack)
        resp = await client.post("/generate", json={"prompt": "Hi", "max_tokens": 3, "temperature": 0})
        new = resp.json()["session_id"]
        assert (await wait_status(client, new, lambda b: b["status"] in ENDED, 120))["status"] == "finished"
        assert (await status_of(client, sid))["status"] == "failed"


# --- Redis and the gateway restarted ---------------------------------------------------------------


async def follow(ws: ClientConnection, until_done: bool, want: int = 0, wait_s: float = 60) -> list[dict[str, Any]]:
    """Messages on ``ws`` until ``done`` (or ``want`` token messages), or the socket closes."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            msg = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            got.append(msg)
            if msg["type"] == "done" and until_done:
                break
            if not until_done and sum(m["type"] == "token" for m in got) >= want:
                break
    except (ConnectionClosed, TimeoutError):
        pass
    return got


def token_seqs(msgs: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in msgs if m["type"] == "token"]


async def test_gateway_killed_a_browser_reconnects_and_resumes_without_gaps_or_duplicates(
    own_redis_stack: Stack,
) -> None:
    stack = own_redis_stack
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        sid = await start_session(client)
        async with connect(stack.ws_url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": sid, "after_seq": -1}))
            for start in range(0, 100, 20):
                await push(client, sid, TOKENS[start : start + 20])
            first = await follow(ws, until_done=False, want=100)
            await push(client, sid, TOKENS[100:140])  # audited while the gateway is down
            assert stack.kill("gateway") == -9
            first += await follow(ws, until_done=True, wait_s=5)
        seen = token_seqs(first)
        assert seen[:100] == list(range(100))
        after = max(s for i, s in enumerate(sorted(set(seen))) if s == i)
        stack.start_service("gateway")
        assert (await wait_healthy(stack))["status"] == "ok"
        async with connect(stack.ws_url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "session_id": sid, "after_seq": after}))
            for start in range(140, 200, 20):
                await push(client, sid, TOKENS[start : start + 20])
            await finish(client, sid)
            second = await follow(ws, until_done=True)
    resumed = token_seqs(second)
    assert resumed == list(range(after + 1, 200)), "the replay starts after after_seq, in order, once each"
    assert second[-1]["type"] == "done"
    assert second[-1]["tokens"] == 200


@pytest.mark.model
async def test_redis_restarted_every_service_reconnects_and_new_sessions_flow(own_redis_stack: Stack) -> None:
    stack = own_redis_stack
    n = 100
    r = await redis_of(stack)
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            before = await outcome(r, stack, await run_script(client, TOKENS[:n]), n)
            assert len(before["audits"]) == n
            resp = await client.post("/generate", json={"prompt": "Hi", "max_tokens": 2, "temperature": 0})
            job = await wait_status(client, resp.json()["session_id"], lambda b: b["status"] in ENDED, 120)
            assert job["status"] == "finished", job  # the generator is in its job loop now

            stack.stop_redis()  # when it comes back it is empty: streams, groups, push sessions, heartbeats
            resp = await client.post("/push/sessions", json={"model": "m"})
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["type"] == "unavailable"
            assert (await client.get("/health")).status_code == 503
            await asyncio.sleep(1.0)  # time has to pass: Redis stays down a while, the services must ride it out
            stack.start_redis()
            await r.aclose()
            r = await redis_of(stack)
            health = await wait_healthy(stack, wait_s=90)
            assert health["status"] == "ok", health
            assert_all_running(stack)

            sid = await start_session(client)
            async with connect(stack.ws_url) as ws:
                await ws.send(json.dumps({"type": "subscribe", "session_id": sid, "after_seq": -1}))
                for start in range(0, n, 20):
                    await push(client, sid, TOKENS[start : start + 20])
                await finish(client, sid)
                seen = await follow(ws, until_done=True)
            resp = await client.post("/generate", json={"prompt": "Hi", "max_tokens": 3, "temperature": 0})
            job = await wait_status(client, resp.json()["session_id"], lambda b: b["status"] in ENDED, 120)
            assert job["status"] == "finished", job
        after = await outcome(r, stack, sid, n)
        assert token_seqs(seen) == list(range(n))
        assert seen[-1]["type"] == "done"
        assert sorted(after["audits"].items()) == [(s, 1) for s in range(n)]
        assert comparable(after["alerts"]) == comparable(before["alerts"])
        assert after["recorded"]["tokens"] == list(range(n))
        assert after["recorded"]["status"] == "finished"
        assert_all_running(stack)
    finally:
        await r.aclose()
