"""The fan-out task against the real Redis: reads the three streams from where it started, skips junk."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.settings import CommonSettings
from services.gateway.fanout import Fanout
from services.gateway.live import LiveState
from services.gateway.messages import MessageKey
from tests.gateway.events import alert, audit, lifecycle


class Recorder:
    def __init__(self) -> None:
        self.keys: list[MessageKey] = []

    def deliver(self, session_id: str, key: MessageKey, text: str) -> None:
        assert json.loads(text)["session_id"] == session_id
        self.keys.append(key)


async def test_reads_new_entries_only_in_stream_order_and_skips_junk(
    redis: Redis, bus: Bus, settings: CommonSettings
) -> None:
    await bus.publish("audits", audit("s", 99))  # before the fan-out started: history, not live
    live = LiveState()
    sub = Recorder()
    live.subscribe("s", sub)
    fanout = Fanout(redis, settings, live)
    await fanout.start()
    await fanout.stop()  # drive it by hand below
    await bus.publish("sessions", lifecycle("s", "started"))
    await redis.xadd(settings.stream("audits"), {"data": b"not json"})
    await redis.xadd(settings.stream("sessions"), {"data": b'{"type": "session", "session_id": "s", "seq": 2}'})
    await redis.xadd(settings.stream("alerts"), {"nodata": b"1"})
    await bus.publish("audits", audit("s", 0))
    await bus.publish("audits", audit("s", 1))
    await bus.publish("alerts", alert("s", 0, 1))
    assert await fanout.step(block_ms=10) == 4
    assert sub.keys == [("token", 0), ("token", 1), ("alert", 0), ("session", 1)]
    assert fanout.skipped == 3
    assert await fanout.step(block_ms=10) == 0
    await bus.publish("audits", audit("s", 2))
    assert await fanout.step(block_ms=10) == 1
    assert sub.keys[-1] == ("token", 2)
