"""API keys and the per-key rate limit (token bucket), shared by REST and WebSocket."""

from __future__ import annotations

import hmac
import math
import time

from services.gateway.errors import RateLimitedError, UnauthorizedError
from services.gateway.settings import GatewaySettings


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
    """A token bucket per caller: ``rate`` requests per second, bursts up to ``burst``. Per replica."""

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
            raise RateLimitedError(
                f"rate limit of {self.rate:g} requests/s exceeded; retry in {wait:.2f} s", retry_after_s=wait
            )
        if len(self._buckets) >= self.max_callers and caller not in self._buckets:
            self._buckets.clear()
        self._buckets[caller] = (tokens - 1.0, now)

    @staticmethod
    def retry_after_header(retry_after_s: float) -> str:
        return str(max(1, math.ceil(retry_after_s)))
