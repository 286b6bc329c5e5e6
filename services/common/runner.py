"""Runs one service: logging, Redis connection with retries, heartbeat, signals, clean shutdown.

Every ``services/<name>/__main__.py`` is ``run_service("<name>", Settings, main)`` where ``main`` is an
``async def main(ctx: ServiceContext) -> None`` that works until ``ctx.stop`` is set.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.backoff import Backoff
from services.common.bus import Bus
from services.common.errors import RedisUnavailableError, UQError
from services.common.health import Heartbeat
from services.common.logs import setup_logging
from services.common.redis_client import redis_client
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)
S = TypeVar("S", bound=CommonSettings)


@dataclass
class ServiceContext:
    """What a service's main coroutine gets."""

    name: str
    instance: str
    settings: Any
    redis: Redis
    bus: Bus
    heartbeat: Heartbeat
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    details: dict[str, Any] = field(default_factory=dict)


async def connect(settings: CommonSettings) -> Redis:
    """A Redis client that answered PING, after ``connect_retries`` attempts with doubling delays."""
    backoff = Backoff(first=settings.connect_retry_delay_s)
    last: BaseException | None = None
    for attempt in range(settings.connect_retries + 1):
        redis = redis_client(
            settings.redis_url,
            cluster=settings.redis_cluster,
            decode_responses=False,
            health_check_interval=10,
            socket_connect_timeout=5,
            retry_on_timeout=True,
            max_connections=settings.redis_max_connections,
            pool_timeout_s=settings.redis_pool_timeout_s,
        )
        try:
            await redis.ping()
            return redis
        except (RedisError, OSError) as exc:
            last = exc
            await redis.aclose()
            if attempt < settings.connect_retries:
                log.warning(
                    "redis not reachable yet",
                    extra={"url": settings.redis_url, "attempt": attempt + 1, "error": str(exc)},
                )
                await backoff.sleep()
    raise RedisUnavailableError(settings.redis_url, last)


#: Allocations between two young-generation collections (CPython's default: 700). A service handling a
#: batch creates tens of thousands of short-lived objects (parsed entries, models, JSON); at 700 the
#: collector ran every few tokens and cost the auditor ~25 % of its top-k throughput (bench/auditor.py).
#: Objects freed by reference counting never wait for it, so memory does not grow with the threshold.
GC_GEN0_THRESHOLD = 20_000


def settle_gc() -> None:
    """Move everything allocated so far (imports, start-up, warm-up) out of the collector's sight.

    Those objects live as long as the process; freezing them keeps every later collection, the
    full ones included, to the objects of the work itself. Call it again after a large warm-up.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def serve(name: str, settings: CommonSettings, main: Callable[[ServiceContext], Awaitable[None]]) -> None:
    """Connect, start the heartbeat, run ``main`` until SIGTERM/SIGINT, then shut down cleanly."""
    redis = await connect(settings)
    instance = settings.instance_name()
    ctx = ServiceContext(
        name=name,
        instance=instance,
        settings=settings,
        redis=redis,
        bus=Bus(redis, settings),
        heartbeat=Heartbeat(redis, settings, name, instance),
    )
    ctx.heartbeat.details = lambda: ctx.details
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stop.set)
    ctx.heartbeat.start()
    settle_gc()
    log.info("service started", extra={"instance": instance, "redis_url": settings.redis_url})
    try:
        await main(ctx)
    finally:
        await ctx.heartbeat.stop()
        await redis.aclose()
        log.info("service stopped", extra={"instance": instance})


def run_service(name: str, settings_cls: type[S], main: Callable[[ServiceContext], Awaitable[None]]) -> None:
    """Entry point of ``python -m services.<name>``: exits 2 with a fix-it message when it cannot start."""
    try:
        settings = settings_cls()
    except Exception as exc:  # pydantic's ValidationError names the variable and the problem
        print(f"{name}: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(name, settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(name, settings, main))
    except UQError as exc:
        log.error(str(exc))
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
