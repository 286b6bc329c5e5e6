"""``python -m services.alerter`` as a process: stops at start on a broken rules file; runs and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.common.bus import Bus
from services.common.codec import decode
from tests.alerter.factory import audit
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "UQ_REDIS_URL": redis_url,
        "UQ_STREAM_PREFIX": prefix,
        "UQ_CONNECT_RETRIES": "0",
        "UQ_LOG_FORMAT": "text",
        **extra,
    }


def start(redis_url: str, prefix: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.alerter"],
        cwd=ROOT,
        env=env(redis_url, prefix, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_broken_rules_file_stops_the_alerter_at_start(tmp_path: Path, redis_url: str, prefix: str) -> None:
    file = tmp_path / "rules.yaml"
    file.write_text("rules:\n  - name: QUANTUM_UNCERTAINTY\n    metric: hbar\n    operator: '>'\n    threshold: 3\n")
    proc = start(redis_url, prefix, UQ_RULES_FILE=str(file))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"rules file {file}: rule #1 (QUANTUM_UNCERTAINTY): metric: unknown metric 'hbar'" in err


@pytest.mark.slow
def test_unknown_python_rule_stops_the_alerter_at_start(redis_url: str, prefix: str) -> None:
    proc = start(redis_url, prefix, UQ_PYTHON_RULES='["mypkg.rules:Nope"]')
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "rule 'mypkg.rules:Nope': cannot import module 'mypkg.rules'" in err


@pytest.mark.slow
async def test_the_service_alerts_and_stops_cleanly(redis: Redis, bus: Bus, redis_url: str, prefix: str) -> None:
    proc = start(
        redis_url,
        prefix,
        UQ_RULES_FILE=str(ROOT / "examples" / "rules.yaml"),
        UQ_BUILTIN_RULES="[]",
    )
    try:
        await bus.publish("audits", audit(0, " quantum", hbar_s=3.5))

        async def two_alerts() -> list[tuple[bytes, dict[bytes, bytes]]]:
            assert proc.poll() is None, f"the alerter exited with {proc.returncode}"
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(bus.key("alerts"))
            return entries if len(entries) >= 2 else []

        entries = await eventually(two_alerts, what="the alert and the risk change", timeout_s=60, interval_s=0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    events = [decode("alerts", fields) for _, fields in entries]
    assert [e.type for e in events] == ["alert", "risk"]
    assert events[0].type == "alert" and events[1].type == "risk"
    assert (events[1].previous, events[1].level) == ("safe", "warning")
    assert (events[0].rule, events[0].severity) == ("QUANTUM_UNCERTAINTY", "critical")
    assert events[0].message == 'token " quantum" (#0): ℏₛ = 3.50 above 3.00 in a quantum physics term'
