"""Shared fixtures: a real Redis with a private key prefix per test, cleaned up afterwards.

Redis comes from ``UQ_REDIS_URL``, else the local one at 127.0.0.1:6379; where neither answers and
Docker runs, a throwaway container (testcontainers) is started instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.redis_client import redis_client
from services.common.settings import CommonSettings

LOCAL_REDIS = "redis://127.0.0.1:6379/0"

# The default engine, `auto`, runs the embedded model on llama.cpp where llama-cpp-python is installed.
# Most tests (and the services and scripts they start) check the transformers engine, so they pin it;
# the tests of the llama.cpp engine and of `auto` name their engine.
os.environ["UQ_ENGINE"] = "transformers"


def _answers(url: str) -> bool:
    try:
        return bool(sync_redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("UQ_REDIS_URL", LOCAL_REDIS)
    if _answers(url):
        yield url
        return
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        pytest.fail(f"no Redis at {url}: start one (redis-server) or set UQ_REDIS_URL")
    with RedisContainer() as container:  # pragma: no cover - only where Docker runs
        yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


@pytest.fixture
def prefix() -> str:
    return f"uqtest-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def settings(redis_url: str, prefix: str) -> CommonSettings:
    return CommonSettings(
        redis_url=redis_url, stream_prefix=prefix, block_ms=100, claim_idle_ms=500, heartbeat_interval_s=0.2
    )


async def drop_prefix(client: Redis, prefix: str) -> None:
    """Delete a test's keys (on a cluster, scan_iter visits every node and delete splits by slot)."""
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def redis(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url)  # as the services connect
    yield client
    await drop_prefix(client, prefix)
    await client.aclose()


@pytest.fixture
def bus(redis: Redis, settings: CommonSettings) -> Bus:
    return Bus(redis, settings)
