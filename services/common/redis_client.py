"""The Redis client every service uses: redis-py's asyncio client, with commands packed by hiredis.

redis-py's synchronous client packs commands with hiredis when it is installed; its asyncio client
always packs them in Python, argument by argument. For the bus's commit script (hundreds of
arguments per batch) that Python packing was the largest single cost of a top-k audit after JSON
parsing: 5.4 µs per token against 1.2 µs with ``hiredis.pack_command`` (bench/auditor.py). The
connection classes below swap in hiredis's packer and keep everything else of redis-py's.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection


class _HiredisPacking(AbstractConnection):
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


def redis_client(url: str, **kwargs: Any) -> Redis:
    """``Redis.from_url(url, **kwargs)`` whose connections pack commands with hiredis."""
    client = Redis.from_url(url, **kwargs)
    pool = client.connection_pool
    pool.connection_class = _FASTER.get(pool.connection_class, pool.connection_class)
    return client
