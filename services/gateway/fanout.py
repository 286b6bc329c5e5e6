"""The fan-out task: one per gateway, reading uq:audits, uq:alerts and uq:sessions with plain XREAD.

Every partition of the three streams is read (docs/streams.md, "Partitions"): on a single node all of
them in one XREAD; on Redis Cluster one XREAD per partition (a multi-key command must stay in one
slot), each in its own loop.

No consumer group: every gateway replica sees every entry and serves its own sockets. Entries are
JSON-decoded (the envelope only is checked; the producers validated them) and handed to the live
state, which delivers them to subscribers without blocking. So a slow socket never slows this loop,
and this loop never slows the pipeline (it only reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.backoff import Backoff
from services.common.codec import DATA
from services.common.settings import CommonSettings
from services.gateway.live import LiveState

log = logging.getLogger(__name__)
STREAMS = ("audits", "alerts", "sessions")  # within one read, tokens first, then alerts, then lifecycle
TICK_S = 0.1


class Fanout:
    def __init__(self, redis: Redis, settings: CommonSettings, live: LiveState, *, batch: int = 1_000) -> None:
        self.redis = redis
        self.settings = settings
        self.live = live
        self.batch = batch
        # The keys one XREAD reads, group by group (key → short stream name). Within a group, all the
        # audits first, then alerts, then lifecycle, as a session's own entries are meant to be applied.
        partitions = [[(settings.partition_key(s, p), s) for s in STREAMS] for p in range(settings.partitions)]
        if settings.redis_cluster:
            self.groups = [dict(keys) for keys in partitions]
        else:
            self.groups = [
                dict(sorted((kv for keys in partitions for kv in keys), key=lambda kv: STREAMS.index(kv[1])))
            ]
        self.keys = {k: s for g in self.groups for k, s in g.items()}
        self.last_ids: dict[str, bytes] = {}
        self.entries = 0
        self.skipped = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self._init_ids()
        self._tasks = [asyncio.create_task(self._loop(i), name=f"gateway-fanout-{i}") for i in range(len(self.groups))]

    async def stop(self) -> None:
        """Let the current reads finish (at most one block time), then end; cancelling a blocked XREAD
        would leave its connection in the pool waiting for the answer."""
        self._stopping.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _init_ids(self) -> None:
        """Start at the current end of each stream (history before that comes from the store)."""
        for key in self.keys:
            last: Any = await self.redis.xrevrange(key, count=1)
            self.last_ids[key] = last[0][0] if last else b"0-0"
        self.ready.set()

    async def _loop(self, group: int) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                await self.step(block_ms=int(TICK_S * 1000), group=group)
                backoff.reset()
            except (RedisError, OSError) as exc:
                log.warning("fan-out cannot read Redis, retrying", extra={"error": str(exc)})
                await backoff.sleep()
            except Exception:  # a bug must not kill every socket's feed
                log.exception("fan-out step failed")
                await asyncio.sleep(0.5)

    async def step(self, block_ms: int = 100, group: int = 0) -> int:
        """One XREAD over one group of keys (every partition on a single node); returns the entries handled."""
        keys = self.groups[group]
        ids = {k: self.last_ids[k] for k in keys}
        response: Any = await self.redis.xread(ids, count=self.batch, block=block_ms)  # type: ignore[arg-type]
        n = 0
        by_stream = {(k.decode() if isinstance(k, bytes) else k): items for k, items in response or []}
        for key in keys:
            items = by_stream.get(key)
            if not items:
                continue
            self.last_ids[key] = items[-1][0]
            for entry_id, fields in items:
                entry = _decode(fields)
                if entry is None:
                    self.skipped += 1
                    log.warning("fan-out skipped an unreadable entry", extra={"stream": key, "entry_id": entry_id})
                    continue
                try:
                    self.live.apply(entry)
                except (KeyError, TypeError, ValueError) as exc:  # valid JSON, not a valid entry
                    self.skipped += 1
                    log.warning("fan-out skipped a malformed entry", extra={"stream": key, "error": repr(exc)})
                    continue
                n += 1
        self.entries += n
        self.live.tick()
        return n


def _decode(fields: dict[bytes, bytes]) -> dict[str, Any] | None:
    raw = fields.get(DATA)
    if raw is None:
        return None
    try:
        entry = orjson.loads(raw)  # every entry of every session: orjson, ~6x the standard library
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("session_id"), str)
        or not isinstance(entry.get("seq"), int)
        or entry.get("type") not in ("audit", "alert", "risk", "scores", "summary", "session")
    ):
        return None
    return entry
