"""The gateway's service layer, assembled: what routers and the WebSocket handler delegate to."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.bus import Bus
from services.gateway.completions import CompletionService
from services.gateway.fanout import Fanout
from services.gateway.health import HealthService
from services.gateway.history import HistoryReader, HistoryService
from services.gateway.jobs import JobService
from services.gateway.live import LiveState
from services.gateway.metrics import GatewayMetrics
from services.gateway.push import PushService
from services.gateway.security import Authenticator, SharedRateLimiter
from services.gateway.settings import GatewaySettings


@dataclass
class Gateway:
    settings: GatewaySettings
    redis: Redis
    bus: Bus
    live: LiveState
    history: HistoryService
    jobs: JobService
    completions: CompletionService
    push: PushService
    health: HealthService
    metrics: GatewayMetrics
    auth: Authenticator
    limiter: SharedRateLimiter
    fanout: Fanout

    @classmethod
    def build(cls, settings: GatewaySettings, redis: Redis, store: HistoryReader | None) -> Gateway:
        bus = Bus(redis, settings)
        live = LiveState(
            recent_tokens=settings.recent_tokens,
            keep_s=settings.recent_keep_s,
            done_grace_s=settings.done_grace_s,
            budget_bytes=int(settings.replay_budget_mb * 2**20),
        )
        history = HistoryService(store, live)
        jobs = JobService(bus, settings, history)
        return cls(
            settings=settings,
            redis=redis,
            bus=bus,
            live=live,
            history=history,
            jobs=jobs,
            completions=CompletionService(jobs, live, settings),
            push=PushService(bus, settings, history),
            health=HealthService(redis, settings),
            metrics=GatewayMetrics(settings.instance_name()),
            auth=Authenticator(settings),
            limiter=SharedRateLimiter(redis, settings),
            fanout=Fanout(redis, settings, live, batch=settings.fanout_batch),
        )
