"""The sampler on tiny logits: greedy, top-k, top-p, seeds."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from services.common.contracts import SamplingParams  # noqa: E402
from services.generator.hf.decoding import Sampler  # noqa: E402

LOGITS = torch.tensor([0.0, 5.0, 4.9, -1.0, 2.0])
CPU = torch.device("cpu")


def draws(params: SamplingParams, n: int = 400) -> list[int]:
    sampler = Sampler(params, CPU)
    return [sampler.choose(LOGITS) for _ in range(n)]


def test_temperature_zero_is_argmax() -> None:
    assert set(draws(SamplingParams(temperature=0), 20)) == {1}


def test_top_k_limits_the_candidates() -> None:
    assert set(draws(SamplingParams(temperature=1.0, top_k=2, seed=1))) == {1, 2}


def test_top_p_keeps_the_smallest_set_reaching_the_mass() -> None:
    probs = torch.softmax(LOGITS, dim=-1)  # ≈ 0.005, 0.50, 0.45, 0.002, 0.04
    assert float(probs[1]) < 0.6 < float(probs[1] + probs[2])
    assert set(draws(SamplingParams(temperature=1.0, top_p=0.45, seed=2))) == {1}
    assert set(draws(SamplingParams(temperature=1.0, top_p=0.6, seed=2))) == {1, 2}


def test_sampling_follows_the_tempered_distribution() -> None:
    samples = draws(SamplingParams(temperature=2.0, seed=3), 4000)
    expected = torch.softmax(LOGITS / 2.0, dim=-1)
    for token in range(5):
        assert samples.count(token) / 4000 == pytest.approx(float(expected[token]), abs=0.03)


def test_same_seed_same_draws_and_another_seed_others() -> None:
    params = SamplingParams(temperature=1.5, seed=42)
    assert draws(params, 50) == draws(params, 50)
    assert draws(params, 50) != draws(SamplingParams(temperature=1.5, seed=43), 50)
