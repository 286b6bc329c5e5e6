"""Opt-in verification (services/generator/verify.py): samples, their agreement, and the worker
putting it on the finished entry. The scripted engine stands in for a model; the batched decode of
the transformers engine is checked against one-by-one decoding in test_transformers.py."""

from __future__ import annotations

import pytest

from services.common.bus import Bus
from services.common.contracts import SamplingParams
from services.common.settings import CommonSettings
from services.generator import verify
from services.generator.engine import GenerationRequest
from services.generator.errors import GeneratorError
from services.generator.pool import EnginePool
from services.generator.settings import GeneratorSettings
from tests.generator.support import cancel, running, submit, wait_end, wait_tokens

ENGINE = "tests.generator.engines:ScriptedEngine"


def request(seed: int | None = 7, max_tokens: int = 16, stop: list[str] | None = None) -> GenerationRequest:
    sampling = SamplingParams(temperature=0.0, seed=seed, max_tokens=max_tokens, stop=stop or [])
    return GenerationRequest("s1", "Hi", None, sampling, full_logits=True, top_k_alternatives=20)


def test_samples_are_seeded_short_and_carry_no_logits() -> None:
    first, second = (verify.sample_request(request(), i, 0.8, 8) for i in (0, 1))
    assert (first.sampling.seed, second.sampling.seed) == (8, 9)  # a seeded job verifies the same way twice
    assert (first.sampling.temperature, first.sampling.max_tokens, first.full_logits) == (0.8, 8, False)
    assert verify.sample_request(request(seed=None), 0, 1.0, 32).sampling.seed is None
    assert verify.sample_request(request(max_tokens=4), 0, 1.0, 32).sampling.max_tokens == 4


def test_agreement_counts_what_the_answers_add_to_the_prompt() -> None:
    samples = ["The capital is Paris.", "Paris", "Lyon", "paris!"]
    v = verify.agreement("Paris.", samples, 1.0, prompt="What is the capital of France?")
    assert v.exact == pytest.approx(3 / 4)
    assert v.lexical == pytest.approx(3 / 4)
    assert v.consistency == v.lexical and v.embedding is None
    assert v.samples == samples and v.answer == "Paris."
    assert verify.agreement("Paris", ["Paris"], 1.0, consistency="exact").consistency == 1.0
    with pytest.raises(GeneratorError, match="UQ_VERIFY_EMBEDDINGS"):
        verify.agreement("Paris", ["Paris"], 1.0, consistency="embedding")


@pytest.mark.slow
def test_embedding_agreement_ranks_paraphrases_above_other_answers() -> None:
    same = verify.agreement("Paris is the capital.", ["The capital is Paris."], 1.0, embeddings=True)
    other = verify.agreement("Paris is the capital.", ["Bananas are yellow."], 1.0, embeddings=True)
    assert same.embedding is not None and other.embedding is not None
    assert same.embedding > 0.8 > 0.3 > other.embedding


def test_engines_without_a_batch_are_sampled_one_by_one() -> None:
    pool = EnginePool(GeneratorSettings(engine=ENGINE, model="count"))
    engine = pool.get(None)
    assert engine.stream_samples([request()]) is None
    assert verify.draw(engine, request(max_tokens=3), 2, 1.0, 32) == ["t0 t1 t2", "t0 t1 t2"]


def _settings(settings: CommonSettings) -> GeneratorSettings:
    return GeneratorSettings(**(settings.model_dump() | {"engine": ENGINE, "model": "count"}))


async def test_the_finished_entry_carries_the_verification(settings: CommonSettings, bus: Bus) -> None:
    gen = _settings(settings)
    async with running(gen, bus, EnginePool(gen)):
        await submit(bus, "v1", max_tokens=4, verify=3)
        await submit(bus, "v0", max_tokens=4)
        checked, plain = await wait_end(bus, "v1"), await wait_end(bus, "v0")
    assert (checked.status, checked.tokens) == ("finished", 4)
    assert checked.verification is not None
    assert checked.verification.samples == ["t0 t1 t2 t3"] * 3
    assert checked.verification.answer == "t0 t1 t2 t3"
    assert (checked.verification.exact, checked.verification.consistency) == (1.0, 1.0)
    assert plain.verification is None


async def test_a_session_cancelled_before_its_verification_gets_none(settings: CommonSettings, bus: Bus) -> None:
    gen = GeneratorSettings(**(_settings(settings).model_dump() | {"engine_options": {"step_s": 0.05}}))
    async with running(gen, bus, EnginePool(gen)):
        await submit(bus, "v2", max_tokens=40, verify=2)
        await wait_tokens(bus, "v2", 2)
        await cancel(bus, "v2")
        end = await wait_end(bus, "v2")
    assert end.status == "cancelled" and end.verification is None
