"""``python -m services.common.healthcheck <service> [--any] [--max-age S]``: the health probe of the
services without an HTTP port (generator, auditor, alerter, recorder), for a container ``HEALTHCHECK``
or a Kubernetes exec probe.

Exit 0 when a heartbeat of ``<service>`` from this instance is fresh, else 1 with the reason on stderr.

- This instance: ``UQ_INSTANCE`` when set. Otherwise the runner names its instance
  ``<hostname>-<pid>``, so a heartbeat whose instance starts with ``<hostname>-`` (a container's or a
  pod's hostname is its own). ``--any`` accepts any instance of the service.
- Fresh: the key ``<prefix>heartbeat:<service>:<instance>`` exists (it expires after three
  ``UQ_HEARTBEAT_INTERVAL_S``) and its ``ts_ns`` is at most ``--max-age`` seconds old (default: three
  heartbeat intervals).

It reads the same ``UQ_*`` variables as the service (``UQ_REDIS_URL``, ``UQ_STREAM_PREFIX``,
``UQ_INSTANCE``, ``UQ_HEARTBEAT_INTERVAL_S``) and imports nothing heavy, so a probe costs ~0.2 s.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.cluster
from pydantic import ValidationError

from services.common.redis_client import cluster_addresses
from services.common.settings import CommonSettings

SERVICE_NAME = re.compile(r"^[a-z0-9_-]+$")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``ok`` and the line that explains it."""

    ok: bool
    message: str


def _age_s(beat: dict[str, Any], now_ns: int) -> float:
    return (now_ns - int(beat["ts_ns"])) / 1e9


def judge(
    beats: Sequence[dict[str, Any]],
    service: str,
    *,
    instance: str,
    host: str,
    any_instance: bool,
    max_age_s: float,
    now_ns: int,
) -> Verdict:
    """Pure decision over the heartbeats of ``service`` found in Redis (their JSON values)."""
    if any_instance:
        mine = list(beats)
        who = "any instance"
    elif instance:
        mine = [b for b in beats if b.get("instance") == instance]
        who = f"instance {instance!r} (UQ_INSTANCE)"
    else:
        mine = [b for b in beats if str(b.get("instance", "")).startswith(f"{host}-")]
        who = f"an instance on host {host!r} (UQ_INSTANCE unset)"
    fresh = sorted((b for b in mine if _age_s(b, now_ns) <= max_age_s), key=lambda b: _age_s(b, now_ns))
    if fresh:
        best = fresh[0]
        return Verdict(
            True,
            f"{service}: {best['instance']} beat {_age_s(best, now_ns):.1f} s ago (status {best.get('status', '?')})",
        )
    if mine:
        newest = min(_age_s(b, now_ns) for b in mine)
        return Verdict(
            False,
            f"{service}: the heartbeat of {who} is {newest:.1f} s old (limit {max_age_s:.1f} s): "
            "the service is stuck or its event loop is blocked",
        )
    seen = ", ".join(sorted(str(b.get("instance")) for b in beats)) or "none"
    return Verdict(
        False,
        f"{service}: no heartbeat from {who}; instances seen: {seen}. "
        f"Is `python -m services.{service}` running against this Redis and UQ_STREAM_PREFIX?",
    )


def check(
    settings: CommonSettings, service: str, *, any_instance: bool = False, max_age_s: float | None = None
) -> Verdict:
    """Read the heartbeats of ``service`` from Redis and judge them; a Redis error is a failed check."""
    limit = max_age_s if max_age_s is not None else 3 * settings.heartbeat_interval_s
    client: redis.Redis | redis.RedisCluster
    if settings.redis_cluster:
        first, more = cluster_addresses(settings.redis_url)
        nodes = [redis.cluster.ClusterNode(host, port) for host, port in more]  # type: ignore[no-untyped-call]
        client = redis.RedisCluster.from_url(
            first, startup_nodes=nodes or None, socket_connect_timeout=2, socket_timeout=2
        )
    else:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=settings.stream(f"heartbeat:{service}:*"), count=500))
        pipe = client.pipeline(transaction=False)  # not MGET: on Redis Cluster the keys are in many slots
        for key in keys:
            pipe.get(key)
        values = pipe.execute() if keys else []
    except (redis.RedisError, OSError) as exc:
        return Verdict(False, f"{service}: Redis is not reachable at {settings.redis_url}: {exc}")
    finally:
        client.close()
    beats = [json.loads(v) for v in values if v is not None]
    return judge(
        beats,
        service,
        instance=settings.instance,
        host=socket.gethostname(),
        any_instance=any_instance,
        max_age_s=limit,
        now_ns=time.time_ns(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.healthcheck",
        description="Exit 0 when this instance's heartbeat of SERVICE is fresh in Redis, else 1.",
    )
    parser.add_argument("service", help="generator, auditor, alerter, recorder, otel or gateway")
    parser.add_argument("--any", dest="any_instance", action="store_true", help="accept any instance of SERVICE")
    parser.add_argument(
        "--max-age", type=float, default=None, metavar="S", help="oldest heartbeat accepted (default 3 intervals)"
    )
    args = parser.parse_args(argv)
    if not SERVICE_NAME.match(args.service):
        parser.error(f"invalid service name {args.service!r}: use lowercase letters, digits, '-' or '_'")
    try:
        settings = CommonSettings()
    except ValidationError as exc:
        print(f"{args.service}: invalid settings: {exc}", file=sys.stderr)
        return 1
    verdict = check(settings, args.service, any_instance=args.any_instance, max_age_s=args.max_age)
    print(verdict.message, file=sys.stdout if verdict.ok else sys.stderr)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
