"""Two auditor processes in one consumer group share the work, and no token is audited twice."""

from __future__ import annotations

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
from tests.waiting import eventually

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


@pytest.mark.slow
async def test_two_processes_share_the_work(redis: Redis, bus: Bus, settings: CommonSettings) -> None:
    procs = [start_auditor(settings, name) for name in ("auditor-a", "auditor-b")]
    try:

        async def both_ready() -> bool:
            beats = await read_heartbeats(redis, settings)
            return sum(b["status"] == "ready" for b in beats if b["service"] == "auditor") == 2

        await eventually(both_ready, what="both auditors ready", timeout_s=60, interval_s=0.1)
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

        async def all_audited() -> bool:  # every token read (no lag) and acknowledged: no audit can follow
            [group] = await redis.xinfo_groups(bus.key("tokens"))
            return await redis.xlen(bus.key("audits")) >= 300 and (group["pending"], group["lag"]) == (0, 0)

        await eventually(all_audited, what="all 320 tokens audited or dropped", timeout_s=60, interval_s=0.1)
        audited_ns = time.time_ns()

        async def fresh_beats() -> bool:  # the counters below come from heartbeats written after that
            beats = [b for b in await read_heartbeats(redis, settings) if b["service"] == "auditor"]
            return len(beats) == 2 and all(int(b["ts_ns"]) > audited_ns for b in beats)

        await eventually(fresh_beats, what="a heartbeat from each auditor after the last audit")
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
