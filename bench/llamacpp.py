"""The llama.cpp engine beside llama-cpp-python's own streaming loop on the same GGUF, and beside the
transformers engine, side by side in one run (alternating per prompt).

- ``bare``: llama-cpp-python's ``create_completion(stream=True)``, greedy, no logprobs (no penalties);
- ``engine loop alone``: our llama.cpp engine's decoding loop with full logits, top-20 and texts,
  nothing published;
- ``generator (llama.cpp)``: the real worker on the llama.cpp engine through the real Redis: the job
  from ``uq:jobs``, every token to ``uq:tokens`` with its logprob, top-20 and the full vocabulary's
  float16 logits of the last position, lifecycle on ``uq:sessions``;
- ``generator (transformers)``: the same worker on the transformers engine (the embedded model
  dequantised to fp32), to choose the default engine by measurement.

Goal: generator (llama.cpp) ÷ bare ≥ 0.9. Also printed: llama.cpp ÷ transformers through the worker.

    .venv/bin/python -m bench.llamacpp [--tokens 64] [--prompts 3] [--rounds 2] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid

from redis.asyncio import Redis

from bench.generator import PROMPTS, through_redis
from bench.report import goal
from services.common.bus import Bus
from services.common.contracts import SamplingParams
from services.generator.engine import GenerationRequest, TokenStep
from services.generator.llamacpp import LlamaCppEngine
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings
from services.generator.worker import Worker


def bare(llm: object, prompt: str, max_tokens: int) -> tuple[int, float]:
    started = time.perf_counter()
    n = 0
    for _chunk in llm.create_completion(  # type: ignore[attr-defined]
        prompt, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0, stream=True
    ):
        n += 1
    return n, time.perf_counter() - started


def engine_alone(engine: LlamaCppEngine, prompt: str, max_tokens: int) -> tuple[int, float]:
    request = GenerationRequest("bench", prompt, None, SamplingParams(temperature=0, max_tokens=max_tokens), True, 20)
    started = time.perf_counter()
    n = sum(isinstance(step, TokenStep) for step in engine.stream(request))
    return n, time.perf_counter() - started


def rate(runs: list[tuple[int, float]]) -> float:
    return sum(n for n, _ in runs) / sum(t for _, t in runs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="2 prompts, 1 round, 32 tokens")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.rounds, args.tokens = 2, 1, 32

    from llama_cpp import Llama

    redis = Redis.from_url(args.redis_url)
    workers = {}
    for engine_name in ("llama.cpp", "transformers"):
        settings = GeneratorSettings(
            redis_url=args.redis_url,
            stream_prefix=f"bench-{engine_name}-{uuid.uuid4().hex[:6]}:",
            logits_mode="full",
            engine=engine_name,
            llama_threads=args.threads,
            torch_threads=args.threads,
        )
        pool = EnginePool(settings)
        started = time.perf_counter()
        pool.get()
        print(f"{engine_name}: embedded model loaded in {time.perf_counter() - started:.1f} s")
        bus = Bus(redis, settings)
        workers[engine_name] = (settings, bus, pool, Worker(settings, bus, pool, name=f"bench-{engine_name}"))
    llama_engine = workers["llama.cpp"][2].get()
    assert isinstance(llama_engine, LlamaCppEngine)
    ref = Llama(str(llama_engine.path), n_ctx=2048, n_threads=args.threads, n_batch=512, verbose=False)

    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for _s, _b, _p, w in workers.values()]
    runs: dict[str, list[tuple[int, float]]] = {k: [] for k in ("bare", "alone", "llama.cpp", "transformers")}
    try:
        for _s, bus, _p, _w in workers.values():
            await through_redis(bus, None, "Warm up", 2)
        bare(ref, "Warm up", 2)
        for prompt in PROMPTS[: args.prompts] * args.rounds:
            runs["bare"].append(await asyncio.to_thread(bare, ref, prompt, args.tokens))
            runs["alone"].append(await asyncio.to_thread(engine_alone, llama_engine, prompt, args.tokens))
            for name in ("llama.cpp", "transformers"):
                runs[name].append(await through_redis(workers[name][1], None, prompt, args.tokens))
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for settings, *_ in workers.values():
            keys = [k async for k in redis.scan_iter(match=f"{settings.stream_prefix}*", count=1000)]
            if keys:
                await redis.delete(*keys)
        await redis.aclose()
        ref.close()

    rates = {k: rate(v) for k, v in runs.items()}
    print(
        f"\n{args.prompts} prompts × {args.rounds} rounds, up to {args.tokens} tokens each (greedy), {args.threads} threads:"
    )
    labels = {
        "bare": "llama-cpp-python's own streaming loop",
        "alone": "our llama.cpp engine loop, nothing published",
        "llama.cpp": "generator (llama.cpp), full logits via Redis",
        "transformers": "generator (transformers), full logits via Redis",
    }
    for key, label in labels.items():
        print(f"  {label:<50} {rates[key]:7.1f} tok/s ({sum(n for n, _ in runs[key])} tokens)")
    ratio = rates["llama.cpp"] / rates["bare"]
    print(
        f"  generator (llama.cpp) ÷ bare: {ratio:.3f} (goal ≥ 0.9); engine loop alone ÷ bare: "
        f"{rates['alone'] / rates['bare']:.3f}"
    )
    print(f"  llama.cpp ÷ transformers through the worker: {rates['llama.cpp'] / rates['transformers']:.2f}")
    print(
        f"  peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB resident (both engines loaded)"
    )
    goal(
        "llamacpp",
        "llama.cpp generator with full-logit publishing / llama-cpp-python bare streaming",
        ratio,
        0.9,
        "x",
        detail=f"{rates['llama.cpp']:.1f} vs {rates['bare']:.1f} tok/s",
    )
    goal(
        "llamacpp",
        "llama.cpp / transformers engine through the worker",
        rates["llama.cpp"] / rates["transformers"],
        1.0,
        "x",
        detail=f"{rates['llama.cpp']:.1f} vs {rates['transformers']:.1f} tok/s",
    )


if __name__ == "__main__":
    asyncio.run(main())
