"""Benchmark: the whole pipeline under load, every token counted end to end.

A stack of real services (tests/stack.py: gateway, 2 auditors, alerter, recorder, SQLite) takes N
concurrent push-API sessions, each pushing R tokens/s (OpenAI-style top-5 logprobs, in one batch per
``--interval``) for T seconds, watched by V WebSocket viewers (viewer i follows session i mod N).
Then it counts every token: pushed (accepted by the gateway) = audited (distinct ``(session, seq)``
on ``uq:audits``, no duplicates) = delivered (distinct token seqs each viewer received) = recorded
(rows in the recorder's database). Meanwhile it samples each service's RSS and each consumer
group's backlog (lag + pending) once a second; memory is "flat" when the mean RSS of the last third
of the push phase is within 10 % of the middle third's, and the backlog must drain to 0 after the
burst (the time it took is reported).

    .venv/bin/python -m bench.load            # 100 sessions × 50 tokens/s × 60 s, 100 viewers
    .venv/bin/python -m bench.load --quick    # 20 × 20 tokens/s × 10 s, 20 viewers

Settings changed from the defaults, and why: ``UQ_RATE_LIMIT_PER_S=0`` (every session pushes from
this one address; the limiter is not under test) and ``UQ_MAXLEN_AUDITS`` at least twice the tokens
pushed (so that the audits can be counted on the stream afterwards). ``uq:tokens`` keeps its default
retention: a backlog beyond it loses tokens, and that would show here as audited < pushed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import sqlite3
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psutil  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.report import goal
from tests.stack import Stack

BENCH = "load"
JSON = {"content-type": "application/json"}
GROUPS = ("tokens", "audits", "alerts", "sessions")


def _shape(key: int) -> tuple[float, list[float]]:
    """The emitted token's probability and the other four's: mostly confident, sometimes not."""
    rnd = random.Random(key)
    p = rnd.uniform(0.6, 0.99) if rnd.random() > 0.1 else rnd.uniform(0.02, 0.3)
    shares = [rnd.random() for _ in range(4)]
    return p, [(1.0 - p) * 0.9 * x / sum(shares) for x in shares]  # the top 5 hold 90 % of what p leaves


# 4,096 distributions drawn once: the load generator's own CPU is not what is measured (it shares the cores)
_SHAPES = [
    (math.log(p), sorted([(math.log(p), "")] + [(math.log(q), f" a{i}") for i, q in enumerate(rest)], reverse=True))
    for p, rest in map(_shape, range(4_096))
]


def token(session: int, seq: int) -> dict[str, Any]:
    """One OpenAI-style token with top-5 logprobs, the same for the same (session, seq)."""
    logprob, alts = _SHAPES[(session * 1_000_003 + seq) % len(_SHAPES)]
    text = f" w{seq % 997}"
    return {
        "token": text,
        "logprob": logprob,
        "top_logprobs": [{"token": t or text, "logprob": lp} for lp, t in alts],
    }


@dataclass
class Counts:
    pushed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    push_errors: int = 0
    push_error_kinds: Counter[str] = field(default_factory=Counter)  # HTTP status or exception class
    push_latency_s: list[float] = field(default_factory=list)
    first_push: float = math.inf
    last_push: float = 0.0
    viewers: list[tuple[str, set[int]]] = field(default_factory=list)
    done: dict[int, bool] = field(default_factory=dict)
    missed: int = 0
    before_done: int = 0  # tokens a viewer had when `done` came
    ws_errors: int = 0


async def pusher(url: str, sid: str, index: int, args: argparse.Namespace, t0: float, counts: Counts) -> None:
    """Push tokens on schedule for ``seconds``: one batch per ``interval`` holding every token due by
    then (so a session that fell behind catches up); no request starts after ``seconds``.

    Each session is a producer of its own, with its own keep-alive connection (one client shared by
    100 sessions spent a third of this process's CPU scanning its connection pool per request)."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await _push_all(client, sid, index, args, t0, counts)


async def _push_all(
    client: httpx.AsyncClient, sid: str, index: int, args: argparse.Namespace, t0: float, counts: Counts
) -> None:
    total = int(args.rate * args.seconds)
    sent = 0
    offset = random.Random(index).uniform(0, args.interval)  # spread the sessions' batches in time
    tick = 0
    while sent < total:
        due_at = offset + tick * args.interval
        if due_at >= args.seconds:
            break
        await asyncio.sleep(max(0.0, t0 + due_at - time.monotonic()))
        elapsed = time.monotonic() - t0
        tick = int((elapsed - offset) / args.interval) + 1  # ticks missed while a request was slow are merged
        due = min(total, round(args.rate * args.interval * tick))
        n = min(max(due - sent, 0), 1_000)
        if n == 0:
            continue
        batch = [token(index, sent + i) for i in range(n)]
        start = time.monotonic()
        try:
            body = orjson.dumps({"tokens": batch})  # what httpx's json= sends, at a sixth of the CPU
            resp = await client.post(f"/push/sessions/{sid}/tokens", content=body, headers=JSON)
        except httpx.HTTPError as exc:
            counts.push_errors += 1
            counts.push_error_kinds[type(exc).__name__] += 1
            continue
        end = time.monotonic()
        counts.push_latency_s.append(end - start)
        if resp.status_code != 202:
            counts.push_errors += 1
            counts.push_error_kinds[f"HTTP {resp.status_code}"] += 1
            continue
        counts.pushed[sid] += resp.json()["accepted"]
        sent += n
        counts.first_push = min(counts.first_push, start)
        counts.last_push = max(counts.last_push, end)


async def viewer(ws: ClientConnection, index: int, seqs: set[int], counts: Counts) -> None:
    """Count the distinct token seqs of the followed session until ``done`` and all its tokens came."""
    expected = math.inf
    try:
        async for raw in ws:
            msg = orjson.loads(raw)
            kind = msg["type"]
            if kind == "token":
                seqs.add(msg["seq"])
            elif kind == "missed":
                counts.missed += 1
            elif kind == "error":
                counts.ws_errors += 1
            elif kind == "done":
                counts.done[index] = True
                counts.before_done += len(seqs)
                if len(seqs) >= msg["tokens"]:
                    return
                expected = msg["tokens"]  # `done` overtook tokens: keep reading until they all came
            if len(seqs) >= expected:
                return
    except ConnectionClosed:
        counts.ws_errors += 1


async def backlog(redis: Redis, prefix: str) -> dict[str, int]:
    """lag + pending of every consumer group, by ``stream/group``."""
    out = {}
    for stream in GROUPS:
        try:
            groups = await redis.xinfo_groups(f"{prefix}{stream}")
        except ResponseError:
            continue
        last_id = None
        for g in groups:
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            lag = g.get("lag")
            if lag is None or lag > 0:
                # Redis counts entries trimmed before this group read them as lag for ever (and gives up
                # with null in some cases): the group has read everything when it has read the last entry.
                if last_id is None:
                    last_id = (await redis.xinfo_stream(f"{prefix}{stream}"))["last-generated-id"]
                if g["last-delivered-id"] == last_id:
                    lag = 0
                elif lag is None:  # every retained entry is unread
                    lag = await redis.xlen(f"{prefix}{stream}")
            out[f"{stream}/{name}"] = int(g["pending"]) + int(lag)
    return out


async def sampler(
    stack: Stack, redis: Redis, stop: asyncio.Event, rss: dict[str, list[tuple[float, int]]], lag: list[Any]
) -> None:
    procs = {name: psutil.Process(p.pid) for name, p in stack.procs.items()}
    while not stop.is_set():
        now = time.monotonic()
        for name, proc in procs.items():
            with contextlib.suppress(psutil.Error):
                rss[name].append((now, proc.memory_info().rss))
        lag.append((now, await backlog(redis, stack.prefix)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def count_audits(redis: Redis, prefix: str, sessions: set[str]) -> tuple[int, int]:
    """Distinct ``(session, seq)`` of our sessions on ``uq:audits``, and duplicates."""
    seen: set[tuple[str, int]] = set()
    dups = 0
    last = "-"
    while True:
        chunk: list[Any] = list(await redis.xrange(f"{prefix}audits", min=last, max="+", count=10_000) or [])
        if last != "-":
            chunk = chunk[1:]
        if not chunk:
            return len(seen), dups
        for _eid, fields in chunk:
            event = json.loads(fields[b"data"])
            key = (event["session_id"], event["seq"])
            if event["session_id"] in sessions:
                if key in seen:
                    dups += 1
                seen.add(key)
        last = chunk[-1][0].decode()


def count_recorded(stack: Stack, sessions: set[str]) -> int:
    db = sqlite3.connect(f"file:{stack.dir}/uq.sqlite3?mode=ro", uri=True, timeout=60)
    try:
        rows = db.execute("SELECT session_id, COUNT(*) FROM tokens GROUP BY session_id").fetchall()
    finally:
        db.close()
    return sum(n for sid, n in rows if sid in sessions)


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each service process and by this benchmark."""
    out = {}
    for name, p in [*stack.procs.items(), ("bench", None)]:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(p.pid if p is not None else None).cpu_times()
            out[name] = t.user + t.system
    return out


async def redis_cpu(redis: Redis) -> float:
    """CPU seconds used by the Redis server (all its clients: on a shared Redis, not only ours)."""
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def growth(samples: list[tuple[float, int]], t0: float, t1: float) -> float:
    """Mean RSS over the last third of [t0, t1] divided by the mean over the middle third."""
    third = (t1 - t0) / 3
    middle = [v for t, v in samples if t0 + third <= t < t0 + 2 * third]
    last = [v for t, v in samples if t0 + 2 * third <= t <= t1]
    if not middle or not last:
        return math.nan
    return statistics.fmean(last) / statistics.fmean(middle)


async def run(args: argparse.Namespace) -> None:
    total = args.sessions * int(args.rate * args.seconds)
    env = {
        "UQ_RATE_LIMIT_PER_S": "0",
        "UQ_MAXLEN_AUDITS": str(max(200_000, 2 * total)),
        "UQ_LOG_LEVEL": "WARNING",
    }
    print(
        f"load: {args.sessions} sessions × {args.rate:g} tokens/s × {args.seconds:g} s = {total:,} tokens, "
        f"{args.viewers} viewers, {args.auditors} auditors; batches every {args.interval:g} s",
        flush=True,
    )
    with Stack(services=("recorder", "auditor", "alerter", "gateway"), auditors=args.auditors, env=env) as stack:
        redis = Redis.from_url(stack.redis_url)
        limits = httpx.Limits(max_connections=args.sessions, max_keepalive_connections=args.sessions)
        async with httpx.AsyncClient(base_url=stack.url, timeout=120, limits=limits) as client:
            sids = []
            for _ in range(args.sessions):
                resp = await client.post("/push/sessions", json={"model": "load", "provider": "bench"})
                resp.raise_for_status()
                sids.append(resp.json()["session_id"])
            counts = Counts()
            sockets = []
            for i in range(args.viewers):
                ws = await connect(stack.ws_url, max_size=None, open_timeout=60)
                await ws.send(json.dumps({"type": "subscribe", "session_id": sids[i % args.sessions], "after_seq": -1}))
                sockets.append(ws)
            viewers = []
            for i, ws in enumerate(sockets):
                seqs: set[int] = set()
                counts.viewers.append((sids[i % args.sessions], seqs))
                viewers.append(asyncio.create_task(viewer(ws, i, seqs, counts)))

            stop = asyncio.Event()
            rss: dict[str, list[tuple[float, int]]] = defaultdict(list)
            lag: list[Any] = []
            sampling = asyncio.create_task(sampler(stack, redis, stop, rss, lag))
            cpu0 = {**cpu_seconds(stack), "redis (shared)": await redis_cpu(redis)}
            t0 = time.monotonic()
            await asyncio.gather(*(pusher(stack.url, sid, i, args, t0, counts) for i, sid in enumerate(sids)))
            push_end = time.monotonic()
            cpu1 = {**cpu_seconds(stack), "redis (shared)": await redis_cpu(redis)}
            cpu = {n: c - cpu0.get(n, 0.0) for n, c in cpu1.items()}
            await asyncio.gather(*(client.post(f"/push/sessions/{sid}/finish", json={}) for sid in sids))

            # Drain: until every group's backlog is 0 and every viewer got `done` (or the limit).
            drained_at = None
            deadline = time.monotonic() + args.drain_limit
            while time.monotonic() < deadline:
                if not any((await backlog(redis, stack.prefix)).values()):
                    drained_at = time.monotonic()
                    break
                await asyncio.sleep(0.25)
            done_wait = max(5.0, deadline - time.monotonic())
            await asyncio.wait(viewers, timeout=done_wait)
            stop.set()
            await sampling
            for task in viewers:
                task.cancel()
            for ws in sockets:
                await ws.close()

        sessions = set(sids)
        pushed = sum(counts.pushed.values())
        audited, dups = await count_audits(redis, stack.prefix, sessions)
        await asyncio.sleep(1.0)  # the recorder commits its last batch
        recorded = count_recorded(stack, sessions)
        await redis.aclose()

    expected_view = sum(counts.pushed[sid] for sid, _ in counts.viewers)
    delivered = sum(len(seqs) for _, seqs in counts.viewers)
    push_s = max(counts.last_push - counts.first_push, args.seconds)  # the window the sessions pushed in
    target = args.sessions * args.rate
    achieved = pushed / push_s
    recovery = (drained_at - push_end) if drained_at is not None else math.inf
    peak = max(((t, sum(b.values())) for t, b in lag), key=lambda x: x[1], default=(0.0, 0))
    growths = {name: growth(samples, t0, push_end) for name, samples in rss.items()}
    worst = max(growths, key=lambda n: growths[n] if not math.isnan(growths[n]) else -1.0)
    lat = sorted(counts.push_latency_s) or [math.nan]

    kinds = ", ".join(f"{kind} ×{n}" for kind, n in counts.push_error_kinds.most_common())
    print(
        f"pushed {pushed:,} of {total:,} offered in {push_s:.1f} s; push errors {counts.push_errors}"
        + (f" ({kinds})" if kinds else "")
    )
    print(f"push request latency p50 {lat[len(lat) // 2] * 1e3:.0f} ms, p99 {lat[int(len(lat) * 0.99)] * 1e3:.0f} ms")
    print(
        f"audited {audited:,} (duplicates {dups}), recorded {recorded:,}, delivered {delivered:,} of {expected_view:,}"
    )
    print(
        f"viewers done {len(counts.done)}/{args.viewers}, 'missed' messages {counts.missed}, ws errors {counts.ws_errors}; "
        f"{delivered - counts.before_done:,} tokens reached a viewer after its session's `done`"
    )
    if audited < pushed:
        print(
            f"{pushed - audited:,} pushed tokens were never audited: the auditors fell further behind than "
            "uq:tokens retains (UQ_MAXLEN_TOKENS, default 5,000), and Redis trimmed them unread"
        )
    print(f"backlog peak {peak[1]:,} entries at t+{peak[0] - t0:.1f} s; drained {recovery:.1f} s after the last push")
    for t, b in lag[:: max(1, len(lag) // 12)]:
        print(f"  t+{t - t0:6.1f} s backlog " + ", ".join(f"{k} {v}" for k, v in sorted(b.items()) if v))
    print(f"CPU during the push phase ({push_end - t0:.1f} s; cores busy = CPU s / wall s):")
    for name, c in sorted(cpu.items(), key=lambda x: -x[1]):
        print(f"  cpu {name:10s} {c:6.1f} s  ({c / (push_end - t0):.2f} cores)")
    per_token = sum(cpu.values()) / max(pushed, 1)
    print(
        f"  all of it: {per_token * 1e3:.2f} CPU ms per pushed token, so {target:,.0f} tokens/s needs about "
        f"{per_token * target:.1f} cores at this cost (this machine: {psutil.cpu_count()} cores, shared)"
    )
    for name, samples in sorted(rss.items()):
        mb = [v / 2**20 for _, v in samples]
        print(
            f"  rss {name:10s} start {mb[0]:7.1f} MB max {max(mb):7.1f} MB end {mb[-1]:7.1f} MB growth {growths[name]:.3f}"
        )

    shape = f"{args.sessions}×{args.rate:g} tok/s×{args.seconds:g} s, {args.viewers} viewers"
    goal(
        BENCH,
        "delivered / pushed",
        delivered / max(expected_view, 1),
        1.0,
        "ratio",
        detail=f"{shape}; WebSocket viewers, distinct seqs",
    )
    goal(
        BENCH,
        "audited / pushed",
        (audited if dups == 0 else 0) / max(pushed, 1),
        1.0,
        "ratio",
        detail=f"distinct (session, seq) on uq:audits; {dups} duplicates",
    )
    goal(
        BENCH,
        "recorded / pushed",
        recorded / max(pushed, 1),
        1.0,
        "ratio",
        detail="rows in the recorder's SQLite database",
    )
    goal(
        BENCH,
        "pushed tokens/s",
        achieved,
        target,
        "tokens/s",
        detail=f"{pushed:,} accepted in {push_s:.1f} s; {counts.push_errors} push errors",
    )
    goal(
        BENCH,
        "backlog drained after the burst",
        recovery,
        10.0,
        "s",
        higher_is_better=False,
        detail=f"all consumer groups lag+pending = 0; peak {peak[1]:,} entries",
    )
    goal(
        BENCH,
        "memory growth (last third / middle third)",
        growths[worst],
        1.10,
        "ratio",
        higher_is_better=False,
        detail=f"worst process: {worst}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 sessions × 20 tokens/s × 10 s, 20 viewers")
    parser.add_argument("--sessions", type=int, default=None, help="concurrent push sessions (default 100)")
    parser.add_argument("--rate", type=float, default=None, help="tokens per second per session (default 50)")
    parser.add_argument("--seconds", type=float, default=None, help="how long each session pushes (default 60)")
    parser.add_argument("--viewers", type=int, default=None, help="WebSocket viewers (default 100)")
    parser.add_argument("--auditors", type=int, default=2, help="auditor processes")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one session's pushes")
    parser.add_argument("--drain-limit", type=float, default=180.0, help="most seconds to wait for the backlog")
    args = parser.parse_args()
    quick = {"sessions": 20, "rate": 20.0, "seconds": 10.0, "viewers": 20}
    full = {"sessions": 100, "rate": 50.0, "seconds": 60.0, "viewers": 100}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
