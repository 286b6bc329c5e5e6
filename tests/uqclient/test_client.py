"""The Python client against a real gateway (uvicorn in-process, real Redis)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import SessionEvent, TokenEvent
from services.gateway.settings import GatewaySettings
from tests.gateway.conftest import serving
from tests.gateway.events import audit, summary
from tests.waiting import eventually
from uqclient import (
    AsyncAuditClient,
    AuditClient,
    AuditTimeoutError,
    GatewayError,
    SimpleToken,
    TokenRejectedError,
    UQClientError,
)


async def tokens_on_stream(redis: Redis, settings: GatewaySettings) -> list[TokenEvent]:
    out = []
    for _, fields in await redis.xrange(settings.stream("tokens")):
        event = decode("tokens", fields)
        assert isinstance(event, TokenEvent)
        out.append(event)
    return out


async def test_sync_client_pushes_in_batches(gw_settings: GatewaySettings, redis: Redis) -> None:
    async with serving(gw_settings) as (addr, _):

        def run() -> tuple[list[int], dict[str, object]]:
            with AuditClient(f"http://{addr}", batch_size=2) as client:
                client.start_audit("Explain AI", "gpt-4", "OpenAI")
                seqs = [
                    client.add_token(SimpleToken(text="AI", probability=0.9)),
                    client.add_token(
                        {"token": " is", "logprob": -0.3, "top_logprobs": [{"token": " is", "logprob": -0.3}]}
                    ),
                    client.add_token(SimpleToken(text=" x", token_id=1, logits=struct.pack("<3e", 1.0, 2.0, 0.5))),
                ]
                return seqs, client.finish(reason="stop")

        seqs, ended = await asyncio.to_thread(run)
        assert seqs == [0, 1, 2]
        assert (ended["status"], ended["tokens"]) == ("finished", 3)
        tokens = await tokens_on_stream(redis, gw_settings)
        assert [(t.seq, t.text, t.distribution, t.provider) for t in tokens] == [
            (0, "AI", "prob_only", "OpenAI"),
            (1, " is", "top_k", "OpenAI"),
            (2, " x", "full", "OpenAI"),
        ]
        assert tokens[2].vocab_size == 3
        last = decode("sessions", (await redis.xrevrange(gw_settings.stream("sessions"), count=1))[0][1])
        assert isinstance(last, SessionEvent)
        assert (last.status, last.reason, last.tokens) == ("finished", "stop", 3)


async def test_async_client_and_errors(gw_settings: GatewaySettings, redis: Redis) -> None:
    async with serving(gw_settings, auth="on", api_keys="key") as (addr, _):
        async with AsyncAuditClient(f"http://{addr}") as anonymous:
            with pytest.raises(GatewayError) as err:
                await anonymous.start_audit("p", "m")
            assert (err.value.status, err.value.type) == (401, "unauthorized")
        async with AsyncAuditClient(f"http://{addr}", api_key="key") as client:
            await client.start_audit(None, "m", "vllm")
            await client.add_token({"text": "bad", "logits": [1.0, 2.0]})
            with pytest.raises(TokenRejectedError) as err:
                await client.flush()
            assert (err.value.status, err.value.param) == (400, "tokens.0.token_id")
            assert isinstance(err.value, GatewayError)
            assert await client.add_token(SimpleToken(text="ok", logprob=-0.1)) == 0
            ended = await client.finish()
            assert ended["tokens"] == 1
            job = await client.generate("Explain AI", max_tokens=5)
            assert (await client.status(job["session_id"]))["status"] == "queued"
        assert [t.text for t in await tokens_on_stream(redis, gw_settings)] == ["ok"]


def test_add_token_before_start_says_what_to_do() -> None:
    with AuditClient() as client, pytest.raises(RuntimeError, match="start_audit"):
        client.add_token(SimpleToken(text="x"))


async def test_one_bad_token_never_takes_the_good_ones_down(gw_settings: GatewaySettings, redis: Redis) -> None:
    """Two bad tokens (one refused by the gateway's checks, 400; one by validation, 422) among four good
    ones: the four are published in order, the error names both bad ones and says why."""

    async with serving(gw_settings) as (addr, _):

        def run() -> tuple[list[int], TokenRejectedError, int]:
            with AuditClient(f"http://{addr}", batch_size=100) as client:
                client.start_audit("p", "m")
                seqs = [
                    client.add_token(SimpleToken(text="A", logprob=-0.1)),
                    client.add_token(SimpleToken(text="B", logprob=-0.2)),
                    client.add_token({"text": "no id", "logits": [1.0, 2.0]}),
                    client.add_token(SimpleToken(text="C", logprob=-0.3)),
                    client.add_token({"text": "positive", "logprob": 0.5}),
                    client.add_token(SimpleToken(text="D", logprob=-0.4)),
                ]
                with pytest.raises(TokenRejectedError) as err:
                    client.flush()
                assert client.session is not None and client.session.pending == []
                after = client.add_token(SimpleToken(text="E", logprob=-0.5))
                assert client.finish()["tokens"] == 5
                return seqs, err.value, after

        seqs, err, after = await asyncio.to_thread(run)
        assert seqs == [0, 1, 2, 3, 4, 5]
        assert after == 4  # two refused tokens never got a seq
        assert [(r.seq, r.text, r.status, r.type, r.field) for r in err.rejected] == [
            (2, "no id", 400, "bad_request", "token_id"),
            (4, "positive", 422, "invalid_request", "logprob"),
        ]
        assert "token_id" in err.rejected[0].message
        assert err.accepted == 4
        assert "token seq 2 'no id'" in str(err) and "token seq 4 'positive'" in str(err)
        tokens = await tokens_on_stream(redis, gw_settings)
        assert [(t.seq, t.text) for t in tokens] == [(0, "A"), (1, "B"), (2, "C"), (3, "D"), (4, "E")]


async def test_a_batch_the_gateway_does_not_take_stays_queued(gw_settings: GatewaySettings) -> None:
    async with serving(gw_settings) as (addr, _), AsyncAuditClient(f"http://{addr}", batch_size=100) as client:
        session = await client.start_audit("p", "m")
        await client.add_token(SimpleToken(text="A", logprob=-0.1))
        await client.http.post(f"/push/sessions/{session.session_id}/finish")  # ended behind its back

        with pytest.raises(GatewayError) as err:
            await client.flush()

        assert (err.value.status, err.value.type) == (409, "conflict")
        assert [q.body["text"] for q in session.pending] == ["A"]


def audited(client: AsyncAuditClient, session_id: str, tokens: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len((await client.get_session(session_id))["tokens"]) >= tokens

    return check


def ended(client: AsyncAuditClient, session_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool((await client.status(session_id))["status"] == "finished")

    return check


async def test_finish_and_wait_returns_only_once_the_summary_is_written(gw_settings: GatewaySettings, bus: Bus) -> None:
    async with serving(gw_settings) as (addr, _), AsyncAuditClient(f"http://{addr}") as client:
        session = await client.start_audit("p", "m")
        for i in range(2):
            await client.add_token(SimpleToken(text=f"t{i}", logprob=-0.5))
        await client.flush()
        sid = session.session_id
        for seq in range(2):  # what an auditor publishes
            await bus.publish("audits", audit(sid, seq))
        await eventually(audited(client, sid, 2), what="both tokens audited")  # every token audited, no summary yet

        waiting = asyncio.create_task(client.finish(wait=True, wait_s=30))
        await eventually(ended(client, sid), what="the session ended")  # the waiting finish has ended it and is polling
        assert not waiting.done()
        await bus.publish("alerts", summary(sid, 0, 2))  # what the alerter publishes once caught up
        result = await asyncio.wait_for(waiting, 30)

        assert result["summary"]["tokens"] == 2
        assert result["summary"]["final_risk"] == "warning"
        assert [t["text"] for t in result["tokens"]] == ["t0", "t1"]


async def test_finish_and_wait_without_a_summary_times_out_clearly(gw_settings: GatewaySettings, bus: Bus) -> None:
    async with serving(gw_settings) as (addr, _), AsyncAuditClient(f"http://{addr}") as client:
        session = await client.start_audit("p", "m")
        await client.add_token(SimpleToken(text="t0", logprob=-0.5))
        await client.add_token(SimpleToken(text="t1", logprob=-0.5))
        await client.flush()
        await bus.publish("audits", audit(session.session_id, 0))  # one of two audited; no alerter
        await eventually(audited(client, session.session_id, 1), what="the first token audited")

        with pytest.raises(AuditTimeoutError) as err:
            await client.finish(wait=True, wait_s=0.5)

        assert isinstance(err.value, UQClientError)
        assert (err.value.tokens, err.value.audited, err.value.summary) == (2, 1, False)
        assert "1 of 2 tokens audited" in str(err.value) and "no summary" in str(err.value)


def test_the_client_s_terminal_statuses_are_the_contract_s() -> None:
    import uqclient
    from services.common.contracts.events import TERMINAL_STATUSES

    assert set(uqclient.TERMINAL) == TERMINAL_STATUSES
