"""Leases on running sessions, so that a session whose producer died is marked failed, not left open.

A producer (a generator running a job, or the gateway for a push session) *holds* a lease on each
session it is producing: the session id is a member of the sorted set ``uq:leases`` scored by the
lease's expiry (Unix ms), and ``uq:lease-owners`` maps it to the holder. The holder renews its leases
well before they expire (the generator on every heartbeat) and releases them when the session ends.

A *sweeper* (every gateway runs one) takes the expired leases atomically — one Lua script removes
them, so of several sweepers exactly one gets each — and publishes the terminal ``failed`` entry on
``uq:sessions`` (seq 2, so a late terminal entry of the real producer cannot make a second one),
with a reason naming the holder and the timeout.
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


class Leases:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.redis: Redis = bus.redis
        self.zset = bus.key("leases")
        self.owners = bus.key("lease-owners")
        self._take = self.redis.register_script(_TAKE_EXPIRED)

    async def hold(self, owner: str, ttl_s: float, *session_ids: str) -> None:
        """Take or renew leases on ``session_ids`` until ``ttl_s`` from now."""
        if not session_ids:
            return
        expiry = int((time.time() + ttl_s) * 1000)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(self.zset, dict.fromkeys(session_ids, expiry))
        pipe.hset(self.owners, mapping=dict.fromkeys(session_ids, owner))
        await pipe.execute()

    async def release(self, *session_ids: str) -> None:
        if not session_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.zset, *session_ids)
        pipe.hdel(self.owners, *session_ids)
        await pipe.execute()

    async def take_expired(self, limit: int = 100) -> list[tuple[str, str]]:
        """Remove and return ``(session_id, owner)`` of leases that have expired."""
        flat = await self._take(keys=[self.zset, self.owners], args=[int(time.time() * 1000), limit])
        items = [x.decode() if isinstance(x, bytes) else str(x) for x in flat]
        return list(zip(items[::2], items[1::2], strict=True))

    async def sweep(self, timeout_s: float) -> list[str]:
        """Mark the sessions of expired leases failed; returns their ids."""
        expired = await self.take_expired()
        if expired:
            await self.bus.publish_many(
                (
                    "sessions",
                    SessionEvent(
                        session_id=session_id,
                        seq=2,
                        status="failed",
                        reason=(
                            f"its producer {owner or '(unknown)'} stopped responding: no sign of life for "
                            f"{timeout_s:g} s (UQ_LEASE_TIMEOUT_S); the output so far is kept"
                        ),
                    ),
                )
                for session_id, owner in expired
            )
        return [s for s, _ in expired]


async def sweep_forever(leases: Leases, timeout_s: float) -> None:
    """Sweep every third of ``timeout_s`` until cancelled (a background task of gateways)."""
    while True:
        await asyncio.sleep(timeout_s / 3)
        try:
            swept = await leases.sweep(timeout_s)
        except (RedisError, OSError) as exc:
            log.warning("lease sweep failed", extra={"error": str(exc)})
            continue
        if swept:
            log.warning("marked sessions of a dead producer failed", extra={"sessions": swept})
