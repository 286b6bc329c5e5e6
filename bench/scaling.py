"""Benchmark: throughput, alert delay and CPU per token versus partitions, alerter replicas and Redis
Cluster, every configuration side by side in one run.

Six configurations, each a stack of real services (tests/stack.py; 2 auditors in each) on a Redis of
its own: (a) one node, 1 partition, 1 alerter; (b) one node, 4 partitions, 1 alerter; (c) one node, 4
partitions, 2 alerters; (d) a Redis Cluster of 3 masters (tests/cluster.py, no replicas), 4
partitions, 1 alerter; (e) the cluster, 4 partitions, 2 alerters; (f) the cluster, 8 partitions, 2
alerters. The gateway answers /health at start and is then stopped, so that its fan-out does not
compete for the cores (bench/gateway measures it). All six are started first and then measured in
turn, round by round in alternating order, so that a drift in the shared machine's load falls on
all of them alike. Each gets the same deterministic workload, fed straight into the ``uq:tokens``
partitions as the generator would (pipelined XADD of top-5 token entries):

- **burst**: ``--tokens`` tokens round-robin over ``--sessions`` sessions, published as fast as
  possible (encoded beforehand, so the producer costs little); throughput = tokens ÷ (first publish →
  every audit on the audits streams and every alerter group drained: nothing unread, nothing
  pending). CPU seconds (user + system) of every auditor, alerter and redis-server process over the
  same interval, per 1,000 tokens. The fastest of ``--rounds`` rounds is kept.
- **paced**: after each burst, ``--rate`` tokens/s for ``--seconds`` ÷ ``--rounds`` s (well under
  every configuration's capacity); alert delay = the alert's entry id time on the alerts stream −
  its token's ``ts_ns`` (set just before the token's XADD), p50 and p99; the audit delay beside it.
- **correctness**: every token of every burst audited exactly once (distinct ``(session, seq)`` on
  the audits streams, no duplicate), and the same alerter entries (count per type) in every
  configuration: the rules see each session's tokens in order wherever its partition is served.

    .venv/bin/python -m bench.scaling            # 30,000-token bursts ×3, 2,000 tokens/s × 12 s paced
    .venv/bin/python -m bench.scaling --quick    # a smoke run: 3,000-token bursts, one round, 3 s paced
    .venv/bin/python -m bench.scaling --only a,e # some of the configurations

On these 2-core machines more processes share the same two cores, so a second alerter or two more
Redis nodes cannot add cores; the figure that carries over to a bigger machine is CPU per token, and
the busiest process's share of it (each process runs on at most one core). The last lines turn them
into what the figures predict for more cores, and into a sizing per 10,000 tokens/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bench.report import goal
from services.common.bus import Bus
from services.common.codec import DATA, encode
from services.common.contracts import TokenEvent, TopKAlternative
from services.common.settings import CommonSettings
from tests.cluster import RedisClusterNodes
from tests.stack import Stack

BENCH = "scaling"
AUDIT_GROUP = "alerters"  # AlerterSettings.audit_group's default
WORDS = 2_000  # vocabulary of the synthetic text (large enough that REPETITION does not fire by chance)
PUBLISH_BATCH = 500  # tokens per pipelined XADD round trip in a burst


@dataclass(frozen=True)
class Config:
    key: str
    cluster: bool
    partitions: int
    alerters: int

    @property
    def label(self) -> str:
        where = "cluster 3 masters" if self.cluster else "one node"
        return f"({self.key}) {where}, {self.partitions} partition{'s' * (self.partitions > 1)}, {self.alerters} alerter{'s' * (self.alerters > 1)}"


CONFIGS = [
    Config("a", cluster=False, partitions=1, alerters=1),
    Config("b", cluster=False, partitions=4, alerters=1),
    Config("c", cluster=False, partitions=4, alerters=2),
    Config("d", cluster=True, partitions=4, alerters=1),
    Config("e", cluster=True, partitions=4, alerters=2),
    Config("f", cluster=True, partitions=8, alerters=2),
]


@dataclass
class Result:
    config: Config
    tokens: int = 0
    seconds: float = math.inf
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> CPU s over the best burst
    producer_cpu: float = 0.0
    audited: list[int] = field(default_factory=list)  # distinct (session, seq) per round
    duplicates: int = 0
    alerts: Counter[str] = field(default_factory=Counter)  # entry type -> count, every round and the paced run
    alert_delay_ms: list[float] = field(default_factory=list)
    audit_delay_ms: list[float] = field(default_factory=list)
    paced_rate: float = 0.0
    placement: str = ""

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds

    def role_cpu(self, role: str) -> float:
        return sum(c for name, c in self.cpu.items() if name.split("-")[0] == role)

    @property
    def cpu_per_1k(self) -> float:
        return sum(self.cpu.values()) / self.tokens * 1_000

    @property
    def per_core(self) -> float:
        """tokens/s one core sustains at this CPU cost."""
        return 1_000 / self.cpu_per_1k

    @property
    def ceiling(self) -> tuple[float, str]:
        """tokens/s at which the busiest process would fill one core (each runs on at most one), and its name."""
        name = max(self.cpu, key=lambda n: self.cpu[n])
        return self.tokens / self.cpu[name], name


# --- the workload --------------------------------------------------------------------------------


def token(index: int, session: str, seq: int) -> TokenEvent:
    """One top-5 token, as the push API or an upstream engine sends; mostly confident, 1 in 10 not (alerts fire)."""
    rnd = random.Random(index * 1_000_003 + seq)
    p = rnd.uniform(0.6, 0.99) if rnd.random() > 0.1 else rnd.uniform(0.02, 0.3)
    word = rnd.randrange(WORDS)
    shares = [rnd.random() for _ in range(4)]
    rest = [(1.0 - p) * 0.9 * x / sum(shares) for x in shares]  # the top 5 hold 90 % of what p leaves
    alts = sorted([(p, word)] + [(q, (word + 1 + i) % WORDS) for i, q in enumerate(rest)], reverse=True)
    return TokenEvent(
        session_id=session,
        seq=seq,
        token_id=word,
        text=f" w{word}",
        logprob=math.log(p),
        distribution="top_k",
        top_k=[TopKAlternative(token_id=t, text=f" w{t}", logprob=math.log(q)) for q, t in alts],
        model="bench-scaling",
        provider="push",
    )


def workload(tag: str, sessions: int, tokens: int) -> list[TokenEvent]:
    """``tokens`` tokens round-robin over ``sessions`` sessions (as concurrent generations interleave)."""
    per = math.ceil(tokens / sessions)
    return [token(i, f"{tag}-s{i}", seq) for seq in range(per) for i in range(sessions)][:tokens]


# --- reading and waiting -------------------------------------------------------------------------


async def read_all(redis: Redis, key: str) -> list[tuple[int, dict[str, Any]]]:
    """Every entry of a stream: (entry id's milliseconds, decoded JSON)."""
    out: list[tuple[int, dict[str, Any]]] = []
    last = "-"
    while True:
        chunk: list[Any] = list(await redis.xrange(key, min=last, max="+", count=5_000) or [])
        if last != "-":
            chunk = chunk[1:]
        if not chunk:
            return out
        for eid, fields in chunk:
            out.append((int(eid.split(b"-")[0]), json.loads(fields[DATA])))
        last = chunk[-1][0].decode()


async def drained(redis: Redis, settings: CommonSettings, audits: int) -> bool:
    """Whether ``audits`` audits are on the audits streams and the alerters have read and acknowledged all."""
    keys = settings.partition_keys("audits")
    if sum(await asyncio.gather(*(redis.xlen(k) for k in keys))) < audits:
        return False
    for key in keys:
        try:
            groups, stream = await asyncio.gather(redis.xinfo_groups(key), redis.xinfo_stream(key))
        except ResponseError:  # no alerter has created its group here yet
            return False
        group = next((g for g in groups if g["name"] in (AUDIT_GROUP, AUDIT_GROUP.encode())), None)
        if group is None or int(group["pending"]) or group["last-delivered-id"] != stream["last-generated-id"]:
            return False
    return True


async def wait_drained(redis: Redis, settings: CommonSettings, audits: int, limit_s: float) -> float:
    """Poll every 20 ms until :func:`drained`; returns when (perf_counter)."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        if await drained(redis, settings, audits):
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise TimeoutError(f"the pipeline did not drain {audits:,} audits in {limit_s:g} s")


async def wait_balanced(redis: Redis, settings: CommonSettings, alerters: int, limit_s: float = 60) -> None:
    """Until every partition has an owner and the alerters share them evenly (their ownership settles
    over a few lease rounds after start)."""
    keys = settings.partition_keys(f"owner:{AUDIT_GROUP}")
    fair = {settings.partitions // alerters, math.ceil(settings.partitions / alerters)}
    deadline = time.monotonic() + limit_s
    owners: list[Any] = []
    while time.monotonic() < deadline:
        owners = list(await asyncio.gather(*(redis.get(k) for k in keys)))
        served = Counter(owners)
        live = min(alerters, settings.partitions)
        if None not in served and len(served) == live and set(served.values()) <= fair:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the alerters did not share the partitions within {limit_s:g} s: owners {owners}")


def cpu_times(procs: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in procs.items():
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
    return out


def own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- one configuration ---------------------------------------------------------------------------


async def publish(redis: Redis, items: Sequence[tuple[str, dict[bytes, bytes]]], maxlen: int) -> None:
    """Pipelined XADD, as Bus.publish_many does (on a cluster the pipeline splits by node)."""
    pipe = redis.pipeline(transaction=False)
    for key, fields in items:
        pipe.xadd(key, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
    await pipe.execute()


class Deployment:
    """One configuration running: its Redis (a private node, or a cluster of its own), its stack, and
    how many audits its streams hold so far (every measurement adds to them)."""

    def __init__(self, config: Config, args: argparse.Namespace) -> None:
        self.config = config
        self.args = args
        self.total = args.tokens * (args.rounds + 1) + int(args.rate * args.seconds)
        self.cluster = RedisClusterNodes(masters=3, replicas=0) if config.cluster else None
        self.result = Result(config)
        self.audits = 0
        self.redis: Redis | None = None
        self.sent_at: dict[tuple[str, int], int] = {}
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Deployment:
        try:
            if self.cluster is not None:
                self._exit.enter_context(self.cluster)
            env = {
                "UQ_PARTITIONS": str(self.config.partitions),
                # nothing is trimmed, so that every audit can be counted afterwards
                "UQ_MAXLEN_TOKENS": str(self.total),
                "UQ_MAXLEN_AUDITS": str(self.total),
                "UQ_MAXLEN_ALERTS": str(self.total),
                "UQ_LOG_LEVEL": "WARNING",
            }
            self.stack = self._exit.enter_context(
                Stack(
                    services=("auditor", "alerter", "gateway"),
                    auditors=self.args.auditors,
                    alerters=self.config.alerters,
                    own_redis=self.cluster is None,
                    cluster=self.cluster,
                    env=env,
                )
            )
            self.stack.stop_service("gateway")  # it answered /health; its fan-out is bench/gateway's subject
        except BaseException:
            self._exit.close()
            raise
        self.procs = {name: p.pid for name, p in self.stack.procs.items() if name != "gateway"}
        if self.cluster is not None:
            self.procs.update({f"redis-{port}": p.pid for port, p in self.cluster.procs.items()})
        elif self.stack.redis_proc is not None:
            self.procs["redis"] = self.stack.redis_proc.pid
        self.settings = CommonSettings(
            redis_url=self.stack.redis_url,
            stream_prefix=self.stack.prefix,
            redis_cluster=self.cluster is not None,
            partitions=self.config.partitions,
            maxlen_tokens=self.total,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    async def connect(self) -> None:
        """A client as the services connect; wait for the alerters to share the partitions; warm up."""
        self.redis = redis = self.stack.async_client()
        self.bus = Bus(redis, self.settings)
        await wait_balanced(redis, self.settings, self.config.alerters)
        if self.cluster is not None:
            ports = Counter(self.cluster.master_of(k) for k in self.settings.partition_keys("tokens"))
            self.result.placement = "partitions per master " + "/".join(str(n) for _, n in sorted(ports.items()))
        await self.burst(workload("warm", self.args.sessions, min(self.args.tokens, 2_000)))  # connections, caches

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def burst(self, events: Sequence[TokenEvent]) -> None:
        """Publish ``events`` as fast as possible and wait until drained; keeps the fastest round."""
        maxlen = self.settings.maxlen_tokens
        items = [(self.bus.session_key("tokens", e.session_id), encode(e)) for e in events]
        cpu0, me0 = cpu_times(self.procs), own_cpu()
        t0 = time.perf_counter()
        for i in range(0, len(items), PUBLISH_BATCH):
            await publish(self.bus.redis, items[i : i + PUBLISH_BATCH], maxlen)
        self.audits += len(items)
        t1 = await wait_drained(self.bus.redis, self.settings, self.audits, self.args.drain_limit)
        cpu1, me1 = cpu_times(self.procs), own_cpu()
        r = self.result
        if not events[0].session_id.startswith("warm-") and t1 - t0 < r.seconds:
            r.tokens, r.seconds, r.producer_cpu = len(events), t1 - t0, me1 - me0
            r.cpu = {n: cpu1[n] - cpu0[n] for n in cpu1 if n in cpu0}

    async def paced(self, events: Sequence[TokenEvent], rate: float) -> None:
        """Publish ``events`` at ``rate`` tokens/s (every 5 ms what is due), each with ``ts_ns`` set just
        before its XADD; wait until drained."""
        maxlen = self.settings.maxlen_tokens
        start = time.perf_counter()
        sent = 0
        while sent < len(events):
            due = min(len(events), int((time.perf_counter() - start) * rate) + 1)
            if due > sent:
                now = time.time_ns()
                batch = [e.model_copy(update={"ts_ns": now}) for e in events[sent:due]]
                await publish(
                    self.bus.redis, [(self.bus.session_key("tokens", e.session_id), encode(e)) for e in batch], maxlen
                )
                self.sent_at.update({(e.session_id, e.seq): now for e in batch})
                sent = due
            await asyncio.sleep(0.005)
        self.audits += len(events)
        await wait_drained(self.bus.redis, self.settings, self.audits, self.args.drain_limit)
        self.result.paced_rate = rate

    async def entries(self, stream: str) -> list[tuple[int, dict[str, Any]]]:
        out: list[tuple[int, dict[str, Any]]] = []
        for key in self.settings.partition_keys(stream):
            out += await read_all(self.bus.redis, key)
        return out

    async def count(self) -> None:
        """Audits per round and duplicates; alerter entries by type; the paced run's delays."""
        r = self.result
        audits = await self.entries("audits")
        for n in range(self.args.rounds):
            seen = Counter((a["session_id"], a["seq"]) for _, a in audits if a["session_id"].startswith(f"burst{n}-"))
            r.audited.append(len(seen))
            r.duplicates += sum(k - 1 for k in seen.values())
        for ms, a in audits:
            if a["session_id"].startswith("paced"):
                r.audit_delay_ms.append(ms - self.sent_at[(a["session_id"], a["seq"])] / 1e6)
        for ms, alert in await self.entries("alerts"):
            sid = alert["session_id"]
            if sid.startswith("warm-"):
                continue
            r.alerts[alert["type"]] += 1
            if sid.startswith("paced") and "token_seq" in alert:
                r.alert_delay_ms.append(ms - self.sent_at[(sid, alert["token_seq"])] / 1e6)


# --- report --------------------------------------------------------------------------------------


def table(results: list[Result], args: argparse.Namespace) -> str:
    base = results[0]
    lines = [
        f"| configuration | tokens/s | ÷ (a) | CPU s per 1,000 tokens: auditors / alerters / Redis / all | "
        f"tokens/s per core | alert delay p50 / p99 at {args.rate:,.0f} tokens/s | audit delay p50 / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per = {role: r.role_cpu(role) / r.tokens * 1_000 for role in ("auditor", "alerter", "redis")}
        lines.append(
            f"| {r.config.label} | {r.rate:,.0f} | {r.rate / base.rate:.2f} | "
            f"{per['auditor']:.3f} / {per['alerter']:.3f} / {per['redis']:.3f} / **{r.cpu_per_1k:.3f}** | "
            f"{r.per_core:,.0f} | {percentile(r.alert_delay_ms, 0.5):.1f} / {percentile(r.alert_delay_ms, 0.99):.1f} ms | "
            f"{percentile(r.audit_delay_ms, 0.5):.1f} / {percentile(r.audit_delay_ms, 0.99):.1f} ms |"
        )
    return "\n".join(lines)


def by_key(results: list[Result], key: str) -> Result | None:
    return next((r for r in results if r.config.key == key), None)


def report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.tokens:,} tokens over {args.sessions} sessions per burst (top-5 entries), best of {args.rounds}; "
        f"{args.auditors} auditor{'s' * (args.auditors > 1)} in every configuration; paced {args.rate:,.0f} tokens/s × "
        f"{args.seconds:g} s over {args.paced_sessions} sessions; this machine: {psutil.cpu_count()} cores (shared)"
    )
    print()
    print(table(results, args))
    print()
    for r in results:
        ceiling, busiest = r.ceiling
        extra = f"; {r.placement}" if r.placement else ""
        print(
            f"{r.config.label}: burst {r.tokens:,} in {r.seconds:.2f} s, {sum(r.cpu.values()) / r.seconds:.2f} cores busy "
            f"(producer {r.producer_cpu / r.seconds:.2f} more); busiest process {busiest} "
            f"{r.cpu[busiest] / r.seconds:.2f} cores{extra}"
        )

    # correctness: exactly once, and the same alerts everywhere
    reference = results[0].alerts
    agree = 0
    for r in results:
        once = r.duplicates == 0 and all(n == args.tokens for n in r.audited)
        same = r.alerts == reference
        agree += once and same
        kinds = ", ".join(f"{n:,} {t}" for t, n in sorted(r.alerts.items()))
        print(
            f"{r.config.label}: audited {'+'.join(f'{n:,}' for n in r.audited)} of {args.tokens:,} per round, "
            f"{r.duplicates} duplicates; alerts: {kinds}" + ("" if same else "  <-- differs from (a)")
        )

    print("\nRatios (measured side by side in this run):")
    pairs = [
        ("b", "a", "4 partitions ÷ 1, one node, 1 alerter"),
        ("c", "b", "2 alerters ÷ 1, one node, 4 partitions"),
        ("e", "d", "2 alerters ÷ 1, cluster, 4 partitions"),
        ("d", "b", "cluster ÷ one node, 4 partitions, 1 alerter"),
        ("e", "c", "cluster ÷ one node, 4 partitions, 2 alerters"),
        ("f", "e", "8 partitions ÷ 4, cluster, 2 alerters"),
    ]
    ratios: dict[tuple[str, str], tuple[float, float]] = {}
    for x, y, what in pairs:
        rx, ry = by_key(results, x), by_key(results, y)
        if rx is None or ry is None:
            continue
        ratios[(x, y)] = (rx.rate / ry.rate, rx.cpu_per_1k / ry.cpu_per_1k)
        print(f"  {what}: tokens/s ×{rx.rate / ry.rate:.2f}, CPU per token ×{rx.cpu_per_1k / ry.cpu_per_1k:.2f}")

    print(
        "\nWhat this predicts for more cores (if they are free: each process runs on at most one core, Redis is "
        "single-threaded, and the work splits as the CPU seconds measured here did):"
    )
    for r in results:
        ceiling, busiest = r.ceiling
        row = ", ".join(f"{c} cores ≈ {min(c * r.per_core, ceiling):,.0f}" for c in (4, 8, 16))
        print(
            f"  {r.config.label}: {r.per_core:,.0f} tokens/s per core, up to {ceiling:,.0f} tokens/s where "
            f"{busiest} fills its core: {row} tokens/s"
        )
    big = results[-1]
    need = {role: big.role_cpu(role) / big.tokens * 10_000 for role in ("auditor", "alerter", "redis")}
    print(
        f"  sizing from {big.config.label}: every 10,000 tokens/s takes {need['auditor']:.2f} cores of auditors, "
        f"{need['alerter']:.2f} of alerters and {need['redis']:.2f} of Redis ({sum(need.values()):.2f} in all); "
        "as each process has one core, add an auditor, an alerter (and a partition for it) or a master "
        "per core of its role"
    )

    goal(
        BENCH,
        "configurations audited exactly once, with (a)'s alerts",
        agree / len(results),
        1.0,
        "ratio",
        detail=f"{len(results)} configurations; {sum(reference.values()):,} alerter entries each",
    )
    if ("e", "c") in ratios:
        tput, cpu = ratios[("e", "c")]
        goal(
            BENCH,
            "cluster ÷ one node tokens/s (4 partitions, 2 alerters)",
            tput,
            0.7,
            "x",
            detail=f"CPU per token ×{cpu:.2f}; 3 masters on the same 2 cores",
        )
        goal(
            BENCH,
            "cluster ÷ one node CPU per token (4 partitions, 2 alerters)",
            cpu,
            1.25,
            "x",
            higher_is_better=False,
            detail="what a cluster costs per token where the cores are free",
        )
    if ("e", "d") in ratios:
        tput, cpu = ratios[("e", "d")]
        goal(
            BENCH,
            "2 alerters ÷ 1 alerter tokens/s (cluster, 4 partitions)",
            tput,
            0.9,
            "x",
            detail=f"CPU per token ×{cpu:.2f}; on 2 cores a replica adds no core",
        )
    last = by_key(results, "e") or results[-1]
    goal(
        BENCH,
        f"alert delay p99 at {args.rate:,.0f} tokens/s, {last.config.label[4:]}",
        percentile(last.alert_delay_ms, 0.99),
        100.0,
        "ms",
        higher_is_better=False,
        detail=f"p50 {percentile(last.alert_delay_ms, 0.5):.1f} ms; {len(last.alert_delay_ms):,} alerts",
    )


async def run(args: argparse.Namespace) -> None:
    """Start every configuration, then measure them in turn, round by round (so that a drift in the
    machine's load falls on all of them alike), then the paced runs, then count."""
    configs = [c for c in CONFIGS if not args.only or c.key in args.only.split(",")]
    print(f"scaling: configurations {', '.join(c.key for c in configs)}; pid {os.getpid()}", flush=True)
    with contextlib.ExitStack() as running:
        t = time.monotonic()
        deployments: list[Deployment] = []
        try:
            for c in configs:
                deployments.append(running.enter_context(Deployment(c, args)))
            for d in deployments:
                await d.connect()
            print(f"  started {len(deployments)} stacks in {time.monotonic() - t:.0f} s", flush=True)
            for n in range(args.rounds):
                bursts = workload(f"burst{n}", args.sessions, args.tokens)
                paced = workload(f"paced{n}", args.paced_sessions, int(args.rate * args.seconds / args.rounds))
                for d in deployments if n % 2 == 0 else reversed(deployments):  # alternate the order
                    await d.burst(bursts)
                    await d.paced(paced, args.rate)
                best = ", ".join(f"{d.config.key} {d.result.rate:,.0f}" for d in deployments)
                print(f"  round {n + 1} of {args.rounds}: best so far {best} tokens/s", flush=True)
            for d in deployments:
                await d.count()
        finally:
            for d in deployments:
                await d.close()
    report([d.result for d in deployments], args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3,000-token bursts, one round, 3 s paced")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per burst (default 30,000)")
    parser.add_argument("--sessions", type=int, default=100, help="concurrent sessions of a burst")
    parser.add_argument(
        "--rounds", type=int, default=None, help="bursts per configuration, the fastest kept (default 3)"
    )
    parser.add_argument("--rate", type=float, default=2_000.0, help="tokens/s of the paced runs")
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds of paced runs in all, split over the rounds (default 12)"
    )
    parser.add_argument("--paced-sessions", type=int, default=50, help="concurrent sessions of a paced run")
    parser.add_argument("--auditors", type=int, default=2, help="auditor processes in every configuration")
    parser.add_argument("--only", default="", help="comma-separated configurations, e.g. a,e")
    parser.add_argument("--drain-limit", type=float, default=120.0, help="most seconds to wait for a drain")
    args = parser.parse_args(argv)
    defaults = (
        {"tokens": 3_000, "rounds": 1, "seconds": 3.0}
        if args.quick
        else {"tokens": 30_000, "rounds": 3, "seconds": 12.0}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
