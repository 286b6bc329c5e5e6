"""Batched decoding on llama.cpp (services/generator/llamacpp/batching.py): jobs streamed at once are
sequences of one context, decoded one token each per ``llama_decode``, and each gets exactly what it
gets alone (the very same logits, bit for bit), with its own sampling, stops and budget, whatever
joins or leaves meanwhile; the probe's hidden state is read from the same decode."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from services.common.contracts import ChatMessage, SamplingParams
from services.generator.engine import Finished, GenerationRequest, Prefilling, Step, TokenStep
from services.generator.errors import GeneratorError
from services.generator.llamacpp import LlamaCppEngine, LlamaCppOptions
from tests.generator.test_batching import PROMPTS, drive

pytestmark = [pytest.mark.slow, pytest.mark.model]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    e = LlamaCppEngine("embedded", LlamaCppOptions(llama_threads=2, llama_n_ctx=1024, max_concurrent_jobs=4))
    e.load()
    yield e
    e.close()


def request(prompt: str, max_tokens: int = 16, full: bool = True, **sampling: object) -> GenerationRequest:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens).model_copy(update=sampling)
    return GenerationRequest("s", prompt, None, params, full, 5)


def tokens(steps: list[Step]) -> list[tuple[int | None, str, bytes | None, float | None]]:
    """Each token with its text, its logits and its probe projection."""
    return [(s.token_id, s.text, s.logits, s.probe) for s in steps if isinstance(s, TokenStep)]


def test_concurrent_greedy_jobs_decode_in_one_batch_and_equal_each_alone(engine: LlamaCppEngine) -> None:
    requests = [request(p, max_tokens=12 + 4 * i) for i, p in enumerate(PROMPTS)]  # own lengths, own budgets
    alone = [list(engine.stream(r)) for r in requests]
    scheduler = engine.scheduler
    assert scheduler is not None
    rounds_before = scheduler.rounds

    together = drive([engine.stream(r) for r in requests])

    assert [tokens(s) for s in together] == [tokens(s) for s in alone]  # logits and probe bit for bit
    assert [s[-1] for s in together] == [s[-1] for s in alone]
    assert scheduler.widest == len(PROMPTS)
    longest = max(len(tokens(s)) for s in alone)
    assert scheduler.rounds - rounds_before == longest - 1  # one decode per round, not one per job
    assert scheduler.rows == [] and scheduler.free_sequences() == 4  # every row left, its sequence cleared


def test_sampled_jobs_keep_their_own_seed_stops_and_budget(engine: LlamaCppEngine) -> None:
    requests = [
        request(PROMPTS[0], temperature=0.9, seed=1, max_tokens=20),
        request(PROMPTS[1], temperature=1.2, top_k=20, seed=2, max_tokens=20, stop=["."]),
        request(PROMPTS[2], temperature=0.7, top_p=0.9, seed=3, max_tokens=5),
        GenerationRequest(
            "c", None, [ChatMessage(role="user", content="Name a colour.")],
            SamplingParams(temperature=0.0, max_tokens=10), False, 5,
        ),
    ]  # fmt: skip
    alone = [list(engine.stream(r)) for r in requests]

    together = drive([engine.stream(r) for r in requests])

    assert [tokens(s) for s in together] == [tokens(s) for s in alone]
    assert [s[-1] for s in together] == [s[-1] for s in alone]
    assert len(tokens(alone[2])) == 5


def test_a_long_prompt_joins_between_the_others_tokens_one_chunk_at_a_time(
    engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.generator.llamacpp import batching

    monkeypatch.setattr(batching, "PREFILL_CHUNK", 4)
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


def test_a_cancelled_job_leaves_the_batch_and_the_others_go_on_unchanged(engine: LlamaCppEngine) -> None:
    requests = [request(p, max_tokens=16) for p in PROMPTS[:3]]
    alone = [list(engine.stream(r)) for r in requests]
    assert engine.scheduler is not None
    moves = engine.scheduler.moves

    together = drive([engine.stream(r) for r in requests], close_after={1: 4})

    assert tokens(together[0]) == tokens(alone[0]) and tokens(together[2]) == tokens(alone[2])
    assert tokens(together[1]) == tokens(alone[1])[:4]
    assert engine.scheduler.moves == moves + 1  # the middle job left a gap: the job above it moved down
    assert engine.scheduler.rows == []
    assert engine.scheduler.free_sequences() == 4
    # the cancelled job's sequence was cleared: the next job in it decodes as if alone
    assert tokens(list(engine.stream(requests[2]))) == tokens(alone[2])


def test_more_jobs_than_sequences_are_refused_with_the_reason(engine: LlamaCppEngine) -> None:
    never_started = engine.stream(request(PROMPTS[0]))
    streams = [engine.stream(request(p, max_tokens=4)) for p in PROMPTS]
    for s in streams:
        next(s)
    with pytest.raises(GeneratorError, match="4 jobs at once"):
        next(engine.stream(request(PROMPTS[0])))
    for s in [never_started, *streams]:
        s.close()  # type: ignore[attr-defined]
    assert engine.scheduler is not None and engine.scheduler.free_sequences() == 4


def test_verification_samples_decode_as_one_batch(engine: LlamaCppEngine) -> None:
    requests = [request(PROMPTS[0], temperature=1.0, seed=s, max_tokens=6, full=False) for s in (1, 2, 3)]
    alone = [tokens(list(engine.stream(r))) for r in requests]
    batched = engine.stream_samples(requests)
    assert batched is not None
    rounds = list(batched)
    assert all(len(r) == 3 for r in rounds) and all(isinstance(s, Finished) for s in rounds[-1])
    together = [tokens([r[i] for r in rounds if not isinstance(r[i], Finished)]) for i in range(3)]
    assert together == alone
    too_many = [request(PROMPTS[0], temperature=1.0, seed=s) for s in range(5)]
    assert engine.stream_samples(too_many) is None  # more samples than sequences: one after another


def test_the_probe_is_the_transformers_engines_on_the_same_tokens(engine: LlamaCppEngine) -> None:
    """The profile's probe reads layer 15's output; on the same tokens its projections are the
    transformers engine's (the same Q4_1 weights, dequantised there) up to llama.cpp's activation
    quantisation."""
    from services.generator.hf.engine import TransformersEngine
    from services.generator.pool import EnginePool
    from services.generator.settings import GeneratorSettings

    assert engine.probe is not None and engine.probe.layer == 15
    steps = [s for s in engine.stream(request(PROMPTS[3], max_tokens=24)) if isinstance(s, TokenStep)]
    mine = np.array([s.probe for s in steps], dtype=np.float64)

    pool = EnginePool(GeneratorSettings(engine="transformers", torch_threads=2))
    hf = pool.get()
    assert isinstance(hf, TransformersEngine)
    theirs_steps = [s for s in hf.stream(request(PROMPTS[3], max_tokens=24)) if isinstance(s, TokenStep)]
    pool.close()
    same = 0
    while same < min(len(steps), len(theirs_steps)) and steps[same].token_id == theirs_steps[same].token_id:
        same += 1  # compare while the two engines chose the same tokens (the same positions)
    assert same >= 8
    theirs = np.array([s.probe for s in theirs_steps[:same]], dtype=np.float64)
    spread = float(np.std(theirs)) or 1.0
    print(
        f"probe on {same} tokens: max |llama.cpp - transformers| {np.abs(mine[:same] - theirs).max():.3f}, sd {spread:.3f}"
    )
    assert np.abs(mine[:same] - theirs).max() < 0.25 * spread + 0.25, (mine[:same], theirs)
    assert np.corrcoef(mine[:same], theirs)[0, 1] > 0.95


def test_the_c_and_the_python_capture_read_the_same_hidden_states(
    engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """capture.c (built by the set-up) and its Python fallback give the same projections, bit for bit."""
    from services.generator.llamacpp import probe

    assert engine.capture is not None and engine.capture.native, "set-up builds capture.c (setup_llama_capture)"
    requests = [request(p, max_tokens=8, full=False) for p in PROMPTS[:2]]
    native = [tokens(s) for s in drive([engine.stream(r) for r in requests])]
    monkeypatch.setattr(probe, "_NATIVE", None)
    fallback = LlamaCppEngine("embedded", LlamaCppOptions(llama_threads=2, llama_n_ctx=1024, max_concurrent_jobs=4))
    fallback.load()
    try:
        assert fallback.capture is not None and not fallback.capture.native
        assert [tokens(s) for s in drive([fallback.stream(r) for r in requests])] == native
    finally:
        fallback.close()


def test_a_stream_open_when_the_model_is_unloaded_fails_with_the_reason() -> None:
    e = LlamaCppEngine("embedded", LlamaCppOptions(llama_threads=2, llama_n_ctx=256, max_concurrent_jobs=2))
    e.load()
    stream = e.stream(request(PROMPTS[0], max_tokens=8))
    assert isinstance(next(stream), TokenStep)
    e.close()  # the worker's pool evicts a model no job uses; a stream left open must not touch the freed context
    with pytest.raises(GeneratorError, match="unloaded"):
        list(stream)
