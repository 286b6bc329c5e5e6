"""Service runner: fix-it message when Redis is missing, heartbeat while running, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.common.errors import RedisUnavailableError
from services.common.health import read_heartbeats
from services.common.runner import connect
from services.common.settings import CommonSettings
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
DEMO = """
import asyncio
from services.common.runner import run_service
from services.common.settings import CommonSettings

async def main(ctx):
    ctx.details["demo"] = True
    await ctx.stop.wait()

run_service("demo", CommonSettings, main)
"""


async def test_connect_gives_a_fix_it_message() -> None:
    settings = CommonSettings(redis_url="redis://127.0.0.1:1/0", connect_retries=1, connect_retry_delay_s=0.01)
    with pytest.raises(RedisUnavailableError) as caught:
        await connect(settings)
    message = str(caught.value)
    assert "redis://127.0.0.1:1/0" in message and "UQ_REDIS_URL" in message and "redis-server" in message


def test_service_exits_2_with_the_message_when_redis_is_missing() -> None:
    env = {**os.environ, "UQ_REDIS_URL": "redis://127.0.0.1:1/0", "UQ_CONNECT_RETRIES": "0"}
    proc = subprocess.run([sys.executable, "-c", DEMO], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Redis is not reachable at redis://127.0.0.1:1/0" in proc.stderr


def test_service_exits_2_on_invalid_settings() -> None:
    env = {**os.environ, "UQ_BATCH_SIZE": "-3"}
    proc = subprocess.run([sys.executable, "-c", DEMO], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "invalid settings" in proc.stderr and "batch_size" in proc.stderr


async def test_heartbeat_logs_and_sigterm(redis: Redis, settings: CommonSettings, redis_url: str, prefix: str) -> None:
    env = {
        **os.environ,
        "UQ_REDIS_URL": redis_url,
        "UQ_STREAM_PREFIX": prefix,
        "UQ_HEARTBEAT_INTERVAL_S": "0.2",
        "UQ_INSTANCE": "demo-1",
    }
    proc = subprocess.Popen([sys.executable, "-c", DEMO], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        beats = await eventually(lambda: read_heartbeats(redis, settings), what="the demo's first heartbeat")
        assert [(b["service"], b["instance"], b["details"]) for b in beats] == [("demo", "demo-1", {"demo": True})]
        assert 0 <= float(beats[0]["age_s"]) < 5  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"service started", "service stopped"} <= {line["msg"] for line in lines}
    assert all(line["service"] == "demo" for line in lines)
    assert await read_heartbeats(redis, settings) == []  # removed on clean shutdown
