"""The services' Redis client: hiredis packs commands exactly as redis-py's own packer would."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError, MaxConnectionsError

from services.common.redis_client import HiredisConnection, HiredisSSLConnection, HiredisUnixConnection, redis_client

CASES: list[tuple[object, ...]] = [
    ("SET", "key", "value"),
    ("SET", b"key", b"\x00\xff binary"),
    ("XADD", "s", "MAXLEN", "~", 1000, "*", b"data", '{"é": 1.5}'),
    ("EVALSHA", "abc", 0, -7, 10**20, 0.1 + 0.2, 1.5e-300),
    ("CONFIG GET", "maxmemory"),  # a command name with a space is two arguments
    (b"CLIENT LIST",),
    ("SET", "key", bytearray(b"ab")),  # not hiredis's: redis-py's packer takes it
    ("SET", "key", memoryview(b"ab")),
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: str(a[0]))
def test_packing_matches_redis_py(args: tuple[object, ...]) -> None:
    ours = b"".join(HiredisConnection().pack_command(*args))
    theirs = b"".join(Connection().pack_command(*args))
    assert ours == theirs


@pytest.mark.parametrize("bad", [None, True, 1j])
def test_bad_argument_types_raise_redis_pys_error(bad: object) -> None:
    with pytest.raises(DataError):
        HiredisConnection().pack_command("SET", "key", bad)


@pytest.mark.parametrize(
    ("url", "cls"),
    [
        ("redis://127.0.0.1:6379/0", HiredisConnection),
        ("rediss://127.0.0.1:6380/0", HiredisSSLConnection),
        ("unix:///tmp/redis.sock", HiredisUnixConnection),
    ],
)
def test_every_scheme_gets_the_hiredis_packer(url: str, cls: type) -> None:
    assert redis_client(url).connection_pool.connection_class is cls


async def test_round_trip(redis: Redis, prefix: str) -> None:
    assert isinstance(redis.connection_pool.connection_class(), HiredisConnection)
    key = f"{prefix}packing"
    await redis.set(key, "é" * 3)
    assert await redis.get(key) == "é".encode() * 3
    script = redis.register_script("return {ARGV[1], ARGV[2], #ARGV}")
    assert await script(args=[1.5, b"\x00x", *range(500)]) == [b"1.5", b"\x00x", 502]


async def test_more_concurrent_commands_than_connections_wait_for_one(redis_url: str, prefix: str) -> None:
    """The services' pool waits for a free connection (redis-py's default pool fails at once with "Too
    many connections": the gateway answered 503 to pushes beyond 100 at a time)."""
    key = f"{prefix}never-pushed"
    waiting = redis_client(redis_url, max_connections=2, pool_timeout_s=10)
    failing = redis_client(redis_url, max_connections=2)
    try:
        assert isinstance(waiting.connection_pool.connection_class(), HiredisConnection)
        # each BLPOP holds its connection for 0.1 s: 10 of them through 2 connections take turns
        assert await asyncio.gather(*(waiting.blpop([key], timeout=0.1) for _ in range(10))) == [None] * 10
        with pytest.raises(MaxConnectionsError):
            await asyncio.gather(*(failing.blpop([key], timeout=0.1) for _ in range(10)))
    finally:
        await waiting.aclose()
        await failing.aclose()
