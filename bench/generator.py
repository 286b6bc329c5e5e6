"""Generator speed: tokens/s with full-logit publishing through Redis beside bare ``generate()``.

    .venv/bin/python bench/generator.py [--tokens 32] [--prompts 3] [--rounds 2] [--threads N] [--random-mistral tiny|7b]

Measured side by side in one run, alternating per prompt (timings on shared machines drift; ratios do not):
- ``bare``: the same model's ``generate()`` (greedy, KV cache, no auditing, nothing published);
- ``engine loop alone``: our decoding loop (services/generator/hf/decoding.py) with full logits,
  top-20 and texts, nothing published: separates the loop's cost from publishing's;
- ``generator``: the real worker (services/generator/worker.py) through the real Redis: the job read
  from ``uq:jobs``, every token published to ``uq:tokens`` with its logprob, top-20 and the raw
  logits of the full vocabulary as float16, lifecycle on ``uq:sessions``; timed from the job's
  submission to its terminal entry.
Both count the prompt's prefill and the tokens actually produced (each stops at most at --tokens).

Then ``--concurrent N`` (default 8) jobs submitted at once through the same worker, batched by the
transformers engine (services/generator/hf/batching.py), beside the same jobs run one at a time:
aggregate tokens/s ÷ one job alone (goal ≥ 3 at 8), and each job's time to first token.

Printed: tokens/s of each, the ratio (goal ≥ 0.95: publishing the audit data costs ≤ 5 %), peak
memory, and the bare speed against the machine's limit: a decoding step reads every weight once, so
tokens/s ≤ memory bandwidth ÷ model bytes (bandwidth measured here with a large numpy copy).
``--random-mistral 7b`` measures a randomly initialised Mistral-7B-sized model in fp16 instead
(GPU; the same compute as the real one), ``tiny`` a small one (a CPU check of that path).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from redis.asyncio import Redis

from bench.report import goal
from services.common.bus import Bus
from services.common.codec import decode
from services.common.contracts import JobRequest, SamplingParams, SessionEvent
from services.generator.engine import GenerationRequest, TokenStep
from services.generator.hf.engine import TransformersEngine
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings
from services.generator.worker import Worker

PROMPTS = [
    "The history of the Roman Empire",
    "Once upon a time, in a land far away,",
    "The three laws of thermodynamics are",
    "In the beginning of the twentieth century,",
    "def fibonacci(n):",
    "My favourite recipe for pancakes is",
]


def memory_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes/s moved by a large numpy copy (read + write), best of ``repeats``."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return 2 * src.nbytes / best


def random_mistral(size: str, tokenizer: Any, device: str) -> Any:
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    shape: dict[str, int] = (
        {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8}
        if size == "7b"
        else {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8,
              "num_key_value_heads": 2}
    )  # fmt: skip
    # sliding_window None: as Mistral-7B v0.2 and later (full attention), so that the batch's cache is plain
    config = MistralConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=4096,
        eos_token_id=tokenizer.eos_token_id,
        sliding_window=None,
        **shape,
    )
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MistralForCausalLM(config)
    finally:
        torch.set_default_dtype(torch.float32)
    return model.eval()


def bare_generate(engine: TransformersEngine, prompt: str, max_tokens: int) -> tuple[int, float]:
    import torch

    lm = engine.loaded
    assert lm is not None
    ids = lm.tokenizer(prompt, return_tensors="pt").input_ids.to(lm.device)
    _sync(lm.device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = lm.model.generate(ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=lm.tokenizer.eos_token_id)
    _sync(lm.device)
    return int(out.shape[1] - ids.shape[1]), time.perf_counter() - started


def _sync(device: Any) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


def engine_alone(engine: TransformersEngine, prompt: str, max_tokens: int) -> tuple[int, float]:
    """The engine's decoding loop with full logits, top-k and texts, nothing published."""
    request = GenerationRequest(
        session_id="bench", prompt=prompt, messages=None, full_logits=True, top_k_alternatives=20,
        sampling=SamplingParams(temperature=0, max_tokens=max_tokens),
    )  # fmt: skip
    assert engine.loaded is not None
    _sync(engine.loaded.device)
    started = time.perf_counter()
    produced = sum(isinstance(step, TokenStep) for step in engine.stream(request))
    _sync(engine.loaded.device)
    return produced, time.perf_counter() - started


async def through_redis(bus: Bus, model: str | None, prompt: str, max_tokens: int) -> tuple[int, float]:
    session = f"bench-{uuid.uuid4().hex[:8]}"
    sessions = bus.key("sessions")
    last = (await bus.redis.xinfo_stream(sessions))["last-generated-id"] if await bus.redis.exists(sessions) else "0"
    job = JobRequest(
        session_id=session,
        seq=0,
        prompt=prompt,
        model=model,
        sampling=SamplingParams(temperature=0, max_tokens=max_tokens),
    )
    started = time.perf_counter()
    await bus.publish("jobs", job)
    while True:
        for _stream, entries in await bus.redis.xread({sessions: last}, block=1000) or []:
            for entry_id, fields in entries:
                last = entry_id
                event = decode("sessions", fields)
                if isinstance(event, SessionEvent) and event.session_id == session and event.seq == 2:
                    assert event.status == "finished", event
                    return event.tokens or 0, time.perf_counter() - started


async def concurrent_through_redis(
    bus: Bus, model: str | None, prompts: list[str], max_tokens: int
) -> tuple[int, float, list[float]]:
    """Submit one job per prompt at once; (tokens, seconds until the last ended, time to first token of each)."""
    import json

    streams = {bus.key("sessions"): "$", bus.key("tokens"): "$"}
    for key in streams:
        if await bus.redis.exists(key):
            streams[key] = (await bus.redis.xinfo_stream(key))["last-generated-id"]
    ids = [f"bench-{uuid.uuid4().hex[:8]}" for _ in prompts]
    jobs = [
        JobRequest(
            session_id=sid, seq=0, prompt=p, model=model, sampling=SamplingParams(temperature=0, max_tokens=max_tokens)
        )
        for sid, p in zip(ids, prompts, strict=True)
    ]
    started = time.perf_counter()
    await bus.publish_many([("jobs", job) for job in jobs])
    first: dict[str, float] = {}
    produced: dict[str, int] = {}
    while len(produced) < len(ids):
        for stream, entries in await bus.redis.xread(streams, block=1000) or []:  # type: ignore[arg-type]
            name = stream.decode() if isinstance(stream, bytes) else stream
            for entry_id, fields in entries:
                streams[name] = entry_id
                data = json.loads(fields[b"data"])
                sid = data.get("session_id")
                if sid not in ids:
                    continue
                if name == bus.key("tokens"):
                    first.setdefault(sid, time.perf_counter() - started)
                elif data.get("seq") == 2:
                    assert data["status"] == "finished", data
                    produced[sid] = data.get("tokens") or 0
    return sum(produced.values()), time.perf_counter() - started, [first.get(sid, float("nan")) for sid in ids]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=32, help="tokens per prompt (default 32)")
    parser.add_argument("--prompts", type=int, default=3, help=f"prompts, at most {len(PROMPTS)} (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the prompts (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--random-mistral", choices=["tiny", "7b"], help="a randomly initialised Mistral instead")
    parser.add_argument("--concurrent", type=int, default=8, help="jobs at once for the batching ratio (0: skip)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    import torch

    if args.random_mistral == "7b" and not torch.cuda.is_available():
        parser.error("--random-mistral 7b needs a CUDA GPU (about 15 GB in fp16); use tiny to check the path on CPU")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = GeneratorSettings(
        engine="transformers",
        redis_url=args.redis_url,
        stream_prefix=f"bench-gen-{uuid.uuid4().hex[:6]}:",
        logits_mode="full",
        max_concurrent_jobs=max(1, args.concurrent),
    )
    pool = EnginePool(settings)
    redis = Redis.from_url(args.redis_url)
    bus = Bus(redis, settings)
    worker = Worker(settings, bus, pool, name="bench")
    # Everything that runs the model runs on the worker's one compute thread, loading included: torch's
    # OpenMP threads serve one calling thread at full speed, and a second calling thread in the process
    # (an asyncio.to_thread for the bare loop) slowed both sides (15-17 tok/s here, 27 in a process of its own).
    compute = worker.executor
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    engine = await loop.run_in_executor(compute, pool.get)
    assert isinstance(engine, TransformersEngine)
    assert engine.loaded is not None
    print(f"embedded model loaded in {time.perf_counter() - started:.1f} s (from {engine.loaded.source})")
    model_name: str | None = None
    if args.random_mistral:
        from services.generator.hf.loading import from_objects

        device = "cuda" if torch.cuda.is_available() else "cpu"
        lm = await loop.run_in_executor(compute, random_mistral, args.random_mistral, engine.loaded.tokenizer, device)
        model_name = f"random-mistral-{args.random_mistral}"
        engine = TransformersEngine.from_loaded(from_objects(model_name, lm, engine.loaded.tokenizer))
        pool.add(model_name, engine)
    lm_loaded = engine.loaded
    assert lm_loaded is not None
    params = {id(p): p for p in lm_loaded.model.parameters()}.values()
    model_bytes = sum(p.numel() * p.element_size() for p in params)
    print(
        f"model {lm_loaded.name}: {model_bytes / 1e6:.0f} MB of weights, {lm_loaded.dtype}, {lm_loaded.device}, "
        f"torch threads {torch.get_num_threads()}, vocabulary {lm_loaded.vocab_size}"
    )

    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    prompts = PROMPTS[: args.prompts]
    bare: list[tuple[int, float]] = []
    ours: list[tuple[int, float]] = []
    alone: list[tuple[int, float]] = []
    try:
        await loop.run_in_executor(compute, bare_generate, engine, "Warm up", 2)
        await through_redis(bus, model_name, "Warm up", 2)
        for prompt in prompts * args.rounds:  # alternate, so that drift in the machine's load hits all alike
            bare.append(await loop.run_in_executor(compute, bare_generate, engine, prompt, args.tokens))
            alone.append(await loop.run_in_executor(compute, engine_alone, engine, prompt, args.tokens))
            ours.append(await through_redis(bus, model_name, prompt, args.tokens))
        if args.concurrent:
            batch_prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.concurrent)]
            one_by_one = [await through_redis(bus, model_name, p, args.tokens) for p in batch_prompts]
            together = await concurrent_through_redis(bus, model_name, batch_prompts, args.tokens)
    finally:
        stop.set()
        await task
        keys = [k async for k in redis.scan_iter(match=f"{settings.stream_prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()

    def rate(runs: list[tuple[int, float]]) -> float:
        return sum(n for n, _ in runs) / sum(t for _, t in runs)

    bare_rate, our_rate, alone_rate = rate(bare), rate(ours), rate(alone)
    per_prompt = [(n1 / t1) / (n0 / t0) for (n0, t0), (n1, t1) in zip(bare, ours, strict=True) if n0 and n1]
    print(f"\n{len(prompts)} prompts × {args.rounds} rounds, up to {args.tokens} tokens each (greedy):")
    print(f"  bare generate():                        {bare_rate:7.2f} tok/s  ({sum(n for n, _ in bare)} tokens)")
    print(f"  engine loop alone, nothing published:   {alone_rate:7.2f} tok/s  ({sum(n for n, _ in alone)} tokens)")
    print(f"  generator, full logits through Redis:   {our_rate:7.2f} tok/s  ({sum(n for n, _ in ours)} tokens)")
    print(
        f"  ratio generator / bare: {our_rate / bare_rate:.3f} (per prompt: "
        f"{', '.join(f'{r:.2f}' for r in per_prompt)}; median {statistics.median(per_prompt):.3f}); goal ≥ 0.95"
    )
    goal(
        "generator",
        "tokens/s with full-logit publishing / bare generate()",
        our_rate / bare_rate,
        0.95,
        "x",
        detail=f"{our_rate:.1f} vs {bare_rate:.1f} tok/s; median per prompt {statistics.median(per_prompt):.2f}",
    )
    alone_pairs = [(n1 / t1) / (n0 / t0) for (n0, t0), (n1, t1) in zip(bare, alone, strict=True) if n0 and n1]
    print(
        f"  ratio engine loop alone / bare: {alone_rate / bare_rate:.3f} (median {statistics.median(alone_pairs):.3f})"
    )
    if args.concurrent:
        alone_rate = rate(one_by_one)
        n_tok, seconds, ttft = together
        together_rate = n_tok / seconds
        scheduler = engine.scheduler
        widest = scheduler.widest if scheduler is not None else 0
        print(f"\n{args.concurrent} jobs of up to {args.tokens} tokens, through the worker with full logits:")
        print(f"  one at a time:  {alone_rate:7.2f} tok/s  ({sum(n for n, _ in one_by_one)} tokens)")
        print(
            f"  all at once:    {together_rate:7.2f} tok/s aggregate  ({n_tok} tokens in {seconds:.2f} s; widest batch {widest})"
        )
        print(
            f"  time to first token at {args.concurrent} at once: median {statistics.median(ttft) * 1000:.0f} ms, "
            f"max {max(ttft) * 1000:.0f} ms (alone: {statistics.median(t / max(n, 1) for n, t in one_by_one) * 1000:.0f} ms per token)"
        )
        goal(
            "generator",
            f"aggregate tokens/s, {args.concurrent} concurrent jobs / one job alone",
            together_rate / alone_rate,
            3.0,
            "x",
            detail=f"{together_rate:.1f} vs {alone_rate:.1f} tok/s; TTFT median {statistics.median(ttft) * 1000:.0f} ms",
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = f"  peak memory: {peak:.0f} MB resident"
    if lm_loaded.device.type == "cuda":
        line += f", {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB on the GPU"
    print(line)
    if lm_loaded.device.type == "cpu":
        bandwidth = memory_bandwidth()
        limit = bandwidth / model_bytes
        print(
            f"  memory bandwidth (numpy copy, read + write): {bandwidth / 1e9:.1f} GB/s → at most "
            f"{limit:.1f} tok/s for {model_bytes / 1e6:.0f} MB per token; bare generate() reaches "
            f"{bare_rate / limit:.0%} of it, the generator {our_rate / limit:.0%}"
        )


if __name__ == "__main__":
    asyncio.run(main())
