"""API keys and the token-bucket rate limit, in one process and shared in Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from services.gateway.errors import RateLimitedError, UnauthorizedError
from services.gateway.security import Authenticator, RateLimiter, SharedRateLimiter
from services.gateway.settings import GatewaySettings
from tests.stack import free_port


def test_keys_required_by_default_beyond_loopback() -> None:
    assert GatewaySettings(host="127.0.0.1").auth_required is False
    assert GatewaySettings(host="::1").auth_required is False
    assert GatewaySettings(host="localhost").auth_required is False
    assert GatewaySettings(host="0.0.0.0").auth_required is True
    assert GatewaySettings(host="10.1.2.3").auth_required is True
    assert GatewaySettings(host="0.0.0.0", auth="off").auth_required is False
    assert GatewaySettings(host="127.0.0.1", auth="on").auth_required is True


def test_identify_with_keys_required() -> None:
    auth = Authenticator(GatewaySettings(auth="on", api_keys="alpha, beta"))
    assert auth.identify("Bearer beta", None, "1.2.3.4") == "key:1"
    assert auth.identify(None, "alpha", "1.2.3.4") == "key:0"
    with pytest.raises(UnauthorizedError, match="required"):
        auth.identify(None, None, "1.2.3.4")
    with pytest.raises(UnauthorizedError, match="not valid"):
        auth.identify("Bearer gamma", None, "1.2.3.4")
    with pytest.raises(UnauthorizedError):
        auth.identify("Basic alpha", None, "1.2.3.4")


def test_identify_without_keys_is_by_address() -> None:
    auth = Authenticator(GatewaySettings(auth="off", api_keys="alpha"))
    assert auth.identify(None, None, "1.2.3.4") == "ip:1.2.3.4"
    assert auth.identify("Bearer alpha", None, "1.2.3.4") == "key:0"
    assert auth.identify("Bearer wrong", None, "1.2.3.4") == "ip:1.2.3.4"


def test_rate_limit_allows_the_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    for _ in range(3):
        limiter.check("k", now=0.0)
    with pytest.raises(RateLimitedError) as err:
        limiter.check("k", now=0.0)
    assert err.value.retry_after_s == pytest.approx(0.5)
    assert RateLimiter.retry_after_header(err.value.retry_after_s) == "1"
    limiter.check("other", now=0.0)  # per caller
    limiter.check("k", now=0.5)  # one token refilled
    with pytest.raises(RateLimitedError):
        limiter.check("k", now=0.5)


def test_rate_zero_disables() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    for _ in range(100):
        limiter.check("k", now=0.0)


def shared(redis: Redis, prefix: str, rate: float, burst: int) -> SharedRateLimiter:
    return SharedRateLimiter(
        redis, GatewaySettings(stream_prefix=prefix, rate_limit_per_s=rate, rate_limit_burst=burst)
    )


async def test_the_shared_limit_is_one_bucket_for_every_replica(redis: Redis, prefix: str) -> None:
    one, two = shared(redis, prefix, 2.0, 3), shared(redis, prefix, 2.0, 3)  # two gateways, one Redis
    await one.check("k")
    await two.check("k")
    await one.check("k")
    with pytest.raises(RateLimitedError) as err:
        await two.check("k")  # the burst is spent, whichever replica is asked
    assert 0.3 < err.value.retry_after_s <= 0.5
    await two.check("other")  # per caller
    assert (one.refused, two.refused) == (0, 1)
    # the bucket is a key of this deployment's prefix that expires once full again
    ttl = await redis.pttl(f"{prefix}ratelimit:k")
    assert 0 < ttl <= 1_600
    await asyncio.sleep(err.value.retry_after_s + 0.02)  # the limit is a rate: one request's worth must refill
    await one.check("k")
    with pytest.raises(RateLimitedError):
        await one.check("k")


async def test_the_shared_limit_is_off_at_rate_zero(redis: Redis, prefix: str) -> None:
    limiter = shared(redis, prefix, 0, 1)
    for _ in range(50):
        await limiter.check("k")
    assert await redis.exists(f"{prefix}ratelimit:k") == 0


async def test_without_redis_each_replica_limits_on_its_own() -> None:
    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    limiter = shared(down, "uq:", 1.0, 2)
    await limiter.check("k")
    await limiter.check("k")
    with pytest.raises(RateLimitedError):
        await limiter.check("k")
    assert (limiter.local_checks, limiter.refused) == (3, 1)
    await down.aclose()
