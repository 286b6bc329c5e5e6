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

Then ``--concurrent N`` (default 8) jobs submitted at once to each worker, batched by its engine
(services/generator/llamacpp/batching.py, services/generator/hf/batching.py): aggregate tokens/s
÷ the same worker's one job alone, and the time to first token of each job.

Goal: generator (llama.cpp) ÷ bare ≥ 0.9. Also printed: llama.cpp ÷ transformers through the worker,
alone and at N at once. The bare loop uses flash attention, as the engine does (llama.cpp's "auto").

    .venv/bin/python -m bench.llamacpp [--tokens 64] [--prompts 3] [--rounds 2] [--threads 2] [--concurrent 8] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
import uuid

from redis.asyncio import Redis

from bench.generator import PROMPTS, concurrent_through_redis, through_redis
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
    parser.add_argument("--concurrent", type=int, default=8, help="jobs at once for the batching ratio (0: skip)")
    parser.add_argument(
        "--llama-only", action="store_true", help="leave the transformers engine out (its threads share the cores)"
    )
    parser.add_argument("--quick", action="store_true", help="2 prompts, 1 round, 32 tokens")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.rounds, args.tokens = 2, 1, 32

    from llama_cpp import Llama

    redis = Redis.from_url(args.redis_url)
    engines = ["llama.cpp"] if args.llama_only else ["llama.cpp", "transformers"]
    buses: dict[str, Bus] = {}
    prefixes: dict[str, str] = {}
    for engine_name in engines:
        prefixes[engine_name] = f"bench-{engine_name}-{uuid.uuid4().hex[:6]}:"
    settings = GeneratorSettings(
        redis_url=args.redis_url,
        stream_prefix=prefixes["llama.cpp"],
        logits_mode="full",
        engine="llama.cpp",
        llama_threads=args.threads,
        max_concurrent_jobs=max(1, args.concurrent),
    )
    pool = EnginePool(settings)
    started = time.perf_counter()
    pool.get()
    print(f"llama.cpp: embedded model loaded in {time.perf_counter() - started:.1f} s")
    buses["llama.cpp"] = Bus(redis, settings)
    worker = Worker(settings, buses["llama.cpp"], pool, name="bench-llama.cpp")
    # The transformers worker runs in a process of its own, as it is deployed: in one process torch and
    # llama.cpp share one OpenMP runtime, and its second team of threads slowed llama.cpp to ~40 %.
    other: asyncio.subprocess.Process | None = None
    if "transformers" in engines:
        env = {
            **os.environ,
            "UQ_REDIS_URL": args.redis_url,
            "UQ_STREAM_PREFIX": prefixes["transformers"],
            "UQ_ENGINE": "transformers",
            "UQ_LOGITS_MODE": "full",
            "UQ_TORCH_THREADS": str(args.threads),
            "UQ_MAX_CONCURRENT_JOBS": str(max(1, args.concurrent)),
            "UQ_LOG_LEVEL": "WARNING",
        }
        other = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.generator", env=env)
        buses["transformers"] = Bus(redis, settings.model_copy(update={"stream_prefix": prefixes["transformers"]}))
    llama_engine = pool.get()
    assert isinstance(llama_engine, LlamaCppEngine)
    ref = Llama(str(llama_engine.path), n_ctx=2048, n_threads=args.threads, n_batch=512, flash_attn=True, verbose=False)

    # Every llama.cpp decode on one thread, the llama.cpp worker's compute thread: llama.cpp's OpenMP
    # threads serve one calling thread at full speed, and decodes from a second thread ran at ~40 %.
    compute = worker.executor
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    runs: dict[str, list[tuple[int, float]]] = {k: [] for k in ("bare", "alone", *engines)}
    try:
        for bus in buses.values():  # the transformers process is ready when its warm-up has run
            await asyncio.wait_for(through_redis(bus, None, "Warm up", 2), 600)
        await loop.run_in_executor(compute, bare, ref, "Warm up", 2)
        for prompt in PROMPTS[: args.prompts] * args.rounds:
            runs["bare"].append(await loop.run_in_executor(compute, bare, ref, prompt, args.tokens))
            runs["alone"].append(await loop.run_in_executor(compute, engine_alone, llama_engine, prompt, args.tokens))
            for name in engines:
                runs[name].append(await through_redis(buses[name], None, prompt, args.tokens))
        together: dict[str, tuple[int, float, list[float]]] = {}
        if args.concurrent:
            batch_prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.concurrent)]
            for name in engines:
                together[name] = await concurrent_through_redis(buses[name], None, batch_prompts, args.tokens)
    finally:
        stop.set()
        await task
        if other is not None:
            other.terminate()
            await other.wait()
        for prefix in prefixes.values():
            keys = [k async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]
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
        if key not in rates:
            continue
        print(f"  {label:<50} {rates[key]:7.1f} tok/s ({sum(n for n, _ in runs[key])} tokens)")
    ratio = rates["llama.cpp"] / rates["bare"]
    print(
        f"  generator (llama.cpp) ÷ bare: {ratio:.3f} (goal ≥ 0.9); engine loop alone ÷ bare: "
        f"{rates['alone'] / rates['bare']:.3f}"
    )
    both = "transformers" in rates
    if both:
        print(f"  llama.cpp ÷ transformers through the worker: {rates['llama.cpp'] / rates['transformers']:.2f}")
    batched: dict[str, float] = {}
    for name, (n, seconds, ttft) in together.items():
        batched[name] = n / seconds
        print(
            f"  {args.concurrent} jobs at once on {name}: {batched[name]:.1f} tok/s in all ({n} tokens), "
            f"{batched[name] / rates[name]:.2f} × one job alone; time to first token median "
            f"{statistics.median(ttft) * 1000:.0f} ms, max {max(ttft) * 1000:.0f} ms"
        )
    if together and both:
        print(
            f"  llama.cpp ÷ transformers at {args.concurrent} at once: {batched['llama.cpp'] / batched['transformers']:.2f}"
        )
    print(
        f"  peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB resident (this process: llama.cpp)"
    )
    goal(
        "llamacpp",
        "llama.cpp generator with full-logit publishing / llama-cpp-python bare streaming",
        ratio,
        0.9,
        "x",
        detail=f"{rates['llama.cpp']:.1f} vs {rates['bare']:.1f} tok/s",
    )
    if both:
        goal(
            "llamacpp",
            "llama.cpp / transformers engine through the worker",
            rates["llama.cpp"] / rates["transformers"],
            1.0,
            "x",
            detail=f"{rates['llama.cpp']:.1f} vs {rates['transformers']:.1f} tok/s",
        )
    if together:
        ttft = together["llama.cpp"][2]
        goal(
            "llamacpp",
            f"aggregate tokens/s, {args.concurrent} concurrent jobs / one job alone (llama.cpp engine)",
            batched["llama.cpp"] / rates["llama.cpp"],
            3.0,
            "x",
            detail=f"{batched['llama.cpp']:.1f} vs {rates['llama.cpp']:.1f} tok/s; TTFT median {statistics.median(ttft) * 1000:.0f} ms",
        )
    if together and both:
        goal(
            "llamacpp",
            f"llama.cpp / transformers engine, {args.concurrent} concurrent jobs through the worker",
            batched["llama.cpp"] / batched["transformers"],
            1.0,
            "x",
            detail=f"{batched['llama.cpp']:.1f} vs {batched['transformers']:.1f} tok/s",
        )


if __name__ == "__main__":
    asyncio.run(main())
