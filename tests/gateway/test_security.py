"""API keys and the token-bucket rate limit."""

from __future__ import annotations

import pytest

from services.gateway.errors import RateLimitedError, UnauthorizedError
from services.gateway.security import Authenticator, RateLimiter
from services.gateway.settings import GatewaySettings


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
