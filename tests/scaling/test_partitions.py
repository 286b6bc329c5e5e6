"""Partitioned streams: key names, the session → partition map, and the bus's exactly-once commit on a
single node with several partitions and on a real Redis Cluster (outputs, marks, dead letters, state
writes and the fence all in the source partition's slot)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from redis.asyncio import Redis

from services.common.bus import Bus, DeadLetter, Delivery, Fence, FencedError, Outcome, StateWrite
from services.common.codec import decode
from services.common.contracts import AuditEvent, TokenEvent
from services.common.settings import CommonSettings
from tests.common.events import token
from tests.common.test_bus import audit_of, drain

GROUP = "testers"
SESSIONS = [f"session-{i}" for i in range(24)]


def test_one_partition_on_a_single_node_keeps_the_plain_names() -> None:
    s = CommonSettings(stream_prefix="uq:")
    assert (s.partition_key("tokens", 0), s.partition_of("any"), s.partition_keys("audits")) == (
        "uq:tokens",
        0,
        ["uq:audits"],
    )


def test_partitions_are_hash_tagged_and_a_session_always_maps_to_the_same_one() -> None:
    s = CommonSettings(stream_prefix="uq:", partitions=8)
    assert s.partition_keys("tokens") == [f"uq:{{p{p}}}:tokens" for p in range(8)]
    import zlib

    assert all(s.partition_of(sid) == zlib.crc32(sid.encode()) % 8 for sid in SESSIONS)  # documented
    spread = Counter(s.partition_of(f"s{i}") for i in range(8_000))
    assert len(spread) == 8 and max(spread.values()) < 1.2 * 1_000  # even
    # on a cluster, one partition is hash-tagged too (its keys must share a slot)
    assert CommonSettings(stream_prefix="uq:", redis_cluster=True).partition_key("tokens", 0) == "uq:{p0}:tokens"


class ToAudits:
    """Turns each token into an audit, dead-letters seq 13, and saves a state per session."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        out: list[Outcome] = []
        for d in batch:
            assert isinstance(d.event, TokenEvent)
            self.seen.append((d.event.session_id, d.event.seq))
            if d.event.seq == 13:
                out.append(DeadLetter("thirteen"))
                continue
            state = StateWrite(self.bus.session_key(f"state:{d.event.session_id}", d.event.session_id), b"x", 60_000)
            out.append([("audits", audit_of(d.event)), state])
        return out


async def _all_audits(bus: Bus) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    for key in bus.stream_keys("audits"):
        for _, fields in await bus.redis.xrange(key):
            event = decode("audits", fields)
            assert isinstance(event, AuditEvent)
            out.append(event)
    return out


async def _exactly_once(bus: Bus) -> None:
    await bus.publish_many(("tokens", token(sid, seq)) for sid in SESSIONS for seq in range(16))
    for p in bus.partitions:  # each session's tokens are in its own partition only
        ids = {decode("tokens", f).session_id for _, f in await bus.redis.xrange(bus.partition_key("tokens", p))}
        assert ids == {sid for sid in SESSIONS if bus.settings.partition_of(sid) == p}
    handler = ToAudits(bus)
    consumers = [
        c for i in range(2) for c in bus.consumers("tokens", GROUP, handler, name=f"c{i}")
    ]  # two replicas, each reading every partition
    await drain(*consumers)
    got = await _all_audits(bus)
    assert sorted((a.session_id, a.seq) for a in got) == sorted(
        (sid, seq) for sid in SESSIONS for seq in range(16) if seq != 13
    )
    # outputs stay in their session's partition; so do dead letters and state writes
    for p in bus.partitions:
        ids = {decode("audits", f).session_id for _, f in await bus.redis.xrange(bus.partition_key("audits", p))}
        assert all(bus.settings.partition_of(sid) == p for sid in ids)
    dead = sum([await bus.redis.xlen(bus.partition_key("dead", p)) for p in bus.partitions])
    assert dead == len(SESSIONS)
    assert all([await bus.redis.exists(bus.session_key(f"state:{sid}", sid)) for sid in SESSIONS])
    # a redelivery (the marks are per partition) yields no second output
    for c in consumers[:1]:
        await bus.redis.xgroup_setid(c._key, GROUP, id="0")
    await drain(*consumers)
    assert len(await _all_audits(bus)) == len(got)


async def test_exactly_once_over_partitions_on_one_node(redis: Redis, settings: CommonSettings) -> None:
    await _exactly_once(Bus(redis, settings.model_copy(update={"partitions": 4})))


async def test_exactly_once_over_partitions_on_a_cluster(cluster_bus: Bus) -> None:
    nodes = {cluster_bus.redis.get_node_from_key(k).port for k in cluster_bus.stream_keys("tokens")}  # type: ignore[attr-defined]
    assert len(nodes) >= 2, "the partitions should spread over the masters"
    await _exactly_once(cluster_bus)


@pytest.mark.parametrize("where", ["node", "cluster"])
async def test_a_fenced_commit_writes_nothing_once_the_owner_changed(
    where: str, redis: Redis, settings: CommonSettings, cluster_bus: Bus
) -> None:
    bus = cluster_bus if where == "cluster" else Bus(redis, settings.model_copy(update={"partitions": 4}))
    sid = SESSIONS[0]
    p = bus.settings.partition_of(sid)
    owner = bus.partition_key("owner:test", p)
    await bus.redis.set(owner, "me")
    handler = ToAudits(bus)
    consumer = bus.consumer("tokens", GROUP, handler, partition=p, fence=Fence(owner, "me"))
    await consumer.ensure_group()
    await bus.publish("tokens", token(sid, 0))
    await consumer.step(block_ms=10)
    assert len(await _all_audits(bus)) == 1
    await bus.redis.set(owner, "someone else")
    await bus.publish("tokens", token(sid, 1))
    with pytest.raises(FencedError):
        await consumer.step(block_ms=10)
    assert len(await _all_audits(bus)) == 1  # nothing written
    pending = await bus.redis.xpending(bus.partition_key("tokens", p), GROUP)
    assert pending["pending"] == 1  # and not acknowledged: the new owner takes it
    with pytest.raises(FencedError):
        await consumer.commit_outputs([("audits", audit_of(token(sid, 2)))])
    taker = bus.consumer(
        "tokens", GROUP, handler, partition=p, name="new", fence=Fence(owner, "someone else"), reclaim_at_start=True
    )
    await taker.step(block_ms=10)  # takes the pending entry at once, however recent
    assert sorted(a.seq for a in await _all_audits(bus)) == [0, 1]
