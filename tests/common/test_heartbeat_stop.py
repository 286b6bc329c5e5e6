"""Heartbeat.stop ends the loop even when the cancellation lands in a Redis command in flight
(redis-py may turn it into a RedisError, which the loop otherwise survives)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from services.common.health import Heartbeat, read_heartbeats
from services.common.settings import CommonSettings


async def test_stop_right_after_start_returns_and_removes_the_beat(redis: Redis, settings: CommonSettings) -> None:
    slow = CommonSettings(**{**settings.model_dump(), "heartbeat_interval_s": 30.0})
    for i in range(20):
        beat = Heartbeat(redis, slow, "svc", f"i{i}")
        beat.start()
        await asyncio.sleep(0)  # one turn of the loop, no more: the point is a stop right after the start
        await asyncio.wait_for(beat.stop(), timeout=10)  # hung for the whole interval (or forever) before
        assert beat._task is not None and beat._task.done()
    assert await read_heartbeats(redis, slow) == []
