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
