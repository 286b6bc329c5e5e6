"""Two auditor processes in one consumer group share the work, and no token is audited twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.codec import decode
from services.common.health import read_heartbeats
from services.common.settings import CommonSettings
from tests.auditor.factory import full_token, top_k_token

ROOT = Path(__file__).resolve().parents[2]


def start_auditor(settings: CommonSettings, name: str) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "UQ_REDIS_URL": settings.redis_url,
        "UQ_STREAM_PREFIX": settings.stream_prefix,
        "UQ_INSTANCE": name,
        "UQ_BATCH_SIZE": "4",
        "UQ_BLOCK_MS": "100",
        "UQ_HEARTBEAT_INTERVAL_S": "0.2",
        "UQ_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "services.auditor"], cwd=ROOT, env=env, stderr=subprocess.PIPE)


async def wait_for(condition_timeout_s: float, check: object) -> None:
    deadline = time.monotonic() + condition_timeout_s
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
async def test_two_processes_share_the_work(redis: Redis, bus: Bus, settings: CommonSettings) -> None:
    procs = [start_auditor(settings, name) for name in ("auditor-a", "auditor-b")]
    try:

        async def both_ready() -> bool:
            beats = await read_heartbeats(redis, settings)
            return sum(b["status"] == "ready" for b in beats if b["service"] == "auditor") == 2

        await wait_for(60, both_ready)
        rng = np.random.default_rng(0)
        tokens = []
        for seq in range(300):
            if seq % 3:
                tokens.append(full_token(f"s{seq % 5}", seq, rng.standard_normal(32_000), int(rng.integers(32_000))))
            else:
                tokens.append(top_k_token(f"s{seq % 5}", seq, [0.5, 0.3, 0.1], emitted=seq % 3))
        for start in range(0, len(tokens), 25):
            await bus.publish_many(("tokens", t) for t in tokens[start : start + 25])
        tokens += tokens[:20]  # a producer retrying: the same (session, seq) again
        await bus.publish_many(("tokens", t) for t in tokens[-20:])

        async def all_audited() -> bool:
            pending = await redis.xpending(bus.key("tokens"), "auditors")
            return await redis.xlen(bus.key("audits")) >= 300 and pending["pending"] == 0

        await wait_for(60, all_audited)
        await asyncio.sleep(0.5)  # anything extra would show up now
        audits = [decode("audits", f) for _id, f in await redis.xrange(bus.key("audits"))]
        keys = Counter((a.session_id, a.seq) for a in audits)
        assert len(audits) == 300
        assert set(keys.values()) == {1}
        assert set(keys) == {(t.session_id, t.seq) for t in tokens}
        consumers = {c["name"].decode(): c for c in await redis.xinfo_consumers(bus.key("tokens"), "auditors")}
        assert set(consumers) == {"auditor-a", "auditor-b"}
        beats = {b["instance"]: b["details"] for b in await read_heartbeats(redis, settings)}
        done = {name: sum(beats[name]["audited"].values()) for name in ("auditor-a", "auditor-b")}
        # Auditors do not look up the dedupe marks before computing (they are stateless): a repeated
        # token is audited again, and the commit drops its audit and counts it as a duplicate.
        duplicates = sum(beats[name]["consumer"]["duplicates"] for name in ("auditor-a", "auditor-b"))
        assert duplicates == 20, repr(beats)
        assert sum(done.values()) == 320
        assert min(done.values()) > 0, done  # both took a share
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err.decode()
