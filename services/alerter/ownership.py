"""Alerter replicas share the partitions: each partition is served by exactly one alerter at a time.

Per-session order needs all of a session's audits in one process, so two alerters must never serve
one partition at once. Each partition has an *owner key* in its own slot,
``<prefix>{p<i>}:owner:<audit_group>`` (``<prefix>owner:<audit_group>`` with one partition on a single
node), holding the owner's name with an expiry (``UQ_PARTITION_LEASE_S``). Every alerter, every third
of that time:

1. renews its membership (``<prefix>alerter-members:<audit_group>``, a sorted set scored by expiry) and
   its partitions' keys; a partition whose key no longer names it is lost, and its loop stops at once;
2. counts the live members: its fair share is ⌈partitions ÷ members⌉;
3. over its share, it hands back its highest partitions: that loop finishes and commits its batch,
   then the key is deleted, so another alerter takes the partition at its next round;
4. under its share, it claims free partitions (``SET NX PX``), starting at a place its name hashes to,
   so that replicas starting together do not all reach for the same ones.

**Failover.** An alerter killed with ``kill -9`` stops renewing: its keys expire within
``UQ_PARTITION_LEASE_S`` and its membership with them, and the others claim its partitions at their
next round: within ``UQ_PARTITION_LEASE_S × 4/3`` (8 s with the default 6 s). A restarted alerter with
the same ``UQ_INSTANCE`` takes its own keys back at once.

**Fencing.** The new owner's consumers claim the partition's pending entries at once
(``reclaim_at_start``) and read each session's state as last committed. Every commit of an alerter
(alerts, session states and acknowledgements, one Lua script) first checks that the partition's owner
key still names it, so a former owner that was only paused (a long GC, a network partition) commits
nothing once it has lost the partition: no alert is lost (what it had not committed stays pending for
the new owner) and none is repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from services.alerter.service import Alerter
from services.alerter.settings import AlerterSettings
from services.common.bus import Bus, Fence, FencedError

log = logging.getLogger(__name__)

# KEYS: owner key; ARGV: name, ttl_ms → 1 when the key names us now (taken or renewed), else 0
_TAKE_OR_KEEP = """
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: owner key; ARGV: name → 1 when deleted (it named us)
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: members zset; ARGV: name, expiry_ms, now_ms → live members
_MEMBER = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return redis.call('ZCARD', KEYS[1])
"""


@dataclass
class _Served:
    alerter: Alerter
    stop: asyncio.Event
    task: asyncio.Task[None]


class Ownership:
    """Runs one :class:`Alerter` per partition this alerter owns, and keeps the ownership fair."""

    def __init__(self, bus: Bus, settings: AlerterSettings, name: str, make: Callable[[int, Fence], Alerter]) -> None:
        self.bus = bus
        self.settings = settings
        self.name = name
        self.make = make
        self.served: dict[int, _Served] = {}
        self.members_key = bus.key(f"alerter-members:{settings.audit_group}")
        self._take = bus.redis.register_script(_TAKE_OR_KEEP)
        self._release = bus.redis.register_script(_RELEASE)
        self._member = bus.redis.register_script(_MEMBER)
        self.members = 1
        self.handovers = 0  # partitions taken over or handed back since start

    def owner_key(self, partition: int) -> str:
        return self.bus.partition_key(f"owner:{self.settings.audit_group}", partition)

    @property
    def ttl_ms(self) -> int:
        return int(self.settings.partition_lease_s * 1000)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve partitions until ``stop``; then let each loop commit its batch and hand every partition back."""
        every = self.settings.partition_lease_s / 3
        try:
            while not stop.is_set():
                try:
                    await self.round()
                except (RedisError, OSError) as exc:
                    log.warning("partition ownership round failed", extra={"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every)
        finally:
            await asyncio.gather(*(self._hand_back(p) for p in list(self.served)), return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await self.bus.redis.zrem(self.members_key, self.name)

    async def round(self) -> None:
        """Renew, count members, hand back what is over the share, claim what is under it."""
        now_ms = int(time.time() * 1000)
        self.members = int(await self._member(keys=[self.members_key], args=[self.name, now_ms + self.ttl_ms, now_ms]))
        for p, served in list(self.served.items()):
            if served.task.done():  # fenced out, or failed: serve it again only if it is ours and free
                self.served.pop(p)
                _log_end(p, served.task)
        kept = await asyncio.gather(*(self._claim(p) for p in self.served))
        for p, ok in zip(list(self.served), kept, strict=True):
            if not ok:
                log.warning("lost a partition to another alerter", extra={"partition": p})
                served = self.served.pop(p)
                served.task.cancel()  # its commits are fenced already; nothing of it can land
                self.handovers += 1
        share = math.ceil(self.settings.partitions / max(self.members, 1))
        for p in sorted(self.served, reverse=True)[: max(len(self.served) - share, 0)]:
            await self._hand_back(p)
        if len(self.served) < share:
            start = zlib.crc32(self.name.encode()) % self.settings.partitions
            order = [(start + i) % self.settings.partitions for i in range(self.settings.partitions)]
            for p in order:
                if len(self.served) >= share:
                    break
                if p not in self.served and await self._claim(p):
                    self._serve(p)

    async def _claim(self, partition: int) -> bool:
        return bool(await self._take(keys=[self.owner_key(partition)], args=[self.name, self.ttl_ms]))

    def _serve(self, partition: int) -> None:
        alerter = self.make(partition, Fence(self.owner_key(partition), self.name))
        stop = asyncio.Event()
        task = asyncio.create_task(alerter.run(stop), name=f"alerter-partition-{partition}")
        self.served[partition] = _Served(alerter, stop, task)
        self.handovers += 1
        log.info("serving a partition", extra={"partition": partition, "members": self.members})

    async def _hand_back(self, partition: int) -> None:
        served = self.served.pop(partition)
        served.stop.set()
        with contextlib.suppress(Exception):
            await served.task  # the batch in hand is committed (or fenced) first
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[self.owner_key(partition)], args=[self.name])
        self.handovers += 1
        log.info("handed a partition back", extra={"partition": partition, "members": self.members})

    def details(self) -> dict[str, Any]:
        """What the heartbeat shows: the partitions served, and the sums of their alerters' figures."""
        out: dict[str, Any] = {
            "partitions": sorted(self.served),
            "partitions_total": self.settings.partitions,
            "alerters_live": self.members,
            "handovers": self.handovers,
        }
        for served in self.served.values():
            for k, v in served.alerter.details().items():
                if isinstance(v, int) and not isinstance(v, bool):
                    out[k] = out.get(k, 0) + v
                else:
                    out.setdefault(k, v)
        return out


def _log_end(partition: int, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, FencedError):
        log.warning("partition fenced: another alerter owns it", extra={"partition": partition})
    elif exc is not None:
        log.error("partition loop failed", extra={"partition": partition, "error": repr(exc)})
