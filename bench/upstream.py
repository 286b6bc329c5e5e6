"""The proxy path against calling llama.cpp's server directly, side by side in one run.

Starts llama.cpp's OpenAI-compatible server (llama-cpp-python, tests/llama_server.py) on the embedded
GGUF, and the whole stack (tests/stack.py) with the generator on the upstream engine pointed at it.
Then, alternating, the same streamed chat request (greedy, ``max_tokens`` tokens) goes

- **direct**: to the server, asking for ``logprobs`` with the top 20, as the upstream engine asks;
- **plain**: to the server without logprobs (what a user who does not audit asks for);
- **proxy**: to our ``/v1`` (gateway → ``uq:jobs`` → generator → the server → ``uq:tokens`` → SSE).

On a machine this small the stack's own CPU use would slow the server it measures, which an upstream on
its own machine (a GPU) would not feel: by default the server is pinned to the first core and the stack
and this client to the others (``taskset``), so the run compares the paths, not CPU contention.
``--no-pin`` runs everything on every core (the contended figure).

Per path: time to first token (the first content chunk), decode rate (tokens after the first ÷ time
after the first) and whole-request tokens/s. Goals: proxy decode rate ≥ 0.95 × direct, first-token
overhead (proxy − direct, median) ≤ 20 ms. Also the audits' delay behind the text: for the proxy's
tokens, the audit's publish time minus the token's (``ts_ns`` of ``uq:audits`` − ``token_ts_ns``),
p50 / p99; and, once, the top-k fidelity report (services/evaluation/topk_fidelity.py).

    .venv/bin/python -m bench.upstream [--rounds 6] [--max-tokens 128] [--quick] [--no-pin]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import openai
import redis

from bench.report import goal
from services.common.codec import decode
from services.common.contracts import AuditEvent
from tests.llama_server import MODEL_ALIAS, LlamaServer
from tests.stack import Stack

MESSAGES = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


@dataclass
class Run:
    ttft_ms: float
    decode_tps: float
    total_tps: float
    tokens: int
    session_id: str | None
    sent_ns: int  # wall clock, to place the stream entries' ts_ns on the same axis
    first_ns: int


def stream(client: openai.OpenAI, max_tokens: int, logprobs: bool) -> Run:
    extra: dict[str, Any] = {"logprobs": True, "top_logprobs": 20} if logprobs else {}
    sent_ns = time.time_ns()
    t0 = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL_ALIAS,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        temperature=0.0,
        top_p=1.0,
        stream=True,
        **extra,
    )
    first = last = 0.0
    first_ns = 0
    tokens = 0
    for chunk in raw.parse():
        if not chunk.choices or not chunk.choices[0].delta.content:
            continue
        now = time.perf_counter()
        if not first:
            first, first_ns = now, time.time_ns()
        last = now
        entries = chunk.choices[0].logprobs.content if chunk.choices[0].logprobs else None
        tokens += len(entries) if entries else 1
    end = time.perf_counter()
    decode_tps = (tokens - 1) / (last - first) if tokens > 1 and last > first else float("nan")
    sid = raw.headers.get("x-uq-session-id")
    return Run((first - t0) * 1e3, decode_tps, tokens / (end - t0), tokens, sid, sent_ns, first_ns)


def first_token_path(r: redis.Redis, prefix: str, runs: list[Run]) -> dict[str, float]:
    """Where the proxy's first-token time goes, medians in ms, from the stream entries' publish times:
    request → queued (gateway), → started (a generator took the job), → token 0 (the upstream's first
    token reached the generator and was published), → its audit, → the client's first chunk."""
    marks: dict[str, dict[str, int]] = {r.session_id: {} for r in runs if r.session_id}
    for stream, wanted in (("sessions", ("queued", "started")), ("tokens", ()), ("audits", ())):
        for _id, fields in r.xrange(f"{prefix}{stream}"):
            event = decode(stream, fields)
            m = marks.get(event.session_id)
            if m is None:
                continue
            status = getattr(event, "status", None)
            if stream == "sessions" and status in wanted:
                m[status] = event.ts_ns
            elif stream != "sessions" and event.seq == 0:
                m[stream] = event.ts_ns
    steps: dict[str, list[float]] = {k: [] for k in ("gateway", "generator pickup", "upstream", "audit", "delivery")}
    for run in runs:
        m = marks.get(run.session_id or "", {})
        if len(m) < 4:
            continue
        points = [run.sent_ns, m["queued"], m["started"], m["tokens"], m["audits"], run.first_ns]
        for name, a, b in zip(steps, points, points[1:], strict=False):
            steps[name].append((b - a) / 1e6)
    return {k: statistics.median(v) for k, v in steps.items() if v}


def audit_delays_ms(r: redis.Redis, prefix: str, session_ids: set[str]) -> list[float]:
    delays = []
    for _id, fields in r.xrange(f"{prefix}audits"):
        event = decode("audits", fields)
        if isinstance(event, AuditEvent) and event.session_id in session_ids and event.token_ts_ns:
            delays.append((event.ts_ns - event.token_ts_ns) / 1e6)
    return delays


def pin(pid: int, cores: set[int]) -> None:
    """Put every thread of process ``pid`` on ``cores`` (taskset -a)."""
    subprocess.run(
        ["taskset", "-a", "-cp", ",".join(map(str, sorted(cores))), str(pid)], check=True, capture_output=True
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def fidelity(server: LlamaServer) -> dict[str, Any]:
    from services.common.contracts import SamplingParams
    from services.evaluation.topk_fidelity import UpstreamToken, compare, teacher_forced_logits, token_ids
    from services.generator.engine import GenerationRequest, TokenStep
    from services.generator.hf.loading import load
    from services.generator.upstream import UpstreamEngine, UpstreamOptions

    engine = UpstreamEngine("embedded", UpstreamOptions(upstream_url=server.base_url))
    engine.load()
    loaded = load("embedded", device="cpu", dtype="float32", load_in_8bit=False, model_cache_dir="data/model-cache")
    prompt = "The history of the Roman Empire"
    out = {}
    for k in (5, 20):
        request = GenerationRequest("s", prompt, None, SamplingParams(temperature=0.0, max_tokens=96), False, k)
        steps = [s for s in engine.stream(request) if isinstance(s, TokenStep)]
        tokens = [UpstreamToken(s.text, s.logprob, s.top_k) for s in steps]
        ids = token_ids(loaded.tokenizer, [t.text for t in tokens])
        out[f"k={k}"] = compare(tokens, teacher_forced_logits(loaded, prompt, ids), ids)
    engine.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 64 tokens")
    parser.add_argument("--no-pin", action="store_true", help="no core pinning (server and stack contend)")
    args = parser.parse_args()
    rounds, max_tokens = (3, 64) if args.quick else (args.rounds, args.max_tokens)

    cores = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cores) >= 2
    with LlamaServer(threads=1 if pinned else len(cores)) as server:
        env = {"UQ_ENGINE": "openai", "UQ_UPSTREAM_URL": server.base_url}
        with Stack(env=env) as stack:
            if pinned:
                assert server.proc is not None
                pin(server.proc.pid, {cores[0]})
                for proc in stack.procs.values():
                    pin(proc.pid, set(cores[1:]))
                os.sched_setaffinity(0, set(cores[1:]))
            print(
                f"pinning: {'server on core ' + str(cores[0]) + ', stack and client on the rest' if pinned else 'none'}"
            )
            direct = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=300)
            proxy = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0, timeout=300)
            paths = {
                "direct": lambda: stream(direct, max_tokens, logprobs=True),
                "plain": lambda: stream(direct, max_tokens, logprobs=False),
                "proxy": lambda: stream(proxy, max_tokens, logprobs=False),
            }
            for run in paths.values():  # warm-up: model pages, connections, the generator's first job
                run()
            runs: dict[str, list[Run]] = {name: [] for name in paths}
            for i in range(rounds):
                order = list(paths) if i % 2 == 0 else list(reversed(paths))
                for name in order:
                    runs[name].append(paths[name]())
            time.sleep(1.0)  # the last audits
            sessions = {r.session_id for r in runs["proxy"] if r.session_id}
            r = redis.Redis.from_url(stack.redis_url)
            delays = audit_delays_ms(r, stack.prefix, sessions)
            path = first_token_path(r, stack.prefix, runs["proxy"])
        report = fidelity(server)

    med = {
        name: {k: statistics.median(getattr(r, k) for r in rs) for k in ("ttft_ms", "decode_tps", "total_tps")}
        for name, rs in runs.items()
    }
    print(f"{'path':<8} {'TTFT ms':>9} {'decode tok/s':>13} {'request tok/s':>14} tokens")
    for name, m in med.items():
        print(
            f"{name:<8} {m['ttft_ms']:>9.1f} {m['decode_tps']:>13.1f} {m['total_tps']:>14.1f} "
            f"{statistics.median(r.tokens for r in runs[name]):.0f}"
        )
    overheads = [p.ttft_ms - d.ttft_ms for p, d in zip(runs["proxy"], runs["direct"], strict=True)]
    ratio = med["proxy"]["decode_tps"] / med["direct"]["decode_tps"]
    print(
        f"proxy ÷ direct decode rate {ratio:.3f}; ÷ plain (no logprobs) "
        f"{med['proxy']['decode_tps'] / med['plain']['decode_tps']:.3f}"
    )
    print(f"first-token overhead (proxy − direct, per round) ms: {[round(o, 1) for o in overheads]}")
    print(
        f"audit delay behind the token, ms: p50 {pct(delays, 0.5):.1f}, p99 {pct(delays, 0.99):.1f}, "
        f"max {max(delays, default=float('nan')):.1f} ({len(delays)} tokens)"
    )
    print("the proxy's first token, median ms per hop: " + ", ".join(f"{k} {v:.1f}" for k, v in path.items()))
    print("top-k fidelity (top-k metrics − full-logit metrics of the same tokens):")
    print(json.dumps(report, indent=1))
    goal(
        "upstream", "proxy ÷ direct decode tokens/s", ratio, 0.95, "×", detail=f"{rounds} rounds of {max_tokens} tokens"
    )
    goal(
        "upstream",
        "first-token overhead of the proxy",
        statistics.median(overheads),
        20.0,
        "ms",
        higher_is_better=False,
    )
    goal("upstream", "audit delay behind the text p99", pct(delays, 0.99), 100.0, "ms", higher_is_better=False)


if __name__ == "__main__":
    main()
