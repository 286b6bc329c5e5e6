"""``UQ_REDIS_URL`` on a cluster may name several startup nodes, so a service starting while the first
is down connects through another (the async client the services use and the healthcheck's)."""

from __future__ import annotations

import pytest

from services.common import healthcheck
from services.common.redis_client import cluster_addresses, redis_client
from services.common.settings import CommonSettings
from tests.cluster import RedisClusterNodes
from tests.stack import free_port


def test_the_addresses_after_the_first_are_host_port_or_urls() -> None:
    assert cluster_addresses("redis://:pw@a:7000/0") == ("redis://:pw@a:7000/0", [])
    assert cluster_addresses("rediss://a:7000, b:7001 ,redis://c") == ("rediss://a:7000", [("b", 7001), ("c", 6379)])
    with pytest.raises(ValueError, match="not a Redis node"):
        cluster_addresses("redis://a:7000,:7001")


async def test_a_service_starts_while_its_first_startup_node_is_down(cluster: RedisClusterNodes) -> None:
    live = cluster.url.removeprefix("redis://").removesuffix("/0")
    url = f"redis://127.0.0.1:{free_port()}/0,{live}"  # nothing answers the first address
    client = redis_client(url, cluster=True)
    try:
        await client.set("startup-nodes:{x}", b"1")
        assert await client.get("startup-nodes:{x}") == b"1"
        await client.delete("startup-nodes:{x}")
    finally:
        await client.aclose()
    settings = CommonSettings(redis_url=url, redis_cluster=True, stream_prefix="startup-nodes:")
    verdict = healthcheck.check(settings, "auditor")
    assert "not reachable" not in verdict.message  # it reached the cluster; no auditor is there
