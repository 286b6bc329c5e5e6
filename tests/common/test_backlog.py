from __future__ import annotations

from services.common.backlog import backlog, room
from services.common.bus import Bus
from services.common.settings import CommonSettings
from tests.common.events import token


async def test_backlog_counts_undelivered_and_pending(bus: Bus) -> None:
    assert await backlog(bus, "tokens", "auditors") == 0  # no stream yet
    await bus.publish_many([("tokens", token("s", i)) for i in range(10)])
    assert await backlog(bus, "tokens", "auditors") == 10  # no group: all of it is behind
    await bus.redis.xgroup_create(bus.key("tokens"), "auditors", id="0")
    assert await backlog(bus, "tokens", "auditors") == 10
    taken = await bus.redis.xreadgroup("auditors", "c", {bus.key("tokens"): ">"}, count=4)
    assert await backlog(bus, "tokens", "auditors") == 10  # 4 pending + 6 undelivered
    await bus.redis.xack(bus.key("tokens"), "auditors", *[eid for eid, _ in taken[0][1]])
    assert await backlog(bus, "tokens", "auditors") == 6


async def test_backlog_after_unread_entries_were_trimmed(redis: object, settings: CommonSettings) -> None:
    bus = Bus(redis, settings.model_copy(update={"maxlen_tokens": 100}))  # type: ignore[arg-type]
    await bus.redis.xgroup_create(bus.key("tokens"), "auditors", id="0", mkstream=True)
    for start in range(0, 1000, 100):
        await bus.publish_many([("tokens", token("s", i)) for i in range(start, start + 100)])
    behind = await backlog(bus, "tokens", "auditors")
    assert 100 <= behind <= 300  # what is left of it, not the 1,000 published
    assert await room(bus, "tokens", "auditors") == 80 - behind


def record_commands(bus: Bus) -> list[str]:
    """The names of the Redis commands ``bus`` sends from now on (``XINFO GROUPS``, ``XLEN``, …)."""
    sent: list[str] = []
    real = bus.redis.execute_command

    async def spy(*args: object, **options: object) -> object:
        sent.append(" ".join(str(a) for a in args[:2]) if args[0] == "XINFO" else str(args[0]))
        return await real(*args, **options)

    bus.redis.execute_command = spy  # type: ignore[method-assign]
    return sent


async def test_backlog_when_redis_cannot_tell_the_lag_never_reads_the_stream(bus: Bus) -> None:
    """An XDEL ahead of the group makes Redis report no lag; the check then assumes every retained
    entry unread (pending + XLEN) rather than reading up to the whole retention with XRANGE."""
    key = bus.key("tokens")
    await bus.redis.xgroup_create(key, "auditors", id="0", mkstream=True)
    await bus.publish_many([("tokens", token("s", i)) for i in range(50)])
    taken = await bus.redis.xreadgroup("auditors", "c", {key: ">"}, count=10)
    ids = [eid for eid, _ in (await bus.redis.xrange(key))]
    await bus.redis.xdel(key, ids[30])  # a tombstone ahead of the group: lag unknown
    [info] = await bus.redis.xinfo_groups(key)
    assert info["lag"] is None and info["pending"] == 10
    sent = record_commands(bus)
    assert await backlog(bus, "tokens", "auditors") == 10 + 49  # the exact figure is 10 + 39
    assert sent == ["XINFO GROUPS", "XLEN"]
    assert len(taken[0][1]) == 10


async def test_backlog_with_a_known_lag_is_one_command(bus: Bus) -> None:
    key = bus.key("tokens")
    await bus.redis.xgroup_create(key, "auditors", id="0", mkstream=True)
    await bus.publish_many([("tokens", token("s", i)) for i in range(20)])
    await bus.redis.xreadgroup("auditors", "c", {key: ">"}, count=5)
    sent = record_commands(bus)
    assert await backlog(bus, "tokens", "auditors") == 20
    assert sent == ["XINFO GROUPS"]
