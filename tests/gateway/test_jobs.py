"""Jobs: submit publishes the queued lifecycle entry and the job; limits; served models; cancel sets the key."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import JobRequest, SessionEvent
from services.common.health import Heartbeat
from services.common.model_policy import ModelPolicy
from services.common.settings import CommonSettings
from services.common.validation import summarise
from services.gateway.errors import BadRequestError, NotFoundError
from services.gateway.history import HistoryService
from services.gateway.jobs import JobService
from services.gateway.live import LiveState
from services.gateway.models import GenerateRequest, generate_request_model, request_model
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
    assert job.verify == 0
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
    ("body", "param", "says"),
    [
        ({"prompt": "x", "max_tokens": 501}, "max_tokens", "less than or equal to 500"),
        ({"prompt": "x" * 21}, "prompt", "at most 20 characters"),
        ({"messages": [{"role": "user", "content": "y" * 21}]}, "messages", "at most 20 (setting UQ_MAX_PROMPT_CHARS)"),
    ],
)
def test_limits_are_the_settings_and_name_the_field(
    jobs: JobService, body: dict[str, object], param: str, says: str
) -> None:
    with pytest.raises(ValidationError) as err:
        request_model(jobs.settings).model_validate(body)
    problem = summarise(err.value.errors(), root=body)
    assert (problem.param, says in problem.message) == (param, True), problem


def test_limits_at_the_bound_are_accepted(jobs: JobService) -> None:
    model = request_model(jobs.settings)
    assert model.model_validate({"prompt": "x" * 20, "max_tokens": 500}).max_tokens == 500
    assert model.model_validate({"messages": [{"role": "user", "content": "y" * 20}]}).messages is not None
    assert model.model_validate({"prompt": "x"}).max_tokens == 256  # the default, within the limit


def test_default_max_tokens_never_exceeds_a_lower_limit() -> None:
    model = generate_request_model(100, 1_000)
    assert model.model_validate({"prompt": "x"}).max_tokens == 100
    assert model.model_json_schema()["properties"]["max_tokens"]["maximum"] == 100


async def beat(redis: Redis, settings: GatewaySettings, instance: str, policy: ModelPolicy | None) -> None:
    """A generator's heartbeat as services/generator/__main__.py writes it."""
    details = {"model": policy.default if policy else "m"} | ({"model_policy": policy.to_json()} if policy else {})
    hb = Heartbeat(redis, settings, "generator", instance, details=lambda: details)
    await hb.beat()


OFFLINE = ModelPolicy(default="embedded", aliases=frozenset({"SmolLM2-135M-Instruct"}), hub="offline")


@pytest.mark.parametrize(
    ("policy", "model", "says"),
    [
        (OFFLINE, "mistralai/Mistral-7B-Instruct-v0.3", "hub is unreachable"),
        (OFFLINE, "not a model name!", "neither a local folder"),
        (ModelPolicy(default="embedded", job_models=False), "other", "UQ_JOB_MODELS=false"),
    ],
)
async def test_a_model_no_generator_serves_is_refused_at_submit(
    jobs: JobService, redis: Redis, policy: ModelPolicy, model: str, says: str
) -> None:
    await beat(redis, jobs.settings, "g1", policy)
    with pytest.raises(BadRequestError) as err:
        await jobs.submit(GenerateRequest(prompt="x", model=model))
    assert (err.value.param, says in err.value.message) == ("model", True), err.value.message
    assert await redis.xlen(jobs.bus.key("jobs")) == 0


@pytest.mark.parametrize(
    "model", [None, "embedded", "SmolLM2-135M-Instruct", "/models/mistral-7b", "./here", "~/m", "cached/model"]
)
async def test_served_models_are_queued(jobs: JobService, redis: Redis, model: str | None) -> None:
    await beat(redis, jobs.settings, "g1", replace(OFFLINE, cached=frozenset({"cached/model"})))
    await jobs.submit(GenerateRequest(prompt="x", model=model))
    ((_, fields),) = await redis.xrange(jobs.bus.key("jobs"))
    assert decode("jobs", fields).model == model  # type: ignore[union-attr]


async def test_every_live_generator_must_serve_the_model(jobs: JobService, redis: Redis) -> None:
    online = ModelPolicy(default="embedded", hub="online")
    await beat(redis, jobs.settings, "g-online", online)
    await beat(redis, jobs.settings, "g-offline", OFFLINE)
    with pytest.raises(BadRequestError, match="g-offline"):
        await jobs.submit(GenerateRequest(prompt="x", model="org/name"))


async def test_without_a_generator_policy_jobs_are_queued(jobs: JobService, redis: Redis) -> None:
    await beat(redis, jobs.settings, "old-generator", None)  # a heartbeat without a policy
    await jobs.submit(GenerateRequest(prompt="x", model="org/name"))
    assert await redis.xlen(jobs.bus.key("jobs")) == 1


async def test_cancel_sets_the_key_the_generator_checks(jobs: JobService, redis: Redis) -> None:
    sid = (await jobs.submit(GenerateRequest(prompt="x"))).session_id
    assert (await jobs.cancel(sid)).status == "cancelling"
    key = jobs.bus.cancel_key(sid)
    assert await redis.get(key) == b"1"
    assert 0 < await redis.ttl(key) <= 60
    with pytest.raises(NotFoundError):
        await jobs.cancel("no-such-session")


async def test_cancel_after_the_end_reports_how_it_ended(jobs: JobService, redis: Redis) -> None:
    sid = (await jobs.submit(GenerateRequest(prompt="x"))).session_id
    jobs.history.live.apply({"type": "session", "session_id": sid, "seq": 2, "status": "finished", "tokens": 3})
    assert (await jobs.cancel(sid)).status == "finished"
    assert await redis.exists(jobs.bus.cancel_key(sid)) == 0


def test_prompt_xor_messages() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GenerateRequest.model_validate({"max_tokens": 3})
    with pytest.raises(ValueError, match="at least 1 character"):
        GenerateRequest.model_validate({"prompt": ""})
    with pytest.raises(ValueError, match="only whitespace"):
        GenerateRequest.model_validate({"messages": [{"role": "user", "content": " \n\t"}]})
    with pytest.raises(ValueError, match="exactly one"):
        GenerateRequest.model_validate({"prompt": "a", "messages": [{"role": "user", "content": "b"}]})


async def test_a_key_that_is_no_heartbeat_breaks_nothing(jobs: JobService, redis: Redis) -> None:
    await beat(redis, jobs.settings, "g1", OFFLINE)
    for name, junk in (("a", b"not json"), ("b", b"[1, 2]"), ("c", b'{"ts_ns": "soon"}'), ("d", b'{"ts_ns": 1}')):
        await redis.set(jobs.settings.stream(f"heartbeat:generator:{name}"), junk)
    with pytest.raises(BadRequestError, match="g1"):  # the real heartbeat still counts
        await jobs.submit(GenerateRequest(prompt="x", model="org/name"))
    await jobs.submit(GenerateRequest(prompt="x"))
    assert await redis.xlen(jobs.bus.key("jobs")) == 1


async def test_verification_samples_are_passed_on_and_bounded(jobs: JobService, redis: Redis) -> None:
    await jobs.submit(GenerateRequest(prompt="Explain AI", verify=5))
    ((_, fields),) = await redis.xrange(jobs.bus.key("jobs"))
    assert decode("jobs", fields).verify == 5  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="verify"):
        GenerateRequest(prompt="Explain AI", verify=21)
