"""The Redis client every service uses: redis-py's asyncio client, with commands packed by hiredis.

redis-py's synchronous client packs commands with hiredis when it is installed; its asyncio client
always packs them in Python, argument by argument. For the bus's commit script (hundreds of
arguments per batch) that Python packing was the largest single cost of a top-k audit after JSON
parsing: 5.4 µs per token against 1.2 µs with ``hiredis.pack_command`` (bench/auditor.py). The
connection classes below swap in hiredis's packer and keep everything else of redis-py's.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlparse

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError


class _HiredisPacking(AbstractConnection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        # redis-py 8.1 (redis/redis-py#4287): writing to a connection the peer has closed (a Redis
        # node killed, a cluster failover) raises asyncio's transport internals, AttributeError or
        # TypeError about None, instead of ConnectionError, and so escapes every retry. Said plainly.
        try:
            await super().send_packed_command(command, check_health)
        except (AttributeError, TypeError) as exc:
            if "NoneType" not in str(exc):
                raise
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"connection lost while writing: {exc}") from exc

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        # As redis-py does: a command name with spaces ("CONFIG GET") is several arguments.
        if isinstance(head, str):
            args = (*head.encode().split(), *args[1:])
        elif isinstance(head, bytes) and b" " in head:
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # bytearray, memoryview, or a bad type: redis-py's packer (and its DataError)
            return super().pack_command(*args)


class HiredisConnection(_HiredisPacking, Connection):
    """TCP connection packing with hiredis."""


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    """TLS connection packing with hiredis."""


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    """Unix-socket connection packing with hiredis."""


_FASTER: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}


#: Options of redis-py's single-node client that its cluster client does not take.
_NOT_FOR_CLUSTER = ("retry_on_timeout",)


def cluster_addresses(url: str) -> tuple[str, list[tuple[str, int]]]:
    """``UQ_REDIS_URL`` on a cluster: the first URL (credentials, options) and the further startup
    nodes' ``(host, port)``, from ``redis://a:6379,b:6379`` (``host:port`` or URLs after the first)."""
    first, *more = (part.strip() for part in url.split(",") if part.strip())
    nodes = []
    for address in more:
        parsed = urlparse(address if "//" in address else f"redis://{address}")
        if not parsed.hostname:
            raise ValueError(f"not a Redis node address: {address!r}")
        nodes.append((parsed.hostname, parsed.port or 6379))
    return first, nodes


def redis_client(url: str, *, cluster: bool = False, pool_timeout_s: float | None = None, **kwargs: Any) -> Redis:
    """``Redis.from_url(url, **kwargs)`` whose connections pack commands with hiredis.

    ``pool_timeout_s``: a command that finds all ``max_connections`` busy waits that long for one
    (redis-py's ``BlockingConnectionPool``) instead of failing at once with "Too many connections",
    as redis-py's default pool of 100 did for the gateway under 100 concurrent pushes.

    ``cluster``: redis-py's cluster client instead (``RedisCluster.from_url``: ``url`` names any one
    node, or several separated by commas, ``redis://a:6379,b:6379,c:6379``, so that a service starts
    while one of them is down; the credentials and options are the first URL's; the others are
    discovered; commands go to the node of their key's slot, pipelines are split by node). It has the same command API, so the services use it as a ``Redis``; every
    multi-key command and script of theirs stays within one slot (docs/streams.md, "Partitions").
    Its nodes' connections are the same hiredis-packing ones.
    """
    if cluster:
        options = {k: v for k, v in kwargs.items() if k not in _NOT_FOR_CLUSTER}
        first, more = cluster_addresses(url)
        if more:
            options["startup_nodes"] = [ClusterNode(host, port) for host, port in more]
        cluster_client = RedisCluster.from_url(first, **options)
        # Its nodes take their connection class from the shared connection options (set to redis-py's
        # own in its constructor); nodes discovered later are made from them too.
        nodes = cluster_client.nodes_manager
        plain = nodes.connection_kwargs.get("connection_class", Connection)
        faster = _FASTER.get(plain, plain)
        nodes.connection_kwargs["connection_class"] = faster
        for node in (*nodes.startup_nodes.values(), *nodes.nodes_cache.values()):
            node.connection_class = faster
        return cast(Redis, cluster_client)
    if pool_timeout_s is not None:
        client = Redis.from_pool(BlockingConnectionPool.from_url(url, timeout=pool_timeout_s, **kwargs))
    else:
        client = Redis.from_url(url, **kwargs)
    pool = client.connection_pool
    pool.connection_class = _FASTER.get(pool.connection_class, pool.connection_class)
    return client
