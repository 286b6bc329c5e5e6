"""The worker's job handling through the real Redis, with a scripted engine (no model): lifecycle,
cancellation, interleaving, failures, two workers sharing the job stream, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.common.bus import Bus
from services.common.settings import CommonSettings
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings
from tests.generator.support import cancel, running, sessions, submit, tokens, wait_end, wait_tokens

ENGINE = "tests.generator.engines:ScriptedEngine"


def make_settings(settings: CommonSettings, **overrides: object) -> GeneratorSettings:
    values = settings.model_dump() | {"engine": ENGINE, "model": "count"} | overrides
    return GeneratorSettings(**values)


@pytest.fixture
def gen_settings(settings: CommonSettings) -> GeneratorSettings:
    return make_settings(settings, engine_options={"step_s": 0.002})


@pytest.fixture
def pool(gen_settings: GeneratorSettings) -> EnginePool:
    return EnginePool(gen_settings)


async def test_lifecycle_started_tokens_finished(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "s1", max_tokens=5)
        end = await wait_end(bus, "s1")
    events = await sessions(bus, "s1")
    assert [(e.seq, e.status) for e in events] == [(1, "started"), (2, "finished")]
    assert events[0].prompt == "Hello"
    assert (end.reason, end.tokens, end.model, end.provider) == ("max_tokens", 5, "scripted-count", "scripted")
    assert end.prompt_tokens == 1  # what the engine's Finished reported ("Hello": one word to the scripted engine)
    toks = await tokens(bus, "s1")
    assert [t.seq for t in toks] == [0, 1, 2, 3, 4]
    assert "".join(t.text for t in toks) == "t0 t1 t2 t3 t4 "
    assert {t.distribution for t in toks} == {"top_k"}
    assert all(t.logits is None and t.logits_dtype is None for t in toks)


async def test_cancel_stops_within_one_token(settings: CommonSettings, bus: Bus) -> None:
    slow = make_settings(settings, engine_options={"step_s": 0.02})
    async with running(slow, bus, EnginePool(slow)):
        await submit(bus, "c1", max_tokens=500)
        await wait_tokens(bus, "c1", 3)
        await cancel(bus, "c1")
        seen_at_cancel = len(await tokens(bus, "c1"))
        end = await wait_end(bus, "c1")
    assert end.status == "cancelled"
    assert end.reason == "cancelled by request"
    published = await tokens(bus, "c1")
    assert end.tokens == len(published)
    assert seen_at_cancel <= len(published) <= seen_at_cancel + 1


async def test_cancelled_before_start_never_runs(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    await submit(bus, "c2", max_tokens=5)
    await cancel(bus, "c2")
    async with running(gen_settings, bus, pool):
        end = await wait_end(bus, "c2")
    assert [(e.seq, e.status) for e in await sessions(bus, "c2")] == [(2, "cancelled")]
    assert end.reason == "cancelled before it started"
    assert await tokens(bus, "c2") == []


async def test_short_job_is_not_held_back_by_a_long_one(settings: CommonSettings, bus: Bus) -> None:
    slow = make_settings(settings, engine_options={"step_s": 0.01}, max_concurrent_jobs=2)
    async with running(slow, bus, EnginePool(slow)):
        await submit(bus, "long", max_tokens=300)
        await wait_tokens(bus, "long", 1)
        await submit(bus, "short", max_tokens=5)
        short_end = await wait_end(bus, "short")
        long_so_far = len(await tokens(bus, "long"))
        await cancel(bus, "long")
        await wait_end(bus, "long")
    assert short_end.status == "finished"
    assert long_so_far < 300  # the short job ended while the long one was still running


async def test_failures_fail_the_job_and_the_worker_goes_on(
    gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool
) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "f1", model="broken")
        await submit(bus, "f2", model="crash", max_tokens=10)
        await submit(bus, "ok", max_tokens=3)
        broken, crash, ok = [await wait_end(bus, s) for s in ("f1", "f2", "ok")]
    assert broken.status == "failed"
    assert "cannot load model 'broken': no such folder" in (broken.reason or "")
    assert crash.status == "failed"
    assert crash.reason == "this engine cannot go on"
    assert crash.tokens == 2
    assert crash.prompt_tokens is None  # no Finished came: the engine never said
    assert (ok.status, ok.tokens) == ("finished", 3)


async def test_job_models_can_be_switched_off(settings: CommonSettings, bus: Bus) -> None:
    only_default = make_settings(settings, job_models=False)
    async with running(only_default, bus, EnginePool(only_default)):
        await submit(bus, "m1", model="other")
        end = await wait_end(bus, "m1")
    assert end.status == "failed"
    assert "UQ_JOB_MODELS=false" in (end.reason or "")


async def test_two_workers_never_run_a_job_twice(settings: CommonSettings, bus: Bus) -> None:
    two = make_settings(settings, engine_options={"step_s": 0.005}, max_concurrent_jobs=2)
    pool = EnginePool(two)
    ids = [f"j{i}" for i in range(8)]
    async with running(two, bus, pool, name="a") as a, running(two, bus, pool, name="b") as b:
        for sid in ids:
            await submit(bus, sid, max_tokens=4)
        ends = [await wait_end(bus, sid) for sid in ids]
    assert [e.status for e in ends] == ["finished"] * 8
    for sid in ids:
        assert [(e.seq, e.status) for e in await sessions(bus, sid)] == [(1, "started"), (2, "finished")]
        assert [t.seq for t in await tokens(bus, sid)] == [0, 1, 2, 3]
    assert a.details["jobs"] + b.details["jobs"] == 8
    assert a.details["jobs"] > 0
    assert b.details["jobs"] > 0


async def test_stopping_lets_running_jobs_finish(gen_settings: GeneratorSettings, bus: Bus, pool: EnginePool) -> None:
    async with running(gen_settings, bus, pool):
        await submit(bus, "g1", max_tokens=20)
        await wait_tokens(bus, "g1", 1)
    end = await wait_end(bus, "g1", timeout_s=1)
    assert (end.status, end.tokens) == ("finished", 20)


async def test_jobs_beyond_the_grace_time_fail_with_a_reason(settings: CommonSettings, bus: Bus) -> None:
    impatient = make_settings(settings, engine_options={"step_s": 0.01}, shutdown_grace_s=0.1)
    async with running(impatient, bus, EnginePool(impatient)):
        await submit(bus, "g2", max_tokens=1000)
        await wait_tokens(bus, "g2", 1)
    end = await wait_end(bus, "g2", timeout_s=1)
    assert end.status == "failed"
    assert "submit it again" in (end.reason or "")
    assert 0 < (end.tokens or 0) < 1000


async def test_jobs_wait_for_a_free_slot(settings: CommonSettings, bus: Bus) -> None:
    one = make_settings(settings, engine_options={"step_s": 0.005}, max_concurrent_jobs=1)
    async with running(one, bus, EnginePool(one)):
        await submit(bus, "q1", max_tokens=20)
        await submit(bus, "q2", max_tokens=20)
        await wait_tokens(bus, "q1", 1)
        await asyncio.sleep(0.05)  # "nothing happens meanwhile": q1 (20 x 5 ms) still holds the only slot
        assert [e.status for e in await sessions(bus, "q2")] == []  # still queued in the stream
        await wait_end(bus, "q2")
    q1 = await tokens(bus, "q1")
    q2 = await tokens(bus, "q2")
    assert q1[-1].ts_ns < q2[0].ts_ns


async def test_running_job_holds_a_renewed_lease_released_at_the_end(settings: CommonSettings, bus: Bus) -> None:
    slow = make_settings(settings, engine_options={"step_s": 0.02}, lease_timeout_s=0.3)
    async with running(slow, bus, EnginePool(slow)):
        await submit(bus, "l1", max_tokens=40)  # ~0.8 s: longer than the lease, so it must be renewed
        await wait_tokens(bus, "l1", 1)
        assert await bus.redis.zscore(bus.session_key("leases", "l1"), "l1") is not None
        end = await wait_end(bus, "l1")
    assert end.status == "finished"  # not swept as dead while it ran
    assert end.tokens == 40
    assert await bus.redis.zscore(bus.session_key("leases", "l1"), "l1") is None


async def test_a_dead_workers_session_is_failed_by_another_worker(settings: CommonSettings, bus: Bus) -> None:
    from services.common.leases import Leases

    # a worker that died mid-job leaves its lease behind, unrenewed
    await Leases(bus).hold("generator-dead", 0.1, "orphan")
    fast = make_settings(settings, engine_options={"step_s": 0.002}, lease_timeout_s=0.3)
    async with running(fast, bus, EnginePool(fast)):
        end = await wait_end(bus, "orphan")
    assert end.status == "failed"
    assert end.reason is not None
    assert "generator-dead stopped responding" in end.reason


async def test_a_job_starts_only_once_its_start_is_committed(gen_settings: GeneratorSettings, bus: Bus) -> None:
    """The job runs from the consumer's after-commit hook: a commit of "started" lost with the connection
    runs nothing; the job stays pending, comes back (reclaimed) and runs exactly once."""
    async with running(gen_settings, bus, EnginePool(gen_settings)) as worker:
        consumer = worker.consumer
        real = consumer._script
        lost: list[bool] = []

        async def commit(*a: object, **kw: object) -> object:
            if not lost:
                lost.append(True)
                raise RedisConnectionError("connection lost")
            return await real(*a, **kw)

        consumer._script = commit  # type: ignore[assignment]
        await submit(bus, "s1", max_tokens=3)
        end = await wait_end(bus, "s1")
    assert lost == [True]
    assert consumer.stats.reclaimed == 1
    assert [(e.seq, e.status) for e in await sessions(bus, "s1")] == [(1, "started"), (2, "finished")]
    assert (end.tokens, [t.seq for t in await tokens(bus, "s1")]) == (3, [0, 1, 2])
