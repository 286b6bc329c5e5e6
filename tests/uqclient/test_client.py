"""The Python client against a real gateway (uvicorn in-process, real Redis)."""

from __future__ import annotations

import asyncio
import struct

import pytest
from redis.asyncio import Redis

from services.common.codec import decode
from services.common.contracts import SessionEvent, TokenEvent
from services.gateway.settings import GatewaySettings
from tests.gateway.conftest import serving
from uqclient import AsyncAuditClient, AuditClient, GatewayError, SimpleToken


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
            with pytest.raises(GatewayError) as err:
                await client.flush()
            assert (err.value.status, err.value.param) == (400, "tokens.0.token_id")
            assert await client.add_token(SimpleToken(text="ok", logprob=-0.1)) == 0
            ended = await client.finish()
            assert ended["tokens"] == 1
            job = await client.generate("Explain AI", max_tokens=5)
            assert (await client.status(job["session_id"]))["status"] == "queued"
        assert [t.text for t in await tokens_on_stream(redis, gw_settings)] == ["ok"]


def test_add_token_before_start_says_what_to_do() -> None:
    with AuditClient() as client, pytest.raises(RuntimeError, match="start_audit"):
        client.add_token(SimpleToken(text="x"))
