"""API keys and the per-key rate limit (a token bucket kept in Redis, shared by every replica), for REST and
WebSocket alike."""

from __future__ import annotations

import hmac
import logging
import math
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway.errors import RateLimitedError, UnauthorizedError
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class Authenticator:
    def __init__(self, settings: GatewaySettings) -> None:
        self.required = settings.auth_required
        self.keys = [k.encode() for k in settings.api_key_list]

    def identify(self, authorization: str | None, query_key: str | None, client: str) -> str:
        """Who is calling: ``key:<n>`` for the n-th API key, or ``ip:<addr>`` when auth is off.

        The key comes from ``Authorization: Bearer <key>`` or (browsers' WebSockets cannot set headers)
        the ``api_key`` query parameter.
        """
        given = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                given = value.strip()
        given = given or query_key
        if given is not None:
            for i, key in enumerate(self.keys):
                if hmac.compare_digest(given.encode(), key):
                    return f"key:{i}"
            if self.required:
                raise UnauthorizedError("the API key is not valid")
        if self.required:
            raise UnauthorizedError("an API key is required: send 'Authorization: Bearer <key>'")
        return f"ip:{client}"


class RateLimiter:
    """A token bucket per caller: ``rate`` requests per second, bursts up to ``burst``, in this process.

    What :class:`SharedRateLimiter` falls back to while Redis cannot be reached.
    """

    def __init__(self, rate: float, burst: int, *, max_callers: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, caller: str, now: float | None = None) -> None:
        """Take one token from the caller's bucket or raise RateLimitedError with the wait."""
        if self.rate <= 0:
            return
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            wait = (1.0 - tokens) / self.rate
            self._buckets[caller] = (tokens, now)
            raise _limited(self.rate, wait)
        if len(self._buckets) >= self.max_callers and caller not in self._buckets:
            self._buckets.clear()
        self._buckets[caller] = (tokens - 1.0, now)

    @staticmethod
    def retry_after_header(retry_after_s: float) -> str:
        return str(max(1, math.ceil(retry_after_s)))


# GCRA (the generic cell rate algorithm, as redis-cell and throttled implement it): one key per caller
# holding its "theoretical arrival time" in µs of Redis' clock. It is the token bucket above (a full
# bucket of `burst`, refilled at `rate`) in one number, so every replica and restart sees one bucket.
# Returns 0 when the request is allowed, else the µs to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local after = tat + interval
local over = after - now - capacity
if over > 0 then return math.ceil(over) end
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.ceil((after - now) / 1000) + 1)
return 0
"""


class SharedRateLimiter:
    """The rate limit of every gateway replica together: one bucket per caller, kept in Redis.

    A caller gets ``rate`` requests per second and bursts of ``burst`` whichever replica answers (keys
    ``<prefix>ratelimit:<caller>``, expiring once the bucket is full again). One script call per
    request. While Redis cannot be reached the replica limits on its own (:class:`RateLimiter`) rather
    than refusing everyone, and counts those checks in ``uq_rate_limit_local_checks``.
    """

    def __init__(self, redis: Redis, settings: GatewaySettings) -> None:
        self.rate = settings.rate_limit_per_s
        self.burst = settings.rate_limit_burst
        self.prefix = settings.stream("ratelimit:")
        self.local = RateLimiter(self.rate, self.burst)
        self._gcra = redis.register_script(_GCRA)
        self._interval_us = 1e6 / self.rate if self.rate > 0 else 0.0
        self.refused = 0
        self.local_checks = 0

    async def check(self, caller: str) -> None:
        """Allow the request or raise RateLimitedError with the wait."""
        if self.rate <= 0:
            return
        try:
            wait_us = int(await self._gcra(keys=[self.prefix + caller], args=[self._interval_us, self.burst]))
        except (RedisError, OSError) as exc:
            self.local_checks += 1
            if self.local_checks == 1 or self.local_checks % 1000 == 0:
                log.warning("rate limit: Redis unreachable, limiting on this replica", extra={"error": str(exc)})
            try:
                self.local.check(caller)
            except RateLimitedError:
                self.refused += 1
                raise
            return
        if wait_us > 0:
            self.refused += 1
            raise _limited(self.rate, wait_us / 1e6)


def _limited(rate: float, wait_s: float) -> RateLimitedError:
    return RateLimitedError(
        f"rate limit of {rate:g} requests/s exceeded; retry in {wait_s:.2f} s", retry_after_s=wait_s
    )
