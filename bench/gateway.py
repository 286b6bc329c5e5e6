"""Gateway fan-out latency: from a token's publish time (``token_ts_ns``) to receipt by WebSocket clients.

Starts the real gateway (``python -m services.gateway``, via tests/stack.py) on a private stream
prefix, subscribes 1, 10 and 100 WebSocket clients on loopback to one session each round, and
publishes audit entries straight into Redis at a steady rate (no model needed). Prints p50/p99/max per
client count, side by side, with each round's ratio to the 1-client round and to the goal
(p99 < 20 ms at 100 clients; the original README promised < 10 ms WebSocket latency).

    .venv/bin/python -m bench.gateway [--rate 50] [--seconds 4] [--clients 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.report import goal
from services.common.bus import Bus
from services.common.contracts import AuditEvent, Metrics, TopKAlternative
from services.common.settings import CommonSettings
from tests.stack import ROOT, Stack, free_port, python

GOAL_P99_MS = 20.0
_TS = re.compile(rb'"token_ts_ns":(\d+)')


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def audit(session_id: str, seq: int) -> AuditEvent:
    ts = time.time_ns()
    return AuditEvent(
        session_id=session_id,
        seq=seq,
        ts_ns=ts,
        token_ts_ns=ts,
        text=f" tok{seq}",
        token_id=seq,
        distribution="full",
        metrics=Metrics(prob=0.42, surprisal=1.25, entropy=2.5, margin=0.1, rank=2, hbar_s=1.77, exact=True),
        top_k=[TopKAlternative(token_id=i, text=f" alt{i}", logprob=-0.5 - i) for i in range(10)],
        model="bench",
    )


async def client(ws: ClientConnection, n: int, latencies: list[float]) -> None:
    got = 0
    while got < n:
        raw = await ws.recv(decode=False)
        now = time.time_ns()
        match = _TS.search(raw)
        if match is None or b'"type":"token"' not in raw:
            continue
        latencies.append((now - int(match.group(1))) / 1e6)
        got += 1


async def floor_server(port: int, redis_url: str, prefix: str) -> None:
    """The floor to compare with: XREAD uq:audits and ``websockets.broadcast`` each entry to every
    client, nothing else (no protocol, no per-session routing, no bounded queues)."""
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    redis = aioredis.Redis.from_url(redis_url)
    key = f"{prefix}audits"
    last: Any = await redis.xrevrange(key, count=1)
    last_id = last[0][0] if last else b"0-0"
    async with serve(handler, "127.0.0.1", port, compression=None):
        print("READY", flush=True)
        while True:
            response: Any = await redis.xread({key: last_id}, count=1000, block=100)
            for _stream, items in response or []:
                for entry_id, fields in items:
                    last_id = entry_id
                    broadcast(clients, fields[b"data"].decode().replace('"type":"audit"', '"type":"token"', 1))


async def round_trip(target: Target, bus: Bus, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    """One round: ``clients`` sockets on one session, ``rate × seconds`` audits published steadily."""
    session = f"bench-{clients}-{time.monotonic_ns()}"
    await bus.publish("audits", audit(session, 0))  # subscribing to an unknown session is an error
    await asyncio.sleep(0.3)
    sockets = [await connect(target.ws_url, max_queue=None) for _ in range(clients)]
    try:
        if target.subscribe:
            for ws in sockets:
                await ws.send(f'{{"type":"subscribe","session_id":"{session}","after_seq":0}}')
            for ws in sockets:  # seq 0 is filtered by after_seq; wait for the end of the replay
                while b'"replayed"' not in await ws.recv(decode=False):
                    pass
        else:
            await asyncio.sleep(0.2)
        n = int(rate * seconds)
        latencies: list[float] = []
        server_cpu = cpu_s(target.pid)
        bench_cpu = time.process_time()
        readers = [asyncio.create_task(client(ws, n, latencies)) for ws in sockets]
        interval = 1.0 / rate
        start = time.perf_counter()
        for seq in range(1, n + 1):
            await bus.publish("audits", audit(session, seq))
            delay = start + seq * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.wait_for(asyncio.gather(*readers), timeout=30 + seconds)
        server_cpu = cpu_s(target.pid) - server_cpu
        bench_cpu = time.process_time() - bench_cpu
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    latencies.sort()
    return {
        "clients": clients,
        "messages": len(latencies),
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "max": latencies[-1],
        "server_us": server_cpu / len(latencies) * 1e6,
        "client_us": bench_cpu / len(latencies) * 1e6,
    }


def start_floor(port: int, redis_url: str, prefix: str) -> subprocess.Popen[bytes]:
    floor = subprocess.Popen(
        [python(), "-m", "bench.gateway", "--floor-server", str(port), redis_url, prefix],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert floor.stdout is not None
    if floor.stdout.readline().strip() != b"READY":
        raise RuntimeError("the floor server did not start")
    return floor


@dataclass
class Target:
    name: str
    ws_url: str
    pid: int
    subscribe: bool


async def run(args: argparse.Namespace) -> None:
    counts = [int(c) for c in args.clients.split(",")]
    rows: list[tuple[str, dict[str, Any]]] = []
    with Stack(services=("gateway",), env={"UQ_REQUIRED_SERVICES": "", "UQ_RATE_LIMIT_PER_S": "0"}) as stack:
        port = free_port()
        floor = await asyncio.to_thread(start_floor, port, stack.redis_url, stack.prefix)
        targets = [
            Target("gateway", stack.ws_url, stack.procs["gateway"].pid, True),
            Target("floor", f"ws://127.0.0.1:{port}", floor.pid, False),
        ]
        redis = aioredis.Redis.from_url(stack.redis_url)
        bus = Bus(redis, CommonSettings(redis_url=stack.redis_url, stream_prefix=stack.prefix))
        try:
            for clients in counts:  # gateway and floor back to back: same machine load
                for target in targets:
                    rows.append((target.name, await round_trip(target, bus, clients, args.rate, args.seconds)))
        finally:
            await redis.aclose()
            floor.terminate()
            floor.wait()
    print(f"WebSocket fan-out latency (token_ts_ns → client), {args.rate:g} tokens/s, {args.seconds:g} s per round")
    print("floor = bare XREAD + websockets.broadcast in its own process, measured right after the gateway")
    print(
        f"{'server':>8} {'clients':>8} {'msgs':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'p99/floor':>10} {'p99/goal':>9} {'server CPU us/msg':>18} {'client CPU us/msg':>18}"
    )
    floors = {r["clients"]: r for name, r in rows if name == "floor"}
    for name, r in rows:
        print(
            f"{name:>8} {r['clients']:>8} {r['messages']:>7} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.2f} "
            f"{r['p99'] / floors[r['clients']]['p99']:>10.2f} {r['p99'] / GOAL_P99_MS:>9.2f} "
            f"{r['server_us']:>18.1f} {r['client_us']:>18.1f}"
        )
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    last = [r for name, r in rows if name == "gateway"][-1]
    verdict = "meets" if last["p99"] < GOAL_P99_MS else "misses"
    print(f"goal p99 < {GOAL_P99_MS:g} ms at {last['clients']} clients: {verdict} ({last['p99']:.2f} ms)")
    goal(
        "gateway",
        f"WebSocket p99 latency at {last['clients']} clients",
        last["p99"],
        GOAL_P99_MS,
        "ms",
        higher_is_better=False,
        detail=f"p50 {last['p50']:.1f} ms; bare XREAD+broadcast floor p99 {floors[last['clients']]['p99']:.1f} ms",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second published (one session)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each round")
    parser.add_argument("--clients", default="1,10,100", help="comma-separated client counts")
    parser.add_argument("--floor-server", nargs=3, metavar=("PORT", "REDIS_URL", "PREFIX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        port, redis_url, prefix = args.floor_server
        asyncio.run(floor_server(int(port), redis_url, prefix))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
