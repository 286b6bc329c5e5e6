"""AUROC, PRR, AUPRC and ECE checked against their definitions on small hand-made cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.evaluation import measures


def brute_auroc(score: list[float], wrong: list[int]) -> float:
    """P(a wrong answer scores above a correct one), ties counting one half: the definition."""
    pos = [s for s, w in zip(score, wrong, strict=True) if w]
    neg = [s for s, w in zip(score, wrong, strict=True) if not w]
    pairs = list(itertools.product(pos, neg))
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_is_the_pairwise_probability(seed: int) -> None:
    rng = np.random.default_rng(seed)
    wrong = rng.integers(0, 2, 40)
    score = np.round(rng.normal(size=40) + wrong, 1)  # rounded: ties occur
    assert measures.auroc(score, wrong) == pytest.approx(brute_auroc(list(score), list(wrong)))


def test_auroc_of_one_class_is_none() -> None:
    assert measures.auroc([0.1, 0.2], [1, 1]) is None


def test_prr_is_one_for_the_oracle_zero_in_expectation_for_noise_negative_when_reversed() -> None:
    wrong = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    assert measures.prr(wrong.astype(float), wrong)["prr"] == pytest.approx(1.0)
    assert measures.prr(-wrong.astype(float), wrong)["prr"] < 0
    rng = np.random.default_rng(0)
    big = rng.integers(0, 2, 4000)
    assert abs(measures.prr(rng.normal(size=4000), big)["prr"] or 0) < 0.05


def test_prr_areas_follow_lm_polygraph() -> None:
    # quality 1,0,1 with uncertainty 0.1,0.9,0.5: least uncertain first = [1, 1, 0]
    # kept means after rejecting 0,1,2 most uncertain: 2/3, 1, 1 → area 8/9
    out = measures.prr([0.1, 0.9, 0.5], [0, 1, 0])
    assert out["area"] == pytest.approx(8 / 9)
    assert out["random"] == pytest.approx(2 / 3)
    assert out["oracle"] == pytest.approx(8 / 9)
    assert out["prr"] == pytest.approx(1.0)


def test_auprc_perfect_and_chance() -> None:
    assert measures.auprc([0.9, 0.8, 0.1], [1, 1, 0]) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    wrong = rng.random(5000) < 0.3
    assert measures.auprc(rng.random(5000), wrong) == pytest.approx(0.3, abs=0.03)


def test_ece_by_hand() -> None:
    # bin [0.0, 0.1]: p 0.05, 0.05, observed 0 of 2 → |0.05 - 0| × 2/4
    # bin (0.9, 1.0]: p 0.95, 0.95, observed 1 of 2 → |0.95 - 0.5| × 2/4
    assert measures.ece([0.05, 0.05, 0.95, 0.95], [0, 0, 1, 0]) == pytest.approx(0.05 * 0.5 + 0.45 * 0.5)
    assert measures.ece([0.0, 1.0], [0, 1]) == pytest.approx(0.0)


def test_ece_refuses_values_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        measures.ece([1.5], [1])


def test_bootstrap_interval_brackets_the_value() -> None:
    rng = np.random.default_rng(2)
    wrong = rng.integers(0, 2, 200)
    score = rng.normal(size=200) + wrong
    iv = measures.bootstrap(measures.auroc, score, wrong, rounds=200)
    assert iv.low is not None and iv.high is not None and iv.value is not None
    assert iv.low < iv.value < iv.high
    assert 0.6 < iv.value < 0.9


def test_nan_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        measures.auroc([float("nan"), 1.0], [0, 1])


def test_flagged_share() -> None:
    out = measures.flagged_share([True, False, True, True], [0, 0, 1, 1])
    assert out == {"correct_flagged": 0.5, "wrong_flagged": 1.0, "flagged": 0.75}
