"""Health: Redis answers, and every required service has a fresh heartbeat."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.health import read_heartbeats
from services.gateway.models import HealthResponse, ServiceBeat
from services.gateway.settings import GatewaySettings


class HealthService:
    def __init__(self, redis: Redis, settings: GatewaySettings) -> None:
        self.redis = redis
        self.settings = settings

    async def check(self) -> HealthResponse:
        """Status ``ok`` only when Redis answers and each required service has a heartbeat younger than
        ``heartbeat_max_age_s``; ``missing`` names each part that is not there."""
        missing: list[str] = []
        services: dict[str, list[ServiceBeat]] = {}
        started = time.perf_counter()
        try:
            await self.redis.ping()
            beats = await read_heartbeats(self.redis, self.settings)
            redis: dict[str, object] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
        except (RedisError, OSError) as exc:
            redis = {"ok": False, "error": f"Redis is not reachable at {self.settings.redis_url}: {exc}"}
            beats = []
            missing.append("redis")
        for beat in beats:
            services.setdefault(str(beat["service"]), []).append(
                ServiceBeat(instance=str(beat["instance"]), age_s=float(beat["age_s"]), status=str(beat["status"]))
            )
        for name in self.settings.split(self.settings.required_services):
            fresh = [b for b in services.get(name, []) if b.age_s <= self.settings.heartbeat_max_age_s]
            if not fresh and "redis" not in missing:
                missing.append(name)
        return HealthResponse(status="unhealthy" if missing else "ok", redis=redis, services=services, missing=missing)
