"""Batched decoding (services/generator/hf/batching.py): jobs streamed at once decode in one forward
per round, and each gets exactly what it gets alone: greedy and seeded, with its own stop strings and
budget, whatever joins or leaves the batch meanwhile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common.contracts import ChatMessage, SamplingParams
from services.generator.engine import Finished, GenerationRequest, Prefilling, Step, TokenStep
from services.generator.hf.engine import TransformersEngine
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings

pytestmark = [pytest.mark.slow, pytest.mark.model]

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a land far away, there lived a",
    "def fibonacci(n):",
    "The three laws of thermodynamics are",
]


@pytest.fixture(scope="module")
def engine() -> Iterator[TransformersEngine]:
    import torch

    threads = torch.get_num_threads()
    pool = EnginePool(GeneratorSettings(engine="transformers", torch_threads=1))
    engine = pool.get()
    assert isinstance(engine, TransformersEngine)
    yield engine
    pool.close()
    torch.set_num_threads(threads)


def request(prompt: str, max_tokens: int = 16, **sampling: object) -> GenerationRequest:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens).model_copy(update=sampling)
    return GenerationRequest("s", prompt, None, params, False, 5)


def drive(streams: list[Iterator[Step]], close_after: dict[int, int] | None = None) -> list[list[Step]]:
    """Advance the streams round-robin, one step each per turn, as the worker does."""
    out: list[list[Step]] = [[] for _ in streams]
    live = list(range(len(streams)))
    while live:
        for i in list(live):
            if close_after and len([s for s in out[i] if isinstance(s, TokenStep)]) >= close_after.get(i, 1 << 30):
                streams[i].close()  # type: ignore[attr-defined]  # the worker closes a cancelled job's stream
                live.remove(i)
                continue
            step = next(streams[i], None)
            if step is None:
                live.remove(i)
            else:
                out[i].append(step)
    return out


def tokens(steps: list[Step]) -> list[tuple[int | None, str]]:
    return [(s.token_id, s.text) for s in steps if isinstance(s, TokenStep)]


def test_concurrent_greedy_jobs_decode_in_one_batch_and_equal_each_alone(engine: TransformersEngine) -> None:
    requests = [request(p, max_tokens=12 + 4 * i) for i, p in enumerate(PROMPTS)]  # own lengths, own budgets
    alone = [list(engine.stream(r)) for r in requests]
    scheduler = engine.scheduler
    assert scheduler is not None
    rounds_before = scheduler.rounds

    together = drive([engine.stream(r) for r in requests])

    assert [tokens(s) for s in together] == [tokens(s) for s in alone]
    assert [s[-1] for s in together] == [s[-1] for s in alone]
    assert scheduler.widest == len(PROMPTS)
    longest = max(len(tokens(s)) for s in alone)
    assert scheduler.rounds - rounds_before == longest - 1  # one forward per round, not one per job
    assert scheduler.rows == [] and scheduler.cache is None  # every row left


def test_sampled_jobs_keep_their_own_seed_stops_and_budget(engine: TransformersEngine) -> None:
    requests = [
        request(PROMPTS[0], temperature=0.9, seed=1, max_tokens=20),
        request(PROMPTS[1], temperature=1.2, top_k=20, seed=2, max_tokens=20, stop=["."]),
        request(PROMPTS[2], temperature=0.7, top_p=0.9, seed=3, max_tokens=5),
        GenerationRequest(
            "c",
            None,
            [ChatMessage(role="user", content="Name a colour.")],
            SamplingParams(temperature=0.0, max_tokens=10),
            False,
            5,
        ),
    ]
    alone = [list(engine.stream(r)) for r in requests]

    together = drive([engine.stream(r) for r in requests])

    assert [tokens(s) for s in together] == [tokens(s) for s in alone]
    assert [s[-1] for s in together] == [s[-1] for s in alone]
    assert len(tokens(alone[2])) == 5


def test_a_long_prompt_joins_between_the_others_tokens_one_chunk_at_a_time(
    engine: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.generator.hf import decoding

    monkeypatch.setattr(decoding, "PREFILL_CHUNK", 4)
    long_prompt = " ".join(["The history of the Roman Empire is long and full of emperors."] * 4)
    short = [request(PROMPTS[0], max_tokens=24), request(PROMPTS[3], max_tokens=24)]
    alone = [list(engine.stream(r)) for r in [*short, request(long_prompt, max_tokens=8)]]
    streams = [engine.stream(r) for r in short]
    first = [next(s) for s in streams]  # the short jobs are decoding
    streams.append(engine.stream(request(long_prompt, max_tokens=8)))

    together = drive(streams)
    together[0].insert(0, first[0])
    together[1].insert(0, first[1])

    assert [tokens(s) for s in together] == [tokens(s) for s in alone]
    chunks = [s for s in together[2] if isinstance(s, Prefilling)]
    assert len(chunks) >= 10  # read in chunks, each one worker step: the others' tokens came between them
    assert len(tokens(together[0])) == 24


def test_a_cancelled_job_leaves_the_batch_and_the_others_go_on_unchanged(engine: TransformersEngine) -> None:
    requests = [request(p, max_tokens=16) for p in PROMPTS[:3]]
    alone = [list(engine.stream(r)) for r in requests]

    together = drive([engine.stream(r) for r in requests], close_after={1: 4})

    assert tokens(together[0]) == tokens(alone[0]) and tokens(together[2]) == tokens(alone[2])
    assert tokens(together[1]) == tokens(alone[1])[:4]
    assert engine.scheduler is not None and engine.scheduler.rows == []


def test_a_job_that_ends_at_its_first_token_never_joins(engine: TransformersEngine) -> None:
    scheduler = engine.scheduler
    assert scheduler is not None
    steps = drive([engine.stream(request(PROMPTS[0], max_tokens=1)), engine.stream(request(PROMPTS[1], max_tokens=3))])
    assert isinstance(steps[0][-1], Finished) and len(tokens(steps[0])) == 1
    assert len(tokens(steps[1])) == 3
    assert scheduler.rows == []
