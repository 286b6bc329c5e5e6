"""Benchmark: sustained tokens/s the recorder writes into PostgreSQL and into SQLite, beside the
rate at which the auditor produces audits, as ratios measured in one run.

The recorder (in-process, default settings: batches of ``UQ_BATCH_SIZE`` = 128, one transaction per
batch) drains a backlog of N audit entries of S interleaved sessions (10 top-k alternatives each, as
the auditor publishes them) from the real Redis into a fresh database; the time runs from start until
every token is committed and acknowledged. Beside it, in the same run:
  - one real auditor replica (``services.auditor.service.Auditor`` in a bus consumer) turning
    full-logit token entries (V = 49,152, SmolLM2's vocabulary) into audits: the rate audits arrive;
  - ``codec.decode`` of the same N audits in one process: the ceiling of any single-process
    consumer of ``uq:audits`` (pydantic validation of each entry);
  - ``Store.record`` alone (no Redis, no decoding): what the database side sustains.
Goal: ≥ 5,000 tokens/s into PostgreSQL, and a ratio recorder / auditor ≥ 1 (the recorder never
falls behind).

    .venv/bin/python -m bench.recorder [--tokens 20000] [--sessions 20] [--rounds 2] [--auditor-tokens 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from bench.report import goal
from services.common.bus import Bus
from services.common.codec import decode, encode, logits_bytes
from services.common.contracts import AuditEvent, Event, Metrics, SessionEvent, TokenEvent, TopKAlternative, now_ns
from services.common.contracts.history import SessionQuery
from services.recorder.service import Recorder
from services.recorder.settings import RecorderSettings
from services.recorder.store import Store

REDIS = os.environ.get("UQ_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES = os.environ.get("UQ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
VOCAB = 49_152


def workload(n_tokens: int, n_sessions: int) -> list[tuple[str, Event]]:
    """Lifecycle entries, then the audits of S sessions generating side by side."""
    t0 = now_ns()
    out: list[tuple[str, Event]] = []
    ids = [f"bench-{i:04d}" for i in range(n_sessions)]
    for sid in ids:
        out.append(("sessions", SessionEvent(session_id=sid, seq=0, status="queued", prompt="Explain AI", model="m")))
    rng = np.random.default_rng(0)
    for n in range(n_tokens):
        sid, seq = ids[n % n_sessions], n // n_sessions
        p = float(rng.uniform(0.01, 0.99))
        top = [TopKAlternative(token_id=100 + k, text=f" alt{k}", logprob=-0.3 * (k + 1)) for k in range(10)]
        metrics = Metrics(
            prob=p,
            surprisal=-np.log2(p),
            entropy=2.5,
            margin=0.2,
            rank=1,
            hbar_s=1.7,
            fisher_trace=0.6,
            varentropy=0.9,
            exact=True,
        )
        audit = AuditEvent(
            session_id=sid,
            seq=seq,
            ts_ns=t0 + n,
            token_id=100,
            text=" token",
            distribution="full",
            metrics=metrics,
            top_k=top,
            model="m",
            token_ts_ns=t0 + n,
        )
        out.append(("audits", audit))
    return out


def decode_rate(items: list[tuple[str, Event]]) -> float:
    """Audits/s one process can parse (``codec.decode``, what every bus consumer does per entry)."""
    entries = [(stream, encode(event)) for stream, event in items if stream == "audits"]
    start = time.perf_counter()
    for stream, fields in entries:
        decode(stream, fields)
    return len(entries) / (time.perf_counter() - start)


async def auditor_rate(redis: Redis, n_tokens: int) -> float | None:
    """Audits/s one real auditor replica publishes, from full-logit token entries (V = 49,152) on the bus.

    None when the auditor cannot be imported (it is built alongside).
    """
    try:
        from services.auditor.service import Auditor
        from services.auditor.settings import AuditorSettings
    except ImportError:
        return None
    prefix = f"bench-aud-{uuid.uuid4().hex[:8]}:"
    settings = AuditorSettings(redis_url=REDIS, stream_prefix=prefix, maxlen_tokens=2 * n_tokens, block_ms=50)
    bus = Bus(redis, settings)
    rng = np.random.default_rng(2)
    top = [TopKAlternative(token_id=k, text=f" alt{k}", logprob=-0.3 * (k + 1)) for k in range(20)]
    for i in range(0, n_tokens, 64):
        batch = []
        for seq in range(i, min(i + 64, n_tokens)):
            logits = rng.standard_normal(VOCAB, dtype=np.float32) * 3
            token = TokenEvent(
                session_id=f"bench-{seq % 20:04d}",
                seq=seq // 20,
                token_id=int(logits.argmax()),
                text=" token",
                logprob=-0.5,
                distribution="full",
                top_k=top,
                vocab_size=VOCAB,
                logits_dtype="float16",
                model="m",
                logits=logits_bytes(logits),
            )
            batch.append(("tokens", token))
        await bus.publish_many(batch)
    auditor = Auditor(settings)
    await asyncio.to_thread(auditor.warm_up)
    consumer = bus.consumer("tokens", settings.token_group, auditor.handle)
    await consumer.ensure_group()
    start = time.perf_counter()
    while consumer.stats.processed + consumer.stats.dead_lettered < n_tokens:
        await consumer.step(block_ms=50)
    elapsed = time.perf_counter() - start
    audits = await redis.xlen(bus.key("audits"))
    await _drop_keys(redis, prefix)
    return audits / elapsed


async def store_rate(database_url: str, items: list[tuple[str, Event]], batch: int) -> float:
    """Tokens/s ``Store.record`` commits alone (no Redis, no decoding), in batches of ``batch``."""
    events = [event for _, event in items]
    store = Store.from_url(database_url)
    await store.migrate()
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        await store.record(events[i : i + batch])
    elapsed = time.perf_counter() - start
    await store.close()
    return sum(1 for stream, _ in items if stream == "audits") / elapsed


@dataclass
class Run:
    """One drain of the backlog: wall-clock rate and the CPU seconds it cost."""

    tokens: int
    wall_s: float
    process_cpu_s: float  # the recorder's process (SQLite works inside it)
    server_cpu_s: float  # PostgreSQL backends serving it; 0 for SQLite

    @property
    def rate(self) -> float:
        return self.tokens / self.wall_s

    @property
    def capacity(self) -> float:
        """Tokens/s with a free core each for the recorder and the database server (CPU-bound)."""
        return self.tokens / max(self.process_cpu_s, self.server_cpu_s)


def _backend_cpu(database_url: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to this database (read from /proc)."""
    name = make_url(database_url).database
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        pids = [pid for (pid,) in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return out


async def recorder_rate(redis: Redis, database_url: str, items: list[tuple[str, Event]]) -> Run:
    """Tokens/s the recorder commits while draining a backlog of ``items``, and its CPU cost."""
    prefix = f"bench-rec-{uuid.uuid4().hex[:8]}:"
    settings = RecorderSettings(redis_url=REDIS, stream_prefix=prefix, database_url=database_url, block_ms=50)
    bus = Bus(redis, settings)
    for i in range(0, len(items), 1000):
        await bus.publish_many(items[i : i + 1000])
    n_tokens = sum(1 for stream, _ in items if stream == "audits")
    store = Store.from_url(database_url)
    await store.migrate()
    postgres = store.dialect == "postgresql"
    server_before = _backend_cpu(database_url) if postgres else {}
    recorder = Recorder(bus, store, settings)
    stop = asyncio.Event()
    start, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(recorder.run(stop))
    while recorder.totals.tokens < n_tokens:  # noqa: ASYNC110 - polling a counter, 10 ms resolution
        await asyncio.sleep(0.01)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    server_after = _backend_cpu(database_url) if postgres else {}
    server = sum(t - server_before.get(pid, 0.0) for pid, t in server_after.items())
    stop.set()
    await task
    records, _ = await store.list_sessions(SessionQuery(limit=1000))
    assert sum(r.tokens for r in records) == n_tokens, "tokens lost or doubled"
    await store.close()
    await _drop_keys(redis, prefix)
    return Run(n_tokens, elapsed, cpu, server)


async def _drop_keys(redis: Redis, prefix: str) -> None:
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


class Databases:
    """Fresh, throwaway databases: a PostgreSQL database or an SQLite file per round."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.folder = tempfile.TemporaryDirectory(prefix="bench-recorder-")

    def postgresql(self) -> str:
        name = f"uqbench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(POSTGRES).set(drivername="postgresql+psycopg", database=name).render_as_string(False)

    def sqlite(self) -> str:
        return f"sqlite:///{Path(self.folder.name) / f'{uuid.uuid4().hex[:8]}.sqlite3'}"

    def drop(self) -> None:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            for name in self.created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.folder.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--auditor-tokens", type=int, default=1_024, help="full-logit tokens per auditor round")
    args = parser.parse_args()

    items = workload(args.tokens, args.sessions)
    gc.freeze()  # the workload is the bench's, not the recorder's: keep it out of every GC pass
    redis = Redis.from_url(REDIS)
    databases = Databases()
    rates: dict[str, list[float]] = {
        "postgresql": [],
        "sqlite": [],
        "auditor": [],
        "decode": [],
        "store-postgresql": [],
        "store-sqlite": [],
    }
    capacity: dict[str, list[float]] = {"postgresql": [], "sqlite": []}
    cpu_per_token: dict[str, list[tuple[float, float]]] = {"postgresql": [], "sqlite": []}
    batch = RecorderSettings().recorder_batch_size
    try:
        for r in range(args.rounds):  # alternate, so drift on a shared machine hits every figure alike
            for db in ("postgresql", "sqlite"):
                run = await recorder_rate(
                    redis, databases.postgresql() if db == "postgresql" else databases.sqlite(), items
                )
                rates[db].append(run.rate)
                capacity[db].append(run.capacity)
                cpu_per_token[db].append((run.process_cpu_s / run.tokens * 1e6, run.server_cpu_s / run.tokens * 1e6))
            audited = await auditor_rate(redis, args.auditor_tokens)
            if audited is not None:
                rates["auditor"].append(audited)
            rates["decode"].append(decode_rate(items))
            rates["store-postgresql"].append(await store_rate(databases.postgresql(), items, batch))
            rates["store-sqlite"].append(await store_rate(databases.sqlite(), items, batch))
            print(
                f"round {r + 1}: "
                + ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in rates.items() if values),
                flush=True,
            )
    finally:
        databases.drop()
        await redis.aclose()

    med = {name: statistics.median(values) for name, values in rates.items() if values}
    print(f"\n{args.tokens:,} audits of {args.sessions} sessions, {args.rounds} rounds, medians:")
    print(f"  recorder → PostgreSQL        {med['postgresql']:8,.0f} tokens/s   (goal ≥ 5,000)")
    print(f"  recorder → SQLite            {med['sqlite']:8,.0f} tokens/s")
    if "auditor" in med:
        print(f"  auditor (one replica)        {med['auditor']:8,.0f} audits/s   (full logits, V = {VOCAB:,})")
    else:
        print("  auditor                      unavailable (services.auditor cannot be imported)")
    print(f"  decode ceiling (one process) {med['decode']:8,.0f} audits/s   (codec.decode, every bus consumer)")
    for db in ("postgresql", "sqlite"):
        print(f"  Store.record alone → {db:10} {med['store-' + db]:8,.0f} tokens/s   (batches of {batch})")
    print("CPU per token (noise-resistant: what it would do with a free core each for recorder and database):")
    for db in ("postgresql", "sqlite"):
        process = statistics.median(p for p, _ in cpu_per_token[db])
        server = statistics.median(s for _, s in cpu_per_token[db])
        print(
            f"  recorder → {db:10}  recorder process {process:6.0f} µs, database server {server:6.0f} µs"
            f"  → capacity {statistics.median(capacity[db]):8,.0f} tokens/s"
        )
    for db in ("postgresql", "sqlite"):
        ratios = [f"÷ decode ceiling {med[db] / med['decode']:.2f}"]
        if "auditor" in med:
            ratios.insert(0, f"÷ auditor {med[db] / med['auditor']:.2f}")
        print(f"  ratio recorder({db}) " + ", ".join(ratios))
    goal(
        "recorder",
        "tokens/s recorded into PostgreSQL",
        med["postgresql"],
        5_000,
        "tokens/s",
        detail=f"SQLite {med['sqlite']:,.0f}/s; capacity with a free core "
        f"{statistics.median(capacity['postgresql']):,.0f}/s",
    )
    if "auditor" in med:
        goal(
            "recorder",
            "recorder (PostgreSQL) / one auditor's output",
            med["postgresql"] / med["auditor"],
            1.0,
            "x",
            detail=f"auditor {med['auditor']:,.0f} audits/s",
        )


if __name__ == "__main__":
    asyncio.run(main())
