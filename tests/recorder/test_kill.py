"""``python -m services.recorder`` killed with SIGKILL mid-session and restarted: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.contracts import AuditEvent
from services.common.settings import CommonSettings
from services.recorder.store import Store
from tests.recorder.conftest import expected_history, session_events
from tests.recorder.test_service import equal_to, pending, publish, zero
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def start(settings: CommonSettings, database_url: str, instance: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "UQ_REDIS_URL": settings.redis_url,
        "UQ_STREAM_PREFIX": settings.stream_prefix,
        "UQ_DATABASE_URL": database_url,
        "UQ_INSTANCE": instance,
        "UQ_RECORDER_BATCH_SIZE": "16",
        "UQ_BLOCK_MS": "100",
        "UQ_CLAIM_IDLE_MS": "500",
        "UQ_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "services.recorder"], cwd=ROOT, env=env, stderr=subprocess.PIPE)


@pytest.mark.parametrize(
    "restarted_as",
    [
        pytest.param("recorder-a", id="same-name"),  # reads its own pending entries first
        pytest.param("recorder-b", id="another-instance"),  # takes them over with XAUTOCLAIM
    ],
)
async def test_killed_mid_session_and_restarted_nothing_lost_nothing_doubled(
    bus: Bus, redis: Redis, store: Store, settings: CommonSettings, database_url: str, restarted_as: str
) -> None:
    events = session_events("kill-1", n_tokens=3000)
    audits = [e for e in events if isinstance(e, AuditEvent)]
    first, rest = events[:2] + audits[:2000], audits[2000:] + events[2 + len(audits) :]
    await publish(bus, first)

    first_run = start(settings, database_url, "recorder-a")
    try:

        async def some_recorded() -> bool:
            records, _ = await store.list_sessions()
            return bool(records) and records[0].tokens > 0

        await eventually(some_recorded, what="some tokens recorded", timeout_s=30)
        first_run.send_signal(signal.SIGKILL)
    finally:
        first_run.wait(10)
        assert first_run.stderr is not None
        first_run.stderr.close()
    assert first_run.returncode == -signal.SIGKILL
    at_kill, _ = await store.list_sessions()
    await publish(bus, rest)

    second_run = start(settings, database_url, restarted_as)
    try:
        await eventually(equal_to(store, expected_history(events)), what="the session recorded", timeout_s=90)
        await eventually(lambda: zero(pending(redis, bus, "recorders")), what="nothing pending", timeout_s=30)
        second_run.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second_run.wait, 20) == 0
    finally:
        if second_run.poll() is None:
            second_run.kill()
            second_run.wait(10)
        assert second_run.stderr is not None
        errors = second_run.stderr.read().decode()
        second_run.stderr.close()

    assert 0 < at_kill[0].tokens < 2000  # killed mid-session
    assert await store.get_session("kill-1") == expected_history(events)
    assert await redis.xlen(bus.key("dead")) == 0, errors
