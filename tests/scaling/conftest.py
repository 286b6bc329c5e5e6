"""Fixtures for scaling out: a real Redis Cluster (tests/cluster.py: three masters, three replicas) shared
by the tests that only read and write through it; a test that kills a node starts its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.redis_client import redis_client
from services.common.settings import CommonSettings
from tests.cluster import RedisClusterNodes
from tests.conftest import drop_prefix

PARTITIONS = 4


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes(masters=3, replicas=1) as nodes:
        yield nodes


@pytest.fixture
def cluster_settings(cluster: RedisClusterNodes, prefix: str) -> CommonSettings:
    return CommonSettings(
        redis_url=cluster.url,
        redis_cluster=True,
        partitions=PARTITIONS,
        stream_prefix=prefix,
        block_ms=100,
        claim_idle_ms=500,
        heartbeat_interval_s=0.2,
    )


@pytest.fixture
async def cluster_redis(cluster_settings: CommonSettings, prefix: str) -> AsyncIterator[Redis]:
    client = redis_client(cluster_settings.redis_url, cluster=True)  # as the services connect
    await client.ping()  # discovers the nodes
    yield client
    await drop_prefix(client, prefix)
    await client.aclose()


@pytest.fixture
def cluster_bus(cluster_redis: Redis, cluster_settings: CommonSettings) -> Bus:
    return Bus(cluster_redis, cluster_settings)
