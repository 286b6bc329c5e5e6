"""Alerter throughput beside an auditor-like output rate, measured side by side in one run.

    .venv/bin/python bench/alerter.py [--sessions 200] [--tokens 100]

Prints audits/s of
- ``auditor``: the real auditor end to end through Redis (bench/auditor.py's round: tokens already
  in ``uq:tokens``, full float16 logits at V = 49,152 as the embedded model sends them, and top-20
  only), i.e. what one auditor process feeds the alerter (``--no-auditor`` skips it);
- ``publish``: publishing the same audits to ``uq:audits`` in batches of 128 (what an auditor's
  output costs Redis and the client; an upper bound of what any auditor can feed the alerter);
- ``engine``: the rules engine alone (the four built-in rules, the quantum rule, risk, cooldowns;
  no Redis), the goal being ≥ 20,000 audits/s per process;
- ``end-to-end``: the alerter service reading those audits from Redis and committing alerts, state
  and acknowledgements;
and the ratios of the alerter's rates to them (≥ 1 means the alerter keeps up).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.report import goal
from services.alerter.engine import RulesEngine
from services.alerter.ruleset import load_rules
from services.alerter.service import Alerter
from services.alerter.session import SessionState
from services.alerter.settings import AlerterSettings
from services.common.bus import Bus
from services.common.contracts import AuditEvent, Metrics, TopKAlternative
from services.common.redis_client import redis_client
from services.common.runner import settle_gc


def make_audits(sessions: int, tokens: int, seed: int = 0) -> list[AuditEvent]:
    """Round-robin over sessions (as concurrent generations interleave), realistic metric spreads."""
    rng = random.Random(seed)
    out = []
    for seq in range(tokens):
        for s in range(sessions):
            prob = min(max(rng.betavariate(2, 0.8), 1e-6), 1.0)
            entropy = rng.gammavariate(1.5, 1.0)
            surprisal = -math.log2(prob)
            out.append(
                AuditEvent(
                    session_id=f"bench-{s}",
                    seq=seq,
                    text=rng.choice([" the", " quantum", " Paris", ",", " model"]),
                    distribution="full",
                    metrics=Metrics(
                        prob=prob,
                        surprisal=surprisal,
                        entropy=entropy,
                        margin=rng.random(),
                        rank=rng.randint(1, 5),
                        hbar_s=math.sqrt(entropy * surprisal),
                        fisher_trace=rng.random(),
                        varentropy=rng.random(),
                        exact=True,
                    ),
                    top_k=[TopKAlternative(token_id=i, text=f" t{i}", logprob=-0.5 * (i + 1)) for i in range(10)],
                    model="bench",
                    token_ts_ns=time.time_ns(),
                )
            )
    return out


def bench_engine(settings: AlerterSettings, audits: list[AuditEvent]) -> tuple[float, int]:
    engine = RulesEngine(load_rules(settings), settings)
    states: dict[str, SessionState] = {}
    emitted = 0
    start = time.perf_counter()
    for a in audits:
        st = states.get(a.session_id)
        if st is None:
            st = states[a.session_id] = SessionState(a.session_id)
        emitted += len(engine.accept(st, a, 0.0))
    return len(audits) / (time.perf_counter() - start), emitted


async def bench_redis(settings: AlerterSettings, sessions: int, tokens: int) -> tuple[float, float, int]:
    redis = redis_client(settings.redis_url)  # as the service connects
    bus = Bus(redis, settings)
    try:
        alerter = Alerter(bus, settings, load_rules(settings), name="bench")
        await alerter.start()
        audits = make_audits(sessions, tokens)
        n = len(audits)
        start = time.perf_counter()
        for i in range(0, n, 128):
            await bus.publish_many([("audits", a) for a in audits[i : i + 128]])
        publish = n / (time.perf_counter() - start)
        del audits  # the alerter's process would not hold the producer's objects (they slow its GC)
        settle_gc()  # as python -m services.alerter does after start-up
        start = time.perf_counter()
        while alerter.audits.stats.processed < n:
            await alerter.step(block_ms=10)
        e2e = n / (time.perf_counter() - start)
        emitted = int(await redis.xlen(bus.key("alerts")))
        return publish, e2e, emitted
    finally:
        gc.unfreeze()
        keys = [k async for k in redis.scan_iter(match=settings.stream_prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i : i + 1000])
        await redis.aclose()


async def bench_auditor(redis_url: str, full_n: int, top_k_n: int) -> tuple[float, float]:
    """The auditor's end-to-end tokens/s (full logits at V = 49,152; top-20 only), one process."""
    from bench.auditor import e2e_round
    from services.auditor.settings import AuditorSettings

    base = AuditorSettings(redis_url=redis_url, maxlen_tokens=max(50_000, top_k_n))
    redis = redis_client(redis_url)
    try:
        await e2e_round(redis, base, "full", 49_152, 64, naive=False)  # warm-up: numba compiles or loads its cache
        full, _ = await e2e_round(redis, base, "full", 49_152, full_n, naive=False)
        top_k, _ = await e2e_round(redis, base, "top_k", 0, top_k_n, naive=False)
        return full, top_k
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=512, help="UQ_BATCH_SIZE of the alerter")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is kept")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-auditor", action="store_true", help="skip measuring the real auditor")
    args = parser.parse_args()
    audits = make_audits(args.sessions, args.tokens)
    engine_rate = publish = e2e = auditor_full = auditor_top_k = 0.0
    for _ in range(args.repeat):  # interleaved rounds, so that all three see the same machine load
        settings = AlerterSettings(
            redis_url=args.redis_url,
            stream_prefix=f"uqbench-{uuid.uuid4().hex[:8]}:",
            python_rules=["examples.quantum_rule:QuantumUncertainty"],
            batch_size=args.batch_size,
            maxlen_audits=max(200_000, 2 * len(audits)),
        )
        rate, engine_out = bench_engine(settings, audits)
        engine_rate = max(engine_rate, rate)
        p, e, e2e_out = asyncio.run(bench_redis(settings, args.sessions, args.tokens))
        publish, e2e = max(publish, p), max(e2e, e)
        if not args.no_auditor:
            f, k = asyncio.run(bench_auditor(args.redis_url, 600, 10_000))
            auditor_full, auditor_top_k = max(auditor_full, f), max(auditor_top_k, k)
    print(
        f"{len(audits)} audits, {args.sessions} sessions × {args.tokens} tokens, {len(load_rules(settings))} rules, "
        f"batch {args.batch_size}, best of {args.repeat}"
    )
    print(f"publish (auditor-like output) {publish:>10,.0f} audits/s")
    print(f"engine alone                  {engine_rate:>10,.0f} audits/s  ({engine_out} outputs)")
    print(f"end-to-end through Redis      {e2e:>10,.0f} audits/s  ({e2e_out} outputs)")
    if auditor_full:
        print(f"auditor e2e, full V=49,152    {auditor_full:>10,.0f} audits/s")
        print(f"auditor e2e, top-20 only      {auditor_top_k:>10,.0f} audits/s")
    print(f"ratio engine / publish        {engine_rate / publish:>10.2f}")
    print(f"ratio end-to-end / publish    {e2e / publish:>10.2f}")
    if auditor_full:
        print(f"ratio end-to-end / auditor full   {e2e / auditor_full:>6.2f}")
        print(f"ratio end-to-end / auditor top-20 {e2e / auditor_top_k:>6.2f}")
    goal(
        "alerter",
        "rules engine audits/s (one process)",
        engine_rate,
        20_000,
        "audits/s",
        detail=f"{engine_rate / publish:.2f}x the publish rate of the same audits",
    )
    goal(
        "alerter",
        "end to end through Redis / publish rate of the same audits",
        e2e / publish,
        1.0,
        "x",
        detail=f"{e2e:,.0f} vs {publish:,.0f} audits/s",
    )
    if auditor_full:
        goal(
            "alerter",
            "end to end / one auditor's output (full logits)",
            e2e / auditor_full,
            1.0,
            "x",
            detail=f"{e2e:,.0f} vs {auditor_full:,.0f} audits/s: the alerter keeps up with one auditor",
        )


if __name__ == "__main__":
    main()
