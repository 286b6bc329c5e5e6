"""The bus against the real Redis: sharing, reclaim, exactly-once outputs, dead letters, retention."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Sequence

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.common.backoff import Backoff
from services.common.bus import Bus, Committed, Consumer, DeadLetter, Delivery, Outcome, StateWrite
from services.common.codec import DATA, decode
from services.common.contracts import AuditEvent, Metrics, TokenEvent
from services.common.settings import CommonSettings
from tests.common.events import token
from tests.waiting import eventually

GROUP = "testers"


def audit_of(event: TokenEvent) -> AuditEvent:
    return AuditEvent(
        session_id=event.session_id,
        seq=event.seq,
        text=event.text,
        distribution=event.distribution,
        metrics=Metrics(prob=0.5, exact=False),
        model=event.model,
        token_ts_ns=event.ts_ns,
    )


class Recorder:
    """A handler that turns each token into an audit and remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for d in batch:
            assert isinstance(d.event, TokenEvent)
            self.seen.append((d.event.session_id, d.event.seq))
            outcomes.append([("audits", audit_of(d.event))])
        return outcomes


async def audits(bus: Bus) -> list[AuditEvent]:
    entries = await bus.redis.xrange(bus.key("audits"))
    return [decode("audits", fields) for _, fields in entries]  # type: ignore[misc]


async def drain(*consumers: object, idle_rounds: int = 3) -> None:
    idle = 0
    while idle < idle_rounds:
        taken = 0
        for c in consumers:
            taken += await c.step(block_ms=50)  # type: ignore[attr-defined]
        idle = idle + 1 if taken == 0 else 0


async def test_publish_consume_commit(bus: Bus) -> None:
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1")
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(10)])
    await drain(consumer)
    assert handler.seen == [("s1", i) for i in range(10)]
    assert [a.seq for a in await audits(bus)] == list(range(10))
    pending = await bus.redis.xpending(bus.key("tokens"), GROUP)
    assert pending["pending"] == 0
    assert consumer.stats.processed == 10


async def test_two_consumers_share_the_work_without_overlap(bus: Bus, settings: CommonSettings) -> None:
    h1, h2 = Recorder(), Recorder()
    c1, c2 = (
        bus.consumer("tokens", GROUP, h1, name="c1", batch_size=7),
        bus.consumer("tokens", GROUP, h2, name="c2", batch_size=7),
    )
    await c1.ensure_group()
    await bus.publish_many([("tokens", token(f"s{i % 5}", i // 5)) for i in range(200)])
    await drain(c1, c2)
    assert h1.seen and h2.seen, "both consumers got work"
    assert not set(h1.seen) & set(h2.seen)
    assert len(h1.seen) + len(h2.seen) == 200
    produced = [(a.session_id, a.seq) for a in await audits(bus)]
    assert sorted(produced) == sorted(h1.seen + h2.seen)


async def test_dead_consumer_entries_are_reclaimed_and_output_once(bus: Bus) -> None:
    handler = Recorder()
    survivor = bus.consumer("tokens", GROUP, handler, name="survivor")
    await survivor.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(5)])
    # "victim" reads the entries and dies before acknowledging them
    taken = await bus.redis.xreadgroup(GROUP, "victim", {bus.key("tokens"): ">"}, count=100)
    assert len(taken[0][1]) == 5
    assert await survivor.step(block_ms=10) == 0  # nothing new, nothing idle long enough yet
    # time has to pass: XAUTOCLAIM takes only entries idle for longer than claim_idle_ms
    await asyncio.sleep(bus.settings.claim_idle_ms / 1000 + 0.1)
    survivor._next_claim = 0  # claim now rather than at the next periodic check
    await drain(survivor)
    assert survivor.stats.reclaimed == 5
    assert sorted(a.seq for a in await audits(bus)) == [0, 1, 2, 3, 4]
    assert (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"] == 0


async def test_redelivered_entry_yields_no_second_output(bus: Bus) -> None:
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1")
    await consumer.ensure_group()
    first = token("s1", 0)
    await bus.publish("tokens", first)
    await drain(consumer)
    await bus.publish("tokens", first)  # the same (session, seq) again, as after a producer retry
    await drain(consumer)
    assert len(await audits(bus)) == 1
    assert consumer.stats.duplicates == 1
    assert handler.seen == [("s1", 0)]


async def test_commit_is_atomic_under_a_race(bus: Bus) -> None:
    """Two consumers handed the same entry (one reclaimed it from the other while the first was still
    working) both pass the duplicate pre-check; the commit script lets only one output through."""
    c1, c2 = bus.consumer("tokens", GROUP, Recorder(), name="c1"), bus.consumer("tokens", GROUP, Recorder(), name="c2")
    await c1.ensure_group()
    await bus.publish("tokens", token("s1", 0))
    entries = await bus.redis.xreadgroup(GROUP, "c1", {bus.key("tokens"): ">"}, count=10)
    eid, fields = entries[0][1][0]
    event = decode("tokens", fields)
    assert isinstance(event, TokenEvent)
    # c1 has handled it but not committed yet; c2 takes it over and commits first
    await c2._process([(eid, dict(fields))])
    await c2.flush()
    await c1._commit([(eid, dict(fields), event, [("audits", audit_of(event))])])
    await c1.flush()
    assert c1.stats.duplicates == 1
    assert len(await audits(bus)) == 1


async def test_malformed_entry_goes_to_dead_letter_and_processing_continues(bus: Bus) -> None:
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1")
    await consumer.ensure_group()
    await bus.publish("tokens", token("s1", 0))
    await bus.redis.xadd(bus.key("tokens"), {"data": b'{"garbage": true}'})
    await bus.redis.xadd(bus.key("tokens"), {"oops": b"1"})
    await bus.publish("tokens", token("s1", 1))
    await drain(consumer)
    assert [a.seq for a in await audits(bus)] == [0, 1]
    dead = await bus.redis.xrange(bus.key("dead"))
    assert len(dead) == 2
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert "invalid tokens entry" in reasons[0] and "session_id: Field required" in reasons[0]
    assert "no 'data' field" in reasons[1]
    assert dead[0][1][b"original:data"] == b'{"garbage": true}'
    assert dead[0][1][b"stream"] == bus.key("tokens").encode()
    assert (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"] == 0


async def test_handler_failing_repeatedly_dead_letters_only_that_entry(bus: Bus) -> None:
    calls: dict[int, int] = {}

    async def flaky(batch: Sequence[Delivery]) -> list[Outcome]:
        out: list[Outcome] = []
        for d in batch:
            calls[d.event.seq] = calls.get(d.event.seq, 0) + 1
            if d.event.seq == 2:
                raise RuntimeError("poison")
            assert isinstance(d.event, TokenEvent)
            out.append([("audits", audit_of(d.event))])
        return out

    consumer = bus.consumer("tokens", GROUP, flaky, name="c1")
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(5)])
    await drain(consumer)
    assert sorted(a.seq for a in await audits(bus)) == [0, 1, 3, 4]
    dead = await bus.redis.xrange(bus.key("dead"))
    assert len(dead) == 1
    assert b"handler failed 5 times" in dead[0][1][b"reason"] and b"poison" in dead[0][1][b"reason"]
    assert calls[2] == bus.settings.max_deliveries + 1  # once in the batch, then alone each time
    assert (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"] == 0


async def test_handler_dead_letter_verdict(bus: Bus) -> None:
    async def refuse(batch: Sequence[Delivery]) -> list[Outcome]:
        return [DeadLetter("NaN in logits at index 3") for _ in batch]

    consumer = bus.consumer("tokens", GROUP, refuse, name="c1")
    await consumer.ensure_group()
    await bus.publish("tokens", token("s1", 0))
    await drain(consumer)
    dead = await bus.redis.xrange(bus.key("dead"))
    assert dead[0][1][b"reason"] == b"NaN in logits at index 3"
    assert b"original:logits" in dead[0][1]


async def test_state_write_commits_with_outputs(bus: Bus) -> None:
    async def stateful(batch: Sequence[Delivery]) -> list[Outcome]:
        return [[StateWrite(bus.key(f"state:{d.event.session_id}"), str(d.event.seq).encode(), 60_000)] for d in batch]

    consumer = bus.consumer("tokens", GROUP, stateful, name="c1")
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(3)])
    await drain(consumer)
    assert await bus.redis.get(bus.key("state:s1")) == b"2"
    assert 0 < await bus.redis.pttl(bus.key("state:s1")) <= 60_000


async def test_retention_is_bounded(redis: Redis, settings: CommonSettings) -> None:
    bus = Bus(redis, settings.model_copy(update={"maxlen_audits": 100}))
    event = AuditEvent(
        session_id="s", seq=0, text="x", distribution="none", metrics=Metrics(exact=False), model="m", token_ts_ns=0
    )
    for start in range(0, 3000, 500):
        await bus.publish_many([("audits", event.model_copy(update={"seq": i})) for i in range(start, start + 500)])
    length = await redis.xlen(bus.key("audits"))
    assert 100 <= length <= 250  # MAXLEN ~ trims whole macro-nodes
    last = await redis.xrevrange(bus.key("audits"), count=1)
    assert decode("audits", last[0][1]).seq == 2999


async def test_run_stops_cleanly_on_stop_event(bus: Bus) -> None:
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1")
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await bus.publish_many([("tokens", token("s1", i)) for i in range(3)])
    await eventually(lambda: len(handler.seen) == 3, what="the three entries handled")
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert handler.seen == [("s1", 0), ("s1", 1), ("s1", 2)]
    # run pipelines its commits; the last one is finished before run returns
    assert [a.seq for a in await audits(bus)] == [0, 1, 2]
    assert (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"] == 0


async def test_pipelined_commits_keep_their_order(bus: Bus, settings: CommonSettings) -> None:
    """run() reads and handles the next batch while the last commit runs; outputs stay in order."""
    consumer = bus.consumer("tokens", GROUP, Recorder(), name="c1", batch_size=3)
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(60)])
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await eventually(lambda: consumer.stats.processed == 60, what="all 60 entries processed")
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert [a.seq for a in await audits(bus)] == list(range(60))
    assert consumer.stats.batches == 20


async def run_until(consumer: Consumer, done: Callable[[], bool], what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await eventually(done, what=what)
    stop.set()
    await asyncio.wait_for(task, timeout=2)


async def test_stop_finishes_the_batch_read_ahead(bus: Bus, settings: CommonSettings) -> None:
    """run() reads the next batch while handling a full one; stopping then handles that batch too,
    rather than leaving it pending on a consumer that is going away."""
    stop = asyncio.Event()
    seen: list[int] = []

    async def slow(batch: Sequence[Delivery]) -> list[Outcome]:
        seen.extend(d.event.seq for d in batch)
        stop.set()
        await asyncio.sleep(0.1)  # a deliberately slow handler: the read-ahead lands meanwhile
        return [[("audits", audit_of(d.event))] for d in batch if isinstance(d.event, TokenEvent)]

    consumer = bus.consumer("tokens", GROUP, slow, name="c1", batch_size=3)
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(9)])
    await asyncio.wait_for(consumer.run(stop), timeout=5)
    assert seen == [0, 1, 2, 3, 4, 5]
    assert [a.seq for a in await audits(bus)] == [0, 1, 2, 3, 4, 5]
    group = (await bus.redis.xinfo_groups(bus.key("tokens")))[0]
    assert (group["pending"], group["lag"]) == (0, 3)  # the last three were never read


async def test_read_ahead_never_reads_own_pending_twice(bus: Bus, settings: CommonSettings) -> None:
    """A restarted consumer first reads what it held before (``0``), then new entries (``>``): read
    ahead only ever takes new ones, so nothing is handled twice."""
    await bus.redis.xgroup_create(bus.key("tokens"), GROUP, id="0", mkstream=True)
    await bus.publish_many([("tokens", token("s1", i)) for i in range(6)])
    await bus.redis.xreadgroup(GROUP, "stable", {bus.key("tokens"): ">"}, count=6)  # then "crashes"
    await bus.publish_many([("tokens", token("s1", i)) for i in range(6, 12)])
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="stable", batch_size=3)
    await run_until(consumer, lambda: consumer.stats.processed >= 12, "12 entries processed")
    assert handler.seen == [("s1", i) for i in range(12)]
    assert consumer.stats.duplicates == 0


async def test_without_precheck_a_repeat_is_handled_but_output_once(bus: Bus) -> None:
    """precheck=False (the stateless auditor): no lookup before the handler; the commit drops the copy."""
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1", precheck=False)
    await consumer.ensure_group()
    await bus.publish("tokens", token("s1", 0))
    await drain(consumer)
    await bus.publish_many([("tokens", token("s1", 0)), ("tokens", token("s1", 1))])
    await drain(consumer)
    assert handler.seen == [("s1", 0), ("s1", 0), ("s1", 1)]
    assert [a.seq for a in await audits(bus)] == [0, 1]
    assert consumer.stats.duplicates == 1


async def test_consumer_reads_own_pending_after_restart(bus: Bus) -> None:
    """A consumer restarted under the same name (UQ_INSTANCE) first finishes what it held."""
    await bus.redis.xgroup_create(bus.key("tokens"), GROUP, id="0", mkstream=True)
    await bus.publish_many([("tokens", token("s1", i)) for i in range(3)])
    await bus.redis.xreadgroup(GROUP, "stable", {bus.key("tokens"): ">"}, count=10)  # then "crashes"
    handler = Recorder()
    restarted = bus.consumer("tokens", GROUP, handler, name="stable")
    await drain(restarted)
    assert handler.seen == [("s1", 0), ("s1", 1), ("s1", 2)]


@pytest.mark.parametrize("size", [1, 50])
async def test_bounded_reads(bus: Bus, settings: CommonSettings, size: int) -> None:
    batches: list[int] = []

    async def count(batch: Sequence[Delivery]) -> list[Outcome]:
        batches.append(len(batch))
        return [[] for _ in batch]

    consumer = bus.consumer("tokens", GROUP, count, name="c1", batch_size=size)
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(120)])
    await drain(consumer)
    assert max(batches) == size and sum(batches) == 120
    assert (await bus.redis.xinfo_groups(bus.key("tokens")))[0]["lag"] == 0


def test_dead_letter_keeps_data_field_name() -> None:
    assert DATA == b"data"


async def test_a_batch_without_outputs_or_dedupe_is_acknowledged(bus: Bus) -> None:
    """The plain-XACK commit (no outputs, no dedupe marks, no dead letters): all acknowledged, nothing written."""
    seen: list[int] = []

    async def record(deliveries: Sequence[Delivery]) -> list[Outcome]:
        seen.extend(d.event.seq for d in deliveries)
        return [() for _ in deliveries]

    consumer = bus.consumer("tokens", GROUP, record, name="c1", dedupe=False)
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(10)])

    await drain(consumer)

    assert seen == list(range(10))
    assert (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"] == 0
    assert consumer.stats.processed == 10
    assert await bus.redis.exists(bus.key("audits"), bus.key("dead")) == 0
    assert [k async for k in bus.redis.scan_iter(match=bus.key("seen:*"))] == []


async def has_group(bus: Bus, stream: str = "tokens", group: str = GROUP) -> bool:
    if not await bus.redis.exists(bus.key(stream)):
        return False
    return any(g["name"] == group.encode() for g in await bus.redis.xinfo_groups(bus.key(stream)))


# --- the consumer loop: group re-creation, backoff, batch size, after-commit hook -------------------
async def test_step_creates_a_vanished_group_again(bus: Bus) -> None:
    """NOGROUP (Redis back empty, a flush, XGROUP DESTROY): the step that meets it creates the group
    again and takes nothing; the next one reads on (from ``start_id``, deduped)."""
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1")
    await consumer.ensure_group()
    await bus.publish("tokens", token("s1", 0))
    await drain(consumer)
    assert await bus.redis.xgroup_destroy(bus.key("tokens"), GROUP) == 1
    assert await consumer.step(block_ms=10) == 0
    assert await has_group(bus)
    await bus.publish("tokens", token("s1", 1))
    await drain(consumer)
    assert handler.seen == [("s1", 0), ("s1", 1)]
    assert [a.seq for a in await audits(bus)] == [0, 1]


async def test_step_creates_the_stream_of_a_flushed_redis_again(bus: Bus) -> None:
    consumer = bus.consumer("tokens", GROUP, Recorder(), name="c1")
    await consumer.ensure_group()
    await bus.redis.delete(bus.key("tokens"))  # the stream and its groups gone, as after FLUSHALL
    assert await consumer.step(block_ms=10) == 0
    assert await has_group(bus)


async def test_run_creates_a_vanished_group_again_and_goes_on(bus: Bus) -> None:
    """NOGROUP without a broken connection: ``run`` creates the group again instead of ending."""
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1")
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await bus.publish("tokens", token("s1", 0))
    await eventually(lambda: bool(handler.seen), what="the first entry")
    assert await bus.redis.xgroup_destroy(bus.key("tokens"), GROUP) == 1
    await eventually(lambda: has_group(bus), what="the group created again")
    assert not task.done(), task.exception()
    await bus.publish("tokens", token("s1", 1))
    await eventually(lambda: len(handler.seen) == 2, what="the entry after")
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert handler.seen == [("s1", 0), ("s1", 1)]  # s1/0 is read again but deduped: one output each
    assert [a.seq for a in await audits(bus)] == [0, 1]


async def test_run_backs_off_through_a_lost_connection(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed turn waits the next delay of the backoff (0.1 s, doubling); a turn that works resets it."""
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1")
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(3)])
    script = ["fail", "fail", "fail", "read", "fail"]  # then reads for good
    real_take_new = consumer._take_new

    async def take_new(block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        if script and script.pop(0) == "fail":
            raise RedisConnectionError("connection lost")
        return await real_take_new(block_ms)

    consumer._take_new = take_new  # type: ignore[method-assign]
    waited: list[float] = []
    real_sleep = Backoff.sleep

    async def sleep(self: Backoff, stop: asyncio.Event | None = None) -> float:
        waited.append(round(self.delay, 6))
        return await real_sleep(self, stop)

    monkeypatch.setattr(Backoff, "sleep", sleep)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await eventually(lambda: not script and len(handler.seen) == 3, what="the entries after the outage")
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert waited == [0.1, 0.2, 0.4, 0.1]
    assert handler.seen == [("s1", i) for i in range(3)]
    assert (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"] == 0


def test_batch_size_defaults_to_the_settings(bus: Bus) -> None:
    assert bus.consumer("tokens", GROUP, Recorder()).batch_size == bus.settings.batch_size
    assert bus.consumer("tokens", GROUP, Recorder(), batch_size=7).batch_size == 7


async def test_after_commit_gets_what_was_committed(bus: Bus) -> None:
    """The hook sees each handled entry with its outputs, once committed; not a dead letter, not a duplicate."""
    committed: list[tuple[int, list[object]]] = []

    async def handler(batch: Sequence[Delivery]) -> list[Outcome]:
        return [DeadLetter("no") if d.event.seq == 1 else [("audits", audit_of(d.event))] for d in batch]  # type: ignore[arg-type]

    def after(batch: Sequence[Committed]) -> None:
        committed.extend((d.event.seq, list(outputs)) for d, outputs in batch)

    consumer = bus.consumer("tokens", GROUP, handler, name="c1", after_commit=after)
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(3)])
    await drain(consumer)
    await bus.publish("tokens", token("s1", 0))  # a repeat: dropped before the handler
    await drain(consumer)
    assert [seq for seq, _ in committed] == [0, 2]
    assert [[(stream, e.seq) for stream, e in outputs] for _, outputs in committed] == [
        [("audits", 0)],
        [("audits", 2)],
    ]  # type: ignore[misc]
    assert [a.seq for a in await audits(bus)] == [0, 2]
    assert await bus.redis.xlen(bus.key("dead")) == 1


async def test_after_commit_waits_for_a_commit_that_succeeds(bus: Bus) -> None:
    """A lost commit calls no hook; its entries stay pending, come back, and the hook runs once then."""
    committed: list[int] = []
    consumer = bus.consumer(
        "tokens", GROUP, Recorder(), name="c1", after_commit=lambda b: committed.extend(d.event.seq for d, _ in b)
    )
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(3)])
    real = consumer._script

    async def lost(*a: object, **kw: object) -> object:
        consumer._script = real
        raise RedisConnectionError("connection lost")

    consumer._script = lost  # type: ignore[assignment]
    with pytest.raises(RedisConnectionError):
        await consumer.step(block_ms=10)
    assert committed == []
    assert (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"] == 3

    async def reclaimed() -> bool:
        await consumer.step(block_ms=10)
        return len(committed) == 3

    await eventually(reclaimed, what="the reclaimed entries committed")
    assert committed == [0, 1, 2]
    assert [a.seq for a in await audits(bus)] == [0, 1, 2]


async def test_run_with_a_cycle_of_its_own(bus: Bus) -> None:
    """``cycle`` replaces the turn (here: a gate before each unpipelined step) under the same retries."""
    handler = Recorder()
    consumer = bus.consumer("tokens", GROUP, handler, name="c1", batch_size=2)
    await consumer.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(6)])
    open_ = asyncio.Event()
    turns = 0

    async def turn() -> None:
        nonlocal turns
        turns += 1
        if turns == 2:
            raise RedisConnectionError("connection lost")  # retried like any turn
        await open_.wait()
        await consumer.step(block_ms=10)

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop, cycle=turn))
    await eventually(lambda: turns == 1, what="the first turn")
    assert handler.seen == []  # the gate holds the read
    open_.set()
    await eventually(lambda: len(handler.seen) == 6, what="every entry")
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert consumer._in_flight is None  # step() waited for each commit
    assert [a.seq for a in await audits(bus)] == list(range(6))


# --- pipelined commits and read-ahead under failure (found in review) ----------------------------
async def test_read_ahead_gives_way_to_a_due_reclaim(bus: Bus, settings: CommonSettings) -> None:
    """A backlog keeps every '>' batch full; a read-ahead must still not keep XAUTOCLAIM (or the retry
    list) from running once it is due, or a dead consumer's entry waits as long as the backlog lasts."""
    small = Bus(bus.redis, settings.model_copy(update={"batch_size": 3, "claim_idle_ms": 100}))
    key = bus.key("tokens")
    await bus.redis.xgroup_create(key, GROUP, id="0", mkstream=True)
    await bus.publish("tokens", token("dead", 0))
    await bus.redis.xreadgroup(GROUP, "dead", {key: ">"}, count=1)  # a consumer that then dies
    await bus.publish_many([("tokens", token("s1", i)) for i in range(300)])
    handler = Recorder()
    c = small.consumer("tokens", GROUP, handler, name="c1", precheck=False)
    await c.step(wait=False)  # reclaim attempted now (too early: idle < 100 ms); read-ahead starts
    await asyncio.sleep(0.7)  # time has to pass: past claim_idle_ms and past _next_claim (a clock, not an event)
    for _ in range(30):  # 90 more entries, backlog never empties
        await c.step(wait=False)
    await c.flush()
    if c._ahead is not None:
        c._ahead.cancel()
    assert c.stats.processed >= 90
    assert ("dead", 0) in handler.seen, f"dead consumer's entry never reclaimed; reclaimed={c.stats.reclaimed}"


async def test_a_failed_commit_does_not_take_the_next_batch_with_it(bus: Bus, settings: CommonSettings) -> None:
    """A commit lost to a (transient) connection error surfaces at the next commit, which is still sent:
    only the failed batch stays pending (to be reclaimed)."""
    c = bus.consumer("tokens", GROUP, Recorder(), name="c1", precheck=False, batch_size=3)
    await c.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(6)])
    real = c._script
    calls = 0

    async def flaky(*a, **kw):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RedisConnectionError("connection lost")
        return await real(*a, **kw)

    c._script = flaky  # type: ignore[assignment]
    await c.step(wait=False)  # batch 1: commit fails in the background
    await c.step(wait=False)  # batch 2: its commit goes out although batch 1's failed (logged)
    await c.flush()
    if c._ahead is not None:
        await c._ahead
    pending = (await bus.redis.xpending(bus.key("tokens"), GROUP))["pending"]
    assert pending == 3, f"only batch 1 should be pending, got {pending}"


async def stopping_with_a_failing_read_ahead(bus: Bus) -> tuple[Consumer, asyncio.Event]:
    """A consumer whose first batch asks it to stop, and whose read-ahead loses the connection."""
    stop = asyncio.Event()

    async def handler(batch: Sequence[Delivery]) -> list[Outcome]:
        stop.set()
        return [() for _ in batch]

    c = bus.consumer("tokens", GROUP, handler, name="c1", precheck=False, batch_size=3)
    await c.ensure_group()
    await bus.publish_many([("tokens", token("s1", i)) for i in range(6)])
    real_take_new = c._take_new

    async def take_new(block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        if block_ms == 0:  # the read-ahead
            raise RedisConnectionError("connection lost")
        return await real_take_new(block_ms)

    c._take_new = take_new  # type: ignore[method-assign]
    return c, stop


async def test_stop_flushes_the_last_commit_even_when_the_read_ahead_failed(bus: Bus, settings: CommonSettings) -> None:
    """run() never returns with its last commit in flight, even when the read-ahead failed."""
    c, stop = await stopping_with_a_failing_read_ahead(bus)
    real = c._script

    async def slow_commit(*a, **kw):
        await asyncio.sleep(0.2)  # a deliberately slow commit: still in flight when run() is asked to stop
        return await real(*a, **kw)

    c._script = slow_commit  # type: ignore[assignment]
    await asyncio.wait_for(c.run(stop), timeout=5)
    in_flight = c._in_flight
    if in_flight is not None:
        await in_flight
    assert in_flight is None, "run() returned with its last commit still in flight"


async def test_failed_read_ahead_and_commit_leave_no_unretrieved_exception(bus: Bus, settings: CommonSettings) -> None:
    c, stop = await stopping_with_a_failing_read_ahead(bus)

    async def failing_commit(*a, **kw):
        await asyncio.sleep(0.05)  # a deliberately slow commit: it fails after run() has returned
        raise RedisConnectionError("connection lost")

    c._script = failing_commit  # type: ignore[assignment]
    seen: list[dict] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _l, ctx: seen.append(ctx))
    await asyncio.wait_for(c.run(stop), timeout=5)
    here = asyncio.current_task()
    await eventually(
        lambda: all(t.done() for t in asyncio.all_tasks() if t is not here), what="the failing commit to finish"
    )
    c._in_flight = None
    gc.collect()
    await asyncio.sleep(0)  # one turn of the loop: the exception handler is called soon after gc finds a task
    loop.set_exception_handler(None)
    assert not seen, [ctx.get("message") for ctx in seen]


async def test_precheck_sees_the_marks_of_the_commit_in_flight(bus: Bus, settings: CommonSettings) -> None:
    """With commits pipelined, the precheck of batch N+1 waits for batch N's commit, so a repeat in the
    next batch is not handled again (a stateful handler would count it twice)."""
    handler = Recorder()
    c = bus.consumer("tokens", GROUP, handler, name="c1", batch_size=1)  # precheck=True
    await c.ensure_group()
    real = c._script

    async def slow_commit(*a, **kw):
        await asyncio.sleep(0.05)  # a deliberately slow commit: batch N+1 is read while it runs
        return await real(*a, **kw)

    c._script = slow_commit  # type: ignore[assignment]
    await bus.publish_many([("tokens", token("s1", 0)), ("tokens", token("s1", 0))])
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await eventually(lambda: c.stats.processed + c.stats.duplicates >= 2, what="both entries handled or dropped")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert handler.seen == [("s1", 0)], handler.seen
