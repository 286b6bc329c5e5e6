"""The heartbeat probe: fresh, stale, missing, other hosts, --any, Redis down; as a function and a CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.common.health import Heartbeat
from services.common.healthcheck import check, judge
from services.common.settings import CommonSettings
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
NOW = 1_000_000_000_000_000_000


def beat(instance: str, age_s: float, status: str = "ready") -> dict[str, object]:
    return {"service": "auditor", "instance": instance, "ts_ns": NOW - int(age_s * 1e9), "status": status}


def test_judge_takes_the_named_instance_only() -> None:
    beats = [beat("auditor-1", 0.5), beat("auditor-2", 30.0)]
    ok = judge(beats, "auditor", instance="auditor-1", host=HOST, any_instance=False, max_age_s=6, now_ns=NOW)
    assert ok.ok and ok.message == "auditor: auditor-1 beat 0.5 s ago (status ready)"
    stale = judge(beats, "auditor", instance="auditor-2", host=HOST, any_instance=False, max_age_s=6, now_ns=NOW)
    assert not stale.ok
    assert "is 30.0 s old (limit 6.0 s)" in stale.message
    missing = judge(beats, "auditor", instance="auditor-3", host=HOST, any_instance=False, max_age_s=6, now_ns=NOW)
    assert not missing.ok
    assert "no heartbeat from instance 'auditor-3'" in missing.message
    assert "instances seen: auditor-1, auditor-2" in missing.message


def test_judge_without_instance_matches_this_host_and_not_a_longer_one() -> None:
    beats = [beat("pod-a-7", 0.1), beat("pod-ab-7", 0.1)]
    mine = judge(beats, "auditor", instance="", host="pod-a", any_instance=False, max_age_s=6, now_ns=NOW)
    assert mine.ok and "pod-a-7" in mine.message
    other = judge(beats, "auditor", instance="", host="pod-b", any_instance=False, max_age_s=6, now_ns=NOW)
    assert not other.ok and "an instance on host 'pod-b'" in other.message


def test_judge_any_picks_the_freshest() -> None:
    beats = [beat("x-1", 5.0), beat("y-1", 1.0, status="ok")]
    verdict = judge(beats, "auditor", instance="z", host=HOST, any_instance=True, max_age_s=6, now_ns=NOW)
    assert verdict == judge(beats, "auditor", instance="", host="", any_instance=True, max_age_s=6, now_ns=NOW)
    assert verdict.ok and verdict.message == "auditor: y-1 beat 1.0 s ago (status ok)"
    assert not judge([], "auditor", instance="", host=HOST, any_instance=True, max_age_s=6, now_ns=NOW).ok


async def test_check_reads_real_heartbeats(settings: CommonSettings, redis: Redis) -> None:
    await Heartbeat(redis, settings, "alerter", f"{HOST}-4242").beat()
    await Heartbeat(redis, settings, "auditor", "auditor-9").beat()
    assert check(settings, "alerter").ok
    assert not check(settings, "auditor").ok  # auditor-9 is not this host's
    assert check(settings, "auditor", any_instance=True).ok
    named = settings.model_copy(update={"instance": "auditor-9"})
    assert check(named, "auditor").message.startswith("auditor: auditor-9 beat ")
    assert not check(named, "generator").ok


async def test_check_fails_on_a_stale_heartbeat(settings: CommonSettings, redis: Redis) -> None:
    old = {"service": "recorder", "instance": "r-1", "ts_ns": time.time_ns() - 60 * 10**9, "status": "ready"}
    await redis.set(settings.stream("heartbeat:recorder:r-1"), json.dumps(old), px=60_000)
    verdict = check(settings.model_copy(update={"instance": "r-1"}), "recorder", max_age_s=5)
    assert not verdict.ok and "limit 5.0 s" in verdict.message


def test_check_fails_when_redis_is_down() -> None:
    verdict = check(CommonSettings(redis_url="redis://127.0.0.1:1/0"), "auditor")
    assert not verdict.ok and "Redis is not reachable at redis://127.0.0.1:1/0" in verdict.message


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.common.healthcheck", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_exit_codes(settings: CommonSettings, redis: Redis, redis_url: str) -> None:
    slow = settings.model_copy(update={"heartbeat_interval_s": 30.0})  # the key outlives the CLI's start
    await Heartbeat(redis, slow, "generator", "gen-1").beat()
    env = {"UQ_REDIS_URL": redis_url, "UQ_STREAM_PREFIX": settings.stream_prefix}
    ok = run_cli("generator", UQ_INSTANCE="gen-1", **env)
    assert ok.returncode == 0 and ok.stdout.startswith("generator: gen-1 beat "), ok.stderr
    wrong = run_cli("generator", UQ_INSTANCE="gen-2", **env)
    assert wrong.returncode == 1 and "no heartbeat from instance 'gen-2'" in wrong.stderr
    assert run_cli("generator", "--any", UQ_INSTANCE="gen-2", **env).returncode == 0
    bad = run_cli("gen*", **env)
    assert bad.returncode == 2 and "invalid service name 'gen*'" in bad.stderr
    invalid = run_cli("generator", UQ_HEARTBEAT_INTERVAL_S="-1", **env)
    assert invalid.returncode == 1 and "invalid settings" in invalid.stderr


DEMO = """
from services.common.runner import run_service
from services.common.settings import CommonSettings

async def main(ctx):
    await ctx.stop.wait()

run_service("demo", CommonSettings, main)
"""


@pytest.mark.slow
async def test_cli_finds_a_running_service_by_its_default_instance_name(
    settings: CommonSettings, redis_url: str
) -> None:
    """As in a container: no UQ_INSTANCE, so the service is `<hostname>-<pid>` and the probe, run
    beside it, finds it by the hostname; after SIGTERM its heartbeat is gone and the probe fails."""
    env = {**os.environ, "UQ_REDIS_URL": redis_url, "UQ_STREAM_PREFIX": settings.stream_prefix}
    env.pop("UQ_INSTANCE", None)
    proc = subprocess.Popen([sys.executable, "-c", DEMO], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        probes = []

        def probe_passes() -> bool:
            probes.append(run_cli("demo", UQ_REDIS_URL=redis_url, UQ_STREAM_PREFIX=settings.stream_prefix))
            return probes[-1].returncode == 0

        await eventually(
            probe_passes, what=lambda: f"the probe to find the service; last: {probes[-1].stderr}", timeout_s=30
        )
        probe = probes[-1]
        assert probe.stdout.startswith(f"demo: {HOST}-{proc.pid} beat ")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    gone = run_cli("demo", UQ_REDIS_URL=redis_url, UQ_STREAM_PREFIX=settings.stream_prefix)
    assert gone.returncode == 1 and "no heartbeat from an instance on host" in gone.stderr
