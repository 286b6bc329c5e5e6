"""Jobs: submit publishes the queued lifecycle entry and the job; limits; cancel sets the key."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import JobRequest, SessionEvent
from services.common.settings import CommonSettings
from services.gateway.errors import BadRequestError, NotFoundError
from services.gateway.history import HistoryService
from services.gateway.jobs import JobService
from services.gateway.live import LiveState
from services.gateway.models import GenerateRequest
from services.gateway.settings import GatewaySettings


@pytest.fixture
def jobs(redis: Redis, settings: CommonSettings) -> JobService:
    s = GatewaySettings(**settings.model_dump(), max_tokens_limit=500, max_prompt_chars=20, cancel_ttl_s=60)
    return JobService(Bus(redis, s), s, HistoryService(None, LiveState()))


async def test_submit_publishes_queued_then_job(jobs: JobService, redis: Redis) -> None:
    req = GenerateRequest(prompt="Explain AI", max_tokens=100, temperature=0.2, top_p=0.9, seed=7, stop=["\n"])
    resp = await jobs.submit(req)
    assert resp.status == "queued"
    assert resp.urls.session == f"/sessions/{resp.session_id}"
    ((_, fields),) = await redis.xrange(jobs.bus.key("jobs"))
    job = decode("jobs", fields)
    assert isinstance(job, JobRequest)
    assert (job.session_id, job.seq, job.prompt) == (resp.session_id, 0, "Explain AI")
    assert (job.sampling.max_tokens, job.sampling.temperature, job.sampling.top_p, job.sampling.seed) == (
        100,
        0.2,
        0.9,
        7,
    )
    assert job.sampling.stop == ["\n"]
    ((_, fields),) = await redis.xrange(jobs.bus.key("sessions"))
    queued = decode("sessions", fields)
    assert isinstance(queued, SessionEvent)
    assert (queued.status, queued.seq, queued.prompt) == ("queued", 0, "Explain AI")


async def test_chat_messages_recorded_as_prompt(jobs: JobService, redis: Redis) -> None:
    req = GenerateRequest.model_validate({"messages": [{"role": "user", "content": "Hi"}]})
    await jobs.submit(req)
    ((_, fields),) = await redis.xrange(jobs.bus.key("sessions"))
    assert decode("sessions", fields).prompt == "user: Hi"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "max_tokens": 501}, "max_tokens"),
        ({"prompt": "x" * 21}, "prompt"),
        ({"messages": [{"role": "user", "content": "y" * 21}]}, "messages"),
    ],
)
async def test_limits_name_the_field(jobs: JobService, redis: Redis, body: dict[str, object], param: str) -> None:
    with pytest.raises(BadRequestError) as err:
        await jobs.submit(GenerateRequest.model_validate(body))
    assert err.value.param == param
    assert await redis.xlen(jobs.bus.key("jobs")) == 0


async def test_cancel_sets_the_key_the_generator_checks(jobs: JobService, redis: Redis) -> None:
    sid = (await jobs.submit(GenerateRequest(prompt="x"))).session_id
    assert (await jobs.cancel(sid)).status == "cancelling"
    key = jobs.bus.key(f"cancel:{sid}")
    assert await redis.get(key) == b"1"
    assert 0 < await redis.ttl(key) <= 60
    with pytest.raises(NotFoundError):
        await jobs.cancel("no-such-session")


async def test_cancel_after_the_end_reports_how_it_ended(jobs: JobService, redis: Redis) -> None:
    sid = (await jobs.submit(GenerateRequest(prompt="x"))).session_id
    jobs.history.live.apply({"type": "session", "session_id": sid, "seq": 2, "status": "finished", "tokens": 3})
    assert (await jobs.cancel(sid)).status == "finished"
    assert await redis.exists(jobs.bus.key(f"cancel:{sid}")) == 0


def test_prompt_xor_messages() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GenerateRequest.model_validate({"max_tokens": 3})
    with pytest.raises(ValueError, match="exactly one"):
        GenerateRequest.model_validate({"prompt": "a", "messages": [{"role": "user", "content": "b"}]})
