"""Leases on running sessions, so that a session whose producer died is marked failed, not left open.

A producer (a generator running a job, or the gateway for a push session) *holds* a lease on each
session it is producing: the session id is a member of the sorted set ``uq:leases`` scored by the
lease's expiry (Unix ms), and ``uq:lease-owners`` maps it to the holder. With several partitions each
has its own pair (``uq:{p3}:leases``, ``uq:{p3}:lease-owners``: in the session's partition, so that the
push API's scripts touch one Redis Cluster slot). The holder renews its leases
well before they expire (the generator on every heartbeat) and releases them when the session ends.

A *sweeper* (every gateway runs one) takes the expired leases atomically — one Lua script removes
them, so of several sweepers exactly one gets each — and publishes the terminal ``failed`` entry on
``uq:sessions`` (seq 2, so a late terminal entry of the real producer cannot make a second one),
with a reason naming the holder and the timeout.

Push sessions (the gateway's push API) are held by :func:`push_owner` (``push-api:<idle s>``),
whichever gateway replica takes the request: the lease is taken at start, renewed by each push for
``UQ_PUSH_IDLE_TIMEOUT_S`` and removed by finishing, each in one script with the session's own state
(services/gateway/push.py), so a push or finish that comes after the sweeper took the lease knows
the session has already ended ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.bus import Bus
from services.common.contracts import SessionEvent

log = logging.getLogger(__name__)

# KEYS: leases zset, owners hash; ARGV: now_ms, limit → flat list [session, owner, ...]
_TAKE_EXPIRED = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local owner = redis.call('HGET', KEYS[2], id)
  redis.call('HDEL', KEYS[2], id)
  out[#out + 1] = id
  out[#out + 1] = owner or ''
end
return out
"""

#: The holder of every push session's lease (any gateway replica renews it).
PUSH_OWNER = "push-api"


class Leases:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.redis: Redis = bus.redis
        self._take = self.redis.register_script(_TAKE_EXPIRED)

    def zset(self, session_id: str) -> str:
        """The sorted set holding ``session_id``'s lease (in its partition)."""
        return self.bus.session_key("leases", session_id)

    def owners(self, session_id: str) -> str:
        """The hash naming the holder of ``session_id``'s lease."""
        return self.bus.session_key("lease-owners", session_id)

    def _by_partition(self, session_ids: tuple[str, ...]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for sid in session_ids:
            out.setdefault(self.bus.settings.partition_of(sid), []).append(sid)
        return out

    async def hold(self, owner: str, ttl_s: float, *session_ids: str) -> None:
        """Take or renew leases on ``session_ids`` until ``ttl_s`` from now."""
        expiry = int((time.time() + ttl_s) * 1000)
        for p, ids in self._by_partition(session_ids).items():
            pipe = self.redis.pipeline(transaction=True)  # one partition: one slot
            pipe.zadd(self.bus.partition_key("leases", p), dict.fromkeys(ids, expiry))
            pipe.hset(self.bus.partition_key("lease-owners", p), mapping=dict.fromkeys(ids, owner))
            await pipe.execute()

    async def release(self, *session_ids: str) -> None:
        for p, ids in self._by_partition(session_ids).items():
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(self.bus.partition_key("leases", p), *ids)
            pipe.hdel(self.bus.partition_key("lease-owners", p), *ids)
            await pipe.execute()

    async def take_expired(self, limit: int = 100) -> list[tuple[str, str]]:
        """Remove and return ``(session_id, owner)`` of leases that have expired (at most ``limit`` per
        partition)."""
        now_ms = int(time.time() * 1000)
        out: list[tuple[str, str]] = []
        for p in self.bus.partitions:
            keys = [self.bus.partition_key("leases", p), self.bus.partition_key("lease-owners", p)]
            flat = await self._take(keys=keys, args=[now_ms, limit])
            items = [x.decode() if isinstance(x, bytes) else str(x) for x in flat]
            out += zip(items[::2], items[1::2], strict=True)
        return out

    async def sweep(self, timeout_s: float) -> list[str]:
        """Mark the sessions of expired leases failed; returns their ids.

        The reason quotes ``timeout_s`` (``UQ_LEASE_TIMEOUT_S``) for a producer's session, and the idle
        timeout its lease names for a push session (see :func:`push_owner`).
        """
        expired = await self.take_expired()
        if expired:
            await self.bus.publish_many(
                ("sessions", SessionEvent(session_id=sid, seq=2, status="failed", reason=_reason(owner, timeout_s)))
                for sid, owner in expired
            )
        return [s for s, _ in expired]


def push_owner(idle_s: float) -> str:
    """The holder of a push session's lease (any gateway replica renews it), naming its idle timeout."""
    return f"{PUSH_OWNER}:{idle_s:g}"


def push_idle_reason(idle_s: float | str) -> str:
    """The ``reason`` of a push session whose producer went quiet for ``idle_s`` (UQ_PUSH_IDLE_TIMEOUT_S)."""
    quiet = f"{idle_s:g}" if isinstance(idle_s, float | int) else idle_s
    return f"abandoned: no tokens or finish for {quiet} s (UQ_PUSH_IDLE_TIMEOUT_S); the tokens pushed so far are kept"


def _reason(owner: str, timeout_s: float) -> str:
    kind, _, idle = owner.partition(":")
    if kind == PUSH_OWNER:
        return push_idle_reason(idle or "?")
    return (
        f"its producer {owner or '(unknown)'} stopped responding: no sign of life for "
        f"{timeout_s:g} s (UQ_LEASE_TIMEOUT_S); the output so far is kept"
    )


async def sweep_forever(leases: Leases, timeout_s: float, every_s: float | None = None) -> None:
    """Sweep every ``every_s`` (default: a third of ``timeout_s``) until cancelled (a background task of
    gateways)."""
    while True:
        await asyncio.sleep(every_s or timeout_s / 3)
        try:
            swept = await leases.sweep(timeout_s)
        except (RedisError, OSError) as exc:
            log.warning("lease sweep failed", extra={"error": str(exc)})
            continue
        if swept:
            log.warning("marked sessions of a dead producer failed", extra={"sessions": swept})
