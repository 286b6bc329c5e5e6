"""Health: Redis and every required service's heartbeat, naming what is missing."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from services.common.health import Heartbeat
from services.common.settings import CommonSettings
from services.gateway.health import HealthService
from services.gateway.settings import GatewaySettings


async def test_missing_services_are_named_until_they_beat(redis: Redis, settings: CommonSettings) -> None:
    s = GatewaySettings(**settings.model_dump(), required_services="auditor,alerter")
    health = HealthService(redis, s)
    report = await health.check()
    assert (report.status, report.missing, report.redis["ok"]) == ("unhealthy", ["auditor", "alerter"], True)
    await Heartbeat(redis, s, "auditor", "a-1").beat()
    report = await health.check()
    assert report.missing == ["alerter"]
    assert [b.instance for b in report.services["auditor"]] == ["a-1"]
    assert 0 <= report.services["auditor"][0].age_s < 5
    await Heartbeat(redis, s, "alerter", "b-1").beat()
    report = await health.check()
    assert (report.status, report.missing) == ("ok", [])


async def test_stale_heartbeat_counts_as_missing(redis: Redis, settings: CommonSettings) -> None:
    s = GatewaySettings(**settings.model_dump(), required_services="auditor", heartbeat_max_age_s=0.05)
    beat = Heartbeat(redis, s, "auditor", "a-1")
    await beat.beat()
    await asyncio.sleep(0.1)  # time has to pass: the beat grows older than heartbeat_max_age_s (0.05 s)
    report = await HealthService(redis, s).check()
    assert report.missing == ["auditor"]


async def test_redis_down_is_named(settings: CommonSettings) -> None:
    s = GatewaySettings(**settings.model_dump(exclude={"redis_url"}), redis_url="redis://127.0.0.1:1/0")
    dead = Redis.from_url(s.redis_url, socket_connect_timeout=0.5)
    try:
        report = await HealthService(dead, s).check()
    finally:
        await dead.aclose()
    assert report.status == "unhealthy"
    assert report.missing == ["redis"]
    assert "redis://127.0.0.1:1/0" in report.redis["error"]
