"""Benchmark: our bus beside a bare redis-py XADD/XREADGROUP/XACK loop doing the same work.

For ~100 KB full-logit token entries (V = 49,152 float16) and ~1 KB top-k entries it measures
  - throughput: N entries published in batches and consumed in a consumer group, entries/s;
  - one-hop latency: publish → handed to the consumer, p50 and p99, at a steady moderate rate;
for both, in alternating rounds within one run, and prints the ratio bus / bare (goal ≥ 0.80).

    .venv/bin/python -m bench.bus [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from redis.asyncio import Redis

from bench.report import goal
from services.common.bus import Bus, Delivery, Outcome
from services.common.codec import logits_bytes
from services.common.contracts import SamplingParams, TokenEvent, TopKAlternative, now_ns
from services.common.settings import CommonSettings

GROUP = "bench"


def make_event(kind: str, seq: int, rng: np.random.Generator) -> TokenEvent:
    top = [TopKAlternative(token_id=i, text=f" tok{i}", logprob=-0.1 * (i + 1)) for i in range(20)]
    common: dict[str, Any] = dict(
        session_id="bench-session",
        seq=seq,
        token_id=5,
        text=" token",
        logprob=-0.1,
        top_k=top,
        sampling=SamplingParams(),
        model="bench-model",
    )
    if kind == "full":
        v = 49152
        return TokenEvent(
            distribution="full",
            vocab_size=v,
            logits_dtype="float16",
            logits=logits_bytes(rng.standard_normal(v, dtype=np.float32)),
            **common,
        )
    return TokenEvent(distribution="top_k", **common)


def bare_fields(event: TokenEvent) -> dict[str, Any]:
    """What a hand-written producer would send: the same JSON and bytes."""
    fields: dict[str, Any] = {"data": json.dumps(event.model_dump(mode="json"))}
    if event.logits is not None:
        fields["logits"] = event.logits
    return fields


async def bare_round(redis: Redis, key: str, events: list[TokenEvent], batch: int) -> tuple[float, list[float]]:
    await redis.delete(key)
    await redis.xgroup_create(key, GROUP, id="0", mkstream=True)
    n = len(events)
    lat: list[float] = []

    async def produce() -> None:
        for i in range(0, n, batch):
            pipe = redis.pipeline(transaction=False)
            for e in events[i : i + batch]:
                fields = bare_fields(e)
                fields["data"] = json.dumps({**json.loads(fields["data"]), "ts_ns": now_ns()})
                pipe.xadd(key, fields, maxlen=100_000, approximate=True)
            await pipe.execute()
            await asyncio.sleep(0)

    async def consume() -> None:
        got = 0
        while got < n:
            resp = await redis.xreadgroup(GROUP, "c", {key: ">"}, count=batch, block=1000)
            ids = []
            for _, entries in resp or []:
                for eid, fields in entries:
                    data = json.loads(fields[b"data"])
                    if b"logits" in fields:
                        np.frombuffer(fields[b"logits"], dtype="<f2")
                    lat.append((now_ns() - data["ts_ns"]) / 1e6)
                    ids.append(eid)
            if ids:
                await redis.xack(key, GROUP, *ids)
                got += len(ids)

    t0 = time.perf_counter()
    await asyncio.gather(produce(), consume())
    return n / (time.perf_counter() - t0), lat


async def bus_round(bus: Bus, events: list[TokenEvent], batch: int, run: int) -> tuple[float, list[float]]:
    key = bus.key("tokens")
    await bus.redis.delete(key)
    n = len(events)
    lat: list[float] = []
    done = asyncio.Event()

    async def handler(deliveries: Sequence[Delivery]) -> list[Outcome]:
        now = now_ns()
        for d in deliveries:
            lat.append((now - d.event.ts_ns) / 1e6)
        if len(lat) >= n:
            done.set()
        return [[] for _ in deliveries]

    session = f"s{run}-{uuid.uuid4().hex[:8]}"  # fresh, so nothing is a duplicate of an earlier round
    consumer = bus.consumer("tokens", f"{GROUP}{run}", handler, name="c")
    await consumer.ensure_group()

    async def produce() -> None:
        for i in range(0, n, batch):
            await bus.publish_many(
                [
                    ("tokens", e.model_copy(update={"ts_ns": now_ns(), "session_id": session}))
                    for e in events[i : i + batch]
                ]
            )
            await asyncio.sleep(0)

    async def consume() -> None:
        while not done.is_set():
            await consumer.step(block_ms=1000)

    t0 = time.perf_counter()
    await asyncio.gather(produce(), consume())
    return n / (time.perf_counter() - t0), lat


async def steady_latency(publish: Any, consume_until: Any, events: list[TokenEvent], rate_hz: float) -> None:
    """Publish one entry at a time at a steady rate while a long-lived consumer runs."""

    async def produce() -> None:
        period = 1.0 / rate_hz
        for e in events:
            t = time.perf_counter()
            await publish(e)
            await asyncio.sleep(max(0.0, period - (time.perf_counter() - t)))

    await asyncio.gather(produce(), consume_until(len(events)))


async def bare_latency(redis: Redis, key: str, events: list[TokenEvent], rate_hz: float) -> list[float]:
    await redis.delete(key)
    await redis.xgroup_create(key, GROUP, id="0", mkstream=True)
    lat: list[float] = []

    async def publish(e: TokenEvent) -> None:
        fields = bare_fields(e)
        fields["data"] = json.dumps({**json.loads(fields["data"]), "ts_ns": now_ns()})
        await redis.xadd(key, fields, maxlen=100_000, approximate=True)

    async def consume(n: int) -> None:
        while len(lat) < n:
            resp = await redis.xreadgroup(GROUP, "c", {key: ">"}, count=64, block=1000)
            ids = []
            for _, entries in resp or []:
                for eid, fields in entries:
                    lat.append((now_ns() - json.loads(fields[b"data"])["ts_ns"]) / 1e6)
                    ids.append(eid)
            if ids:
                await redis.xack(key, GROUP, *ids)

    await steady_latency(publish, consume, events, rate_hz)
    return lat


async def bus_latency(bus: Bus, events: list[TokenEvent], rate_hz: float) -> list[float]:
    await bus.redis.delete(bus.key("tokens"))
    lat: list[float] = []
    session = f"lat-{uuid.uuid4().hex[:8]}"

    async def handler(deliveries: Sequence[Delivery]) -> list[Outcome]:
        now = now_ns()
        lat.extend((now - d.event.ts_ns) / 1e6 for d in deliveries)
        return [[] for _ in deliveries]

    consumer = bus.consumer("tokens", f"{GROUP}-lat", handler, name="c")
    await consumer.ensure_group()
    await consumer.step(block_ms=1)  # past the start-up reads (own pending, reclaim)

    async def publish(e: TokenEvent) -> None:
        await bus.publish("tokens", e.model_copy(update={"ts_ns": now_ns(), "session_id": session}))

    async def consume(n: int) -> None:
        while len(lat) < n:
            await consumer.step(block_ms=1000)

    await steady_latency(publish, consume, [e.model_copy(update={"seq": i}) for i, e in enumerate(events)], rate_hz)
    return lat


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer entries (smoke run)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = CommonSettings(stream_prefix=f"uqbench-{uuid.uuid4().hex[:6]}:", batch_size=64, maxlen_tokens=100_000)
    redis = Redis.from_url(settings.redis_url)
    bus = Bus(redis, settings)
    rng = np.random.default_rng(0)
    sizes = {"full": 300 if args.quick else 2000, "top_k": 2000 if args.quick else 20000}
    rows = []
    try:
        for kind, n in sizes.items():
            events = [make_event(kind, i, rng) for i in range(n)]
            entry_bytes = sum(len(v) for v in bare_fields(events[0]).values())
            bare_tp, bus_tp, bare_lat, bus_lat = [], [], [], []
            for r in range(args.rounds):
                tp, _ = await bare_round(redis, settings.stream(f"bare-{kind}"), events, 64)
                bare_tp.append(tp)
                tp, _ = await bus_round(bus, [e.model_copy(update={"seq": i}) for i, e in enumerate(events)], 64, run=r)
                bus_tp.append(tp)
            # one-hop latency at a steady 200 entries/s, one entry per publish
            m = 1000 if not args.quick else 100
            bare_lat = await bare_latency(redis, settings.stream(f"lat-{kind}"), events[:m], 200)
            bus_lat = await bus_latency(bus, events[:m], 200)
            rows.append((kind, entry_bytes, statistics.median(bare_tp), statistics.median(bus_tp), bare_lat, bus_lat))
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{settings.stream_prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()

    print(
        f"{'entry':<8} {'bytes':>8} {'bare/s':>9} {'bus/s':>9} {'ratio':>6}  {'bare p50/p99 ms':>16}  {'bus p50/p99 ms':>15}"
    )
    for kind, size, bare, ours, bl, ul in rows:
        print(
            f"{kind:<8} {size:>8} {bare:>9.0f} {ours:>9.0f} {ours / bare:>6.2f}  "
            f"{pct(bl, 50):>7.2f}/{pct(bl, 99):<8.2f} {pct(ul, 50):>7.2f}/{pct(ul, 99):<7.2f}"
        )
    for kind, _, bare, ours, bl, ul in rows:
        goal(
            "bus",
            f"throughput vs bare redis-py loop, {kind} entries",
            ours / bare,
            0.8,
            "x",
            detail=f"{ours:,.0f} vs {bare:,.0f} entries/s; one-hop p50/p99 {pct(ul, 50):.1f}/{pct(ul, 99):.1f} ms "
            f"(bare {pct(bl, 50):.1f}/{pct(bl, 99):.1f} ms)",
        )
    worst = min(ours / bare for _, _, bare, ours, _, _ in rows)
    print(
        f"goal: bus throughput >= 0.80 x bare loop; worst ratio {worst:.2f} -> {'MET' if worst >= 0.8 else 'NOT MET'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
