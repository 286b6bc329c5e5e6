"""docs/streams.md's consumer example, run as documented against a real Redis: killed mid-batch, restarted.

The code is taken from the docs as it stands (the first ``python`` block under "Attaching a consumer
of your own") and run as a script in a subprocess. The first run is SIGKILLed by its own hand while it
handles its fourth entry (``xack`` is wrapped: handled, not acknowledged); the restart, under the same
consumer name, must handle what the first run left pending, then the rest, from both streams.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.common.docgen import DOCS
from tests.waiting import wait_until

GROUP, CONSUMER = "my-pager", "worker-1"
CRASH_AT_ACK = 4  # entries go out in publish order: the 4th is a critical alert, which prints
CRASHING = """
import os, signal, redis
_xack, _acks = redis.Redis.xack, [0]
def xack(self, *args, **kwargs):
    _acks[0] += 1
    if _acks[0] == {crash_at}:
        os.kill(os.getpid(), signal.SIGKILL)  # a crash: this entry was handled, never acknowledged
    return _xack(self, *args, **kwargs)
redis.Redis.xack = xack
"""


def documented_consumer() -> str:
    text = (DOCS / "streams.md").read_text()
    section = text.split("## Attaching a consumer of your own", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def r(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def start(script: Path, redis_url: str, prefix: str) -> subprocess.Popen[str]:
    env = {**os.environ, "UQ_REDIS_URL": redis_url, "UQ_STREAM_PREFIX": prefix}
    return subprocess.Popen([sys.executable, "-u", str(script)], env=env, stdout=subprocess.PIPE, text=True)


def groups_exist(r: redis.Redis, streams: list[str]) -> bool:
    try:
        return all(any(g["name"].decode() == GROUP for g in r.xinfo_groups(s)) for s in streams)
    except redis.ResponseError:  # no such stream yet
        return False


def pending(r: redis.Redis, stream: str) -> list[tuple[str, bytes]]:
    return [(stream, p["message_id"]) for p in r.xpending_range(stream, GROUP, "-", "+", 1000, consumername=CONSUMER)]


Entry = tuple[str, bytes]  # stream, id: two streams may hand out the same id


def publish(r: redis.Redis, prefix: str) -> dict[Entry, str | None]:
    """Entries on both streams (some for the handler, some not, one foreign), in publish order: each
    one and the line the handler prints for it (None: nothing)."""
    alerts, audits = f"{prefix}alerts", f"{prefix}audits"
    lines: dict[Entry, str | None] = {}
    for seq in range(6):
        critical = seq % 2 == 1
        alert = {"type": "alert", "session_id": "s1", "seq": seq, "severity": "critical" if critical else "info"}
        alert |= {"token_seq": seq * 3, "message": f"m{seq}", "rule": "R", "token_text": "t", "schema_version": 1}
        lines[alerts, r.xadd(alerts, {"data": json.dumps(alert)})] = f"ALERT s1 {seq * 3} m{seq}" if critical else None
    lines[alerts, r.xadd(alerts, {"note": "someone else's entry, without data"})] = None
    for seq in range(20):
        prob = 0.01 if seq % 3 == 0 else 0.9
        audit = {"type": "audit", "session_id": "s2", "seq": seq, "text": f" w{seq}", "metrics": {"prob": prob}}
        lines[audits, r.xadd(audits, {"data": json.dumps(audit)})] = (
            f"UNLIKELY s2 {seq} ' w{seq}'" if prob < 0.05 else None
        )
    return lines


def test_the_documented_consumer_picks_up_its_pending_entries_after_a_crash(
    r: redis.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    code = documented_consumer()
    plain, crashing = tmp_path / "consumer.py", tmp_path / "crashing.py"
    plain.write_text(code)
    crashing.write_text(CRASHING.format(crash_at=CRASH_AT_ACK) + code)
    streams = [f"{prefix}alerts", f"{prefix}audits"]

    first = start(crashing, redis_url, prefix)
    wait_until(lambda: groups_exist(r, streams), what="the consumer groups", timeout_s=20)
    lines = publish(r, prefix)
    ids = list(lines)
    first_out, _ = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    held = pending(r, streams[0]) + pending(r, streams[1])  # handed to it, never acknowledged
    assert held[0] == ids[CRASH_AT_ACK - 1]  # the entry it died on is among them
    acked = ids[: CRASH_AT_ACK - 1]  # all alerts were published first, and each read gives alerts first

    second = start(plain, redis_url, prefix)
    try:
        wait_until(
            lambda: not any(pending(r, s) for s in streams),
            what="the restarted consumer to acknowledge everything",
            timeout_s=20,
        )
        wait_until(
            lambda: all(g["lag"] == 0 for s in streams for g in r.xinfo_groups(s)),
            what="nothing left unread",
            timeout_s=20,
        )
    finally:
        second.terminate()
        second_out, _ = second.communicate(timeout=30)

    def printed(entries: list[Entry]) -> list[str]:
        return [line for e in entries if (line := lines[e]) is not None]

    assert first_out.splitlines() == printed(ids[:CRASH_AT_ACK])  # it died handling the fourth entry
    again = second_out.splitlines()
    assert again[0] == lines[ids[CRASH_AT_ACK - 1]]  # handled again first: at-least-once
    for stream, kind in zip(streams, ("ALERT", "UNLIKELY"), strict=True):  # per stream: pending first, then new
        rest = [e for e in ids if e[0] == stream and e not in held and e not in acked]
        assert [line for line in again if line.startswith(kind)] == printed([e for e in held if e[0] == stream] + rest)
    assert set(again) | set(printed(acked)) == set(printed(ids))  # nothing lost, both streams read
