"""The recorder against the real Redis: entries published on the bus end up in the database once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import AlertEvent, AuditEvent, Event, RiskEvent, SessionEvent, SummaryEvent
from services.common.contracts.history import SessionHistory
from services.common.settings import CommonSettings
from services.recorder.service import STREAMS, Recorder
from services.recorder.settings import RecorderSettings
from services.recorder.store import Store
from tests.recorder.conftest import POSTGRES, expected_history, session_events
from tests.waiting import eventually


def stream_of(event: Event) -> str:
    if isinstance(event, SessionEvent):
        return "sessions"
    if isinstance(event, AuditEvent):
        return "audits"
    assert isinstance(event, AlertEvent | RiskEvent | SummaryEvent)
    return "alerts"


async def publish(bus: Bus, events: list[Event]) -> None:
    await bus.publish_many([(stream_of(e), e) for e in events])


async def pending(redis: Redis, bus: Bus, group: str) -> int:
    total = 0
    for stream in STREAMS:
        info = await redis.xpending(bus.key(stream), group)
        total += int(info["pending"])
    return total


@pytest.fixture
def recorder_settings(settings: CommonSettings, database_url: str) -> RecorderSettings:
    return RecorderSettings(**{**settings.model_dump(), "database_url": database_url, "recorder_batch_size": 16})


@pytest.fixture
async def running(bus: Bus, store: Store, recorder_settings: RecorderSettings) -> AsyncIterator[Recorder]:
    recorder = Recorder(bus, store, recorder_settings)
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    yield recorder
    stop.set()
    await asyncio.wait_for(task, 10)


def equal_to(store: Store, expected: SessionHistory) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await store.get_session(expected.session.session_id) == expected

    return check


async def test_a_full_session_published_on_the_bus_is_recorded_and_reads_back_equal(
    bus: Bus, redis: Redis, store: Store, running: Recorder
) -> None:
    events = session_events("bus-1", n_tokens=100)
    await publish(bus, events)

    await eventually(equal_to(store, expected_history(events)), what="the session recorded", timeout_s=30)

    assert await store.get_session("bus-1") == expected_history(events)
    await eventually(lambda: zero(pending(redis, bus, "recorders")), what="nothing pending", timeout_s=30)
    assert running.totals.tokens == 100
    assert running.totals.alerts == 2


async def test_entries_written_by_a_recorder_that_died_before_acknowledging_are_not_doubled(
    bus: Bus, redis: Redis, store: Store, recorder_settings: RecorderSettings
) -> None:
    events = session_events("crash-1", n_tokens=50)
    await publish(bus, events)
    # A first recorder reads every entry and commits the database transaction, then dies before XACK.
    for stream in STREAMS:
        await bus.consumer(stream, "recorders", _never).ensure_group()
        response = await redis.xreadgroup("recorders", "dead-one", {bus.key(stream): ">"}, count=1000)
        taken = [decode(stream, fields) for _, entries in response for _, fields in entries]
        await store.record(taken)
    assert await pending(redis, bus, "recorders") == len(events)

    # The next recorder reclaims them after claim_idle_ms and records them again: no change.
    recorder = Recorder(bus, store, recorder_settings)
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    try:
        await eventually(lambda: zero(pending(redis, bus, "recorders")), what="nothing pending", timeout_s=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    assert await store.get_session("crash-1") == expected_history(events)
    assert sum(c.stats.reclaimed for c in recorder.consumers) == len(events)
    assert (recorder.totals.tokens, recorder.totals.alerts, recorder.totals.sessions) == (0, 0, 0)


async def test_a_database_outage_holds_the_batches_and_loses_nothing(
    bus: Bus, redis: Redis, settings: CommonSettings
) -> None:
    """The database does not exist yet when entries arrive; once it does, everything is recorded."""
    name = f"uqtest_late_{uuid.uuid4().hex[:10]}"
    url = make_url(POSTGRES).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    store = Store.from_url(url)
    recorder = Recorder(bus, store, RecorderSettings(**{**settings.model_dump(), "database_url": url}))
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    events = session_events("outage-1", n_tokens=30)
    try:
        await publish(bus, events)

        async def held() -> bool:  # read, failed to write, kept pending (not acknowledged, not dead-lettered)
            return recorder.details()["database_ok"] is False and await pending(redis, bus, "recorders") == len(events)

        await eventually(held, what="every entry read and held while the database is missing", timeout_s=30)
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        await eventually(equal_to(store, expected_history(events)), what="the session recorded", timeout_s=60)
        await eventually(lambda: zero(pending(redis, bus, "recorders")), what="nothing pending", timeout_s=30)
        assert recorder.details()["database_ok"] is True
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await store.close()
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert await redis.xlen(bus.key("dead")) == 0


async def zero(value: Awaitable[int]) -> bool:
    return await value == 0


async def _never(_: object) -> list[object]:
    raise AssertionError("not called")


async def test_a_malformed_entry_is_dead_lettered_and_the_rest_recorded(
    bus: Bus, redis: Redis, store: Store, running: Recorder
) -> None:
    events = session_events("good-1", n_tokens=10)
    await redis.xadd(bus.key("audits"), {b"data": b'{"type": "audit", "seq": "not a number"}'})
    await publish(bus, events)

    await eventually(equal_to(store, expected_history(events)), what="the session recorded", timeout_s=30)

    async def dead_letters() -> list[object]:  # written after the batch's good entries are recorded
        return await redis.xrange(bus.key("dead"))

    dead = await eventually(dead_letters, what="the dead letter", timeout_s=30)
    assert len(dead) == 1
    assert dead[0][1][b"stream"] == bus.key("audits").encode()
    assert b"invalid audits entry" in dead[0][1][b"reason"]


async def test_the_recorder_applies_the_retention_periodically(
    bus: Bus, store: Store, recorder_settings: RecorderSettings
) -> None:
    now = time.time_ns()
    await store.record(session_events("old", n_tokens=2, t0=now - 3 * 86_400 * 10**9))
    await store.record(session_events("new", n_tokens=2, t0=now))
    settings = recorder_settings.model_copy(update={"retention_days": 1.0, "retention_interval_s": 0.1})
    recorder = Recorder(bus, store, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))

    async def old_gone() -> bool:
        return await store.get_session("old") is None

    try:
        await eventually(old_gone, what="the old session deleted by the retention", timeout_s=30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [r.session_id for r in (await store.list_sessions())[0]] == ["new"]
    assert recorder.last_retention is not None
