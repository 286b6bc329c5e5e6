"""Heartbeats: each service instance writes ``uq:heartbeat:<service>:<instance>`` every
``heartbeat_interval_s`` with a TTL of three intervals; the gateway reads them for ``/health``.

The value is JSON: ``{"service", "instance", "pid", "ts_ns", "started_ns", "status", "details"}``;
``details`` is the service's own (a generator's carries ``model_policy``: services/common/model_policy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.contracts import now_ns
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)


def heartbeat_key(settings: CommonSettings, service: str, instance: str) -> str:
    return settings.stream(f"heartbeat:{service}:{instance}")


async def read_heartbeats(redis: Redis, settings: CommonSettings) -> list[dict[str, Any]]:
    """Every live heartbeat, with ``age_s`` added (a key that holds no heartbeat is skipped with a warning)."""
    keys = [k async for k in redis.scan_iter(match=settings.stream("heartbeat:*"), count=500)]
    if not keys:
        return []
    pipe = redis.pipeline(transaction=False)  # not MGET: on Redis Cluster the keys are in many slots
    for key in keys:
        pipe.get(key)
    values = await pipe.execute()
    now = now_ns()
    beats = []
    for key, raw in zip(keys, values, strict=True):
        if raw is None:
            continue
        try:
            beat = json.loads(raw)
            beat["age_s"] = round((now - int(beat["ts_ns"])) / 1e9, 3)
            if not {"service", "instance"} <= beat.keys():
                raise KeyError("service and instance")
        except (ValueError, TypeError, KeyError) as exc:  # not written by a Heartbeat: skipped, not fatal
            log.warning("unreadable heartbeat", extra={"key": str(key), "error": repr(exc)})
            continue
        beats.append(beat)
    return sorted(beats, key=lambda b: (b["service"], b["instance"]))


class Heartbeat:
    """Writes this instance's heartbeat until stopped; ``details`` is called on each beat."""

    def __init__(
        self,
        redis: Redis,
        settings: CommonSettings,
        service: str,
        instance: str,
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.service = service
        self.instance = instance
        self.details = details or dict
        self.status = "starting"
        self.key = heartbeat_key(settings, service, instance)
        self._started = now_ns()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def beat(self) -> None:
        value = {
            "service": self.service,
            "instance": self.instance,
            "pid": os.getpid(),
            "ts_ns": now_ns(),
            "started_ns": self._started,
            "status": self.status,
            "details": self.details(),
        }
        ttl_ms = int(self.settings.heartbeat_interval_s * 3000)
        await self.redis.set(self.key, json.dumps(value, default=str), px=ttl_ms)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat-{self.service}")

    async def stop(self) -> None:
        # Set before cancelling: redis-py may turn the cancellation of a command in flight into a
        # RedisError, which the loop survives; the event then ends it at once.
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.key)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                log.warning("heartbeat failed", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.heartbeat_interval_s)
