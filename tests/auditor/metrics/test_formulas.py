"""Each metric on tiny arrays whose values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.auditor.metrics import from_logits, from_logprob, from_top_k

ENGINES = ["numba", "numpy"]


def one(logits: list[float], token: int, engine: str = "numpy") -> dict[str, float]:
    dtype = np.float32 if engine == "numba" else np.float64
    r = from_logits(np.array([logits], dtype=dtype), [token], kernel=engine)  # type: ignore[arg-type]
    return {
        name: float(getattr(r, name)[0])
        for name in (
            "prob",
            "surprisal",
            "entropy",
            "margin",
            "rank",
            "hbar_s",
            "fisher_trace",
            "varentropy",
            "coverage",
        )
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_fair_coin(engine: str) -> None:
    # p = (1/2, 1/2): H = 1 bit, surprisal 1, ℏₛ = √(1·1) = 1, 1 - Σp² = 1/2, no margin, no spread
    m = one([0.0, 0.0], 1, engine)
    assert m == pytest.approx(
        {"prob": 0.5, "surprisal": 1.0, "entropy": 1.0, "margin": 0.0, "rank": 1.0, "hbar_s": 1.0,
         "fisher_trace": 0.5, "varentropy": 0.0, "coverage": 1.0},
        rel=1e-6, abs=1e-12,
    )  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_three_to_one(engine: str) -> None:
    # logits (ln 3, 0) → p = (3/4, 1/4); emitted: the unlikely one.
    # H = 3/4·log2(4/3) + 1/4·2 = 0.311278 + 0.5 = 0.811278
    # surprisal = log2 4 = 2; ℏₛ = √(0.811278·2) = 1.273797
    # margin = 3/4 - 1/4 = 1/2; rank 2; 1 - (9/16 + 1/16) = 3/8
    # varentropy = 3/4·(0.415037 - 0.811278)² + 1/4·(2 - 0.811278)² = 0.117755 + 0.353265 = 0.471020
    m = one([math.log(3.0), 0.0], 1, engine)
    assert m == pytest.approx(
        {"prob": 0.25, "surprisal": 2.0, "entropy": 0.811278, "margin": 0.5, "rank": 2.0, "hbar_s": 1.273797,
         "fisher_trace": 0.375, "varentropy": 0.471020, "coverage": 1.0},
        rel=2e-6,
    )  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_uniform_over_four(engine: str) -> None:
    m = one([7.0, 7.0, 7.0, 7.0], 2, engine)  # H = log2 4 = 2 = surprisal; 1 - 4/16 = 3/4
    assert (m["entropy"], m["surprisal"], m["hbar_s"], m["fisher_trace"], m["rank"]) == pytest.approx(
        (2.0, 2.0, 2.0, 0.75, 1.0), rel=1e-6
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_masked_tokens_do_not_count(engine: str) -> None:
    # (0, -inf, 0): the masked token has p = 0; the others are a fair coin
    m = one([0.0, -math.inf, 0.0], 2, engine)
    assert (m["entropy"], m["prob"], m["fisher_trace"], m["rank"]) == pytest.approx((1.0, 0.5, 0.5, 1.0), rel=1e-6)
    masked = one([0.0, -math.inf, 0.0], 1, engine)  # emitting the masked token: p = 0, rank 3
    assert masked["prob"] == 0.0
    assert masked["surprisal"] == math.inf
    assert masked["rank"] == 3.0


@pytest.mark.parametrize("engine", ENGINES)
def test_one_hot(engine: str) -> None:
    # a single unmasked token: p = 1, nothing uncertain, margin 1
    m = one([-math.inf, 5.0, -math.inf], 1, engine)
    assert m == pytest.approx(
        {"prob": 1.0, "surprisal": 0.0, "entropy": 0.0, "margin": 1.0, "rank": 1.0, "hbar_s": 0.0,
         "fisher_trace": 0.0, "varentropy": 0.0, "coverage": 1.0},
        abs=1e-12,
    )  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_near_one_hot_keeps_tiny_values(engine: str) -> None:
    # (40, 0): p2 = e^-40/(1 + e^-40) = 4.248354e-18, so 1 - Σp² ≈ 2·p2 and H ≈ p2·(40 + 1)/ln 2
    p2 = math.exp(-40.0) / (1.0 + math.exp(-40.0))
    m = one([40.0, 0.0], 0, engine)
    assert m["fisher_trace"] == pytest.approx(2 * p2, rel=1e-5)
    assert m["entropy"] == pytest.approx(p2 * 41.0 / math.log(2), rel=1e-5)
    assert m["surprisal"] == pytest.approx(p2 / math.log(2), rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_nan_of_either_sign_and_any_payload_is_found(dtype: type) -> None:
    bits = {
        np.float16: (np.uint16, [0x7E00, 0xFE00, 0x7C01, 0xFC01]),
        np.float32: (np.uint32, [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001]),
    }
    kind, patterns = bits[dtype]
    z = np.zeros((len(patterns), 3), dtype=dtype)
    for row, pattern in enumerate(patterns):
        z.view(kind)[row, 1] = pattern
    for engine in ENGINES:
        r = from_logits(z, [0] * len(patterns), kernel=engine)  # type: ignore[arg-type]
        assert [r.problem_reason(i) for i in range(len(patterns))] == ["logits contain NaN"] * len(patterns)


def test_bad_rows_have_problems_not_numbers() -> None:
    z = np.array([[0.0, np.nan], [0.0, np.inf], [-np.inf, -np.inf], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    for engine in ENGINES:
        r = from_logits(z, [0, 0, 0, 2, 1], kernel=engine)  # type: ignore[arg-type]
        reasons = [r.problem_reason(i) for i in range(5)]
        assert reasons == [
            "logits contain NaN",
            "logits contain +inf",
            "every logit is -inf: there is no distribution",
            "token_id is outside the vocabulary of the logits",
            None,
        ]
        assert np.isnan(r.entropy[:4]).all()
        assert r.entropy[4] > 0


def test_top_k_tail_bucket() -> None:
    # listed: 1/2 and 1/4; the tail bucket holds 1/4 → entropy 1.5 bits (as for three tokens 1/2, 1/4, 1/4)
    r = from_top_k(np.log([[0.5, 0.25]]), np.array([np.log(0.25)]), np.array([1]))
    assert r.coverage[0] == pytest.approx(0.75)
    assert r.entropy[0] == pytest.approx(1.5)
    assert r.fisher_trace[0] == pytest.approx(1 - (0.25 + 0.0625 + 0.0625))
    assert r.margin[0] == pytest.approx(0.25)
    assert r.rank[0] == 2.0
    assert r.surprisal[0] == pytest.approx(2.0)
    assert r.hbar_s[0] == pytest.approx(math.sqrt(3.0))
    assert not r.exact[0]


def test_top_k_unknowns_are_nan() -> None:
    # the token is not listed and its logprob is unknown: no prob, surprisal, rank, ℏₛ
    r = from_top_k(np.log([[0.5, 0.3]]), np.array([np.nan]), np.array([-1]))
    assert np.isnan([r.prob[0], r.surprisal[0], r.rank[0], r.hbar_s[0]]).all()
    assert r.entropy[0] > 0
    # a single listed token with mass left over: the second most likely is unknown → no margin
    single = from_top_k(np.log([[0.5]]), np.array([np.log(0.5)]), np.array([0]))
    assert np.isnan(single.margin[0])
    assert single.rank[0] == 1.0
    # no list at all: only what the token's own logprob gives
    empty = from_top_k(np.full((1, 1), -np.inf), np.array([np.log(0.5)]), np.array([-1]))
    assert empty.prob[0] == pytest.approx(0.5)
    assert np.isnan([empty.entropy[0], empty.coverage[0], empty.margin[0]]).all()


def test_prob_only() -> None:
    r = from_logprob(np.array([math.log(0.125)]))
    assert r.prob[0] == pytest.approx(0.125)
    assert r.surprisal[0] == pytest.approx(3.0)
    assert np.isnan([r.entropy[0], r.margin[0], r.rank[0], r.hbar_s[0], r.fisher_trace[0], r.coverage[0]]).all()
    assert r.row(0) == {
        "prob": pytest.approx(0.125), "surprisal": pytest.approx(3.0), "entropy": None, "margin": None,
        "rank": None, "hbar_s": None, "fisher_trace": None, "varentropy": None, "coverage": None, "exact": False,
    }  # fmt: skip


def test_top_k_that_is_not_a_distribution_is_a_problem() -> None:
    # 0.7 + 0.6 > 1: no distribution has these two most likely tokens; 0.6 + 0.4004 is rounding
    r = from_top_k(np.log([[0.7, 0.6], [0.6, 0.4004]]), np.array([np.nan, np.nan]), np.array([0, 0]))
    assert r.problem_reason(0) == (
        "the top_k probabilities sum to more than 1: they are not log-probabilities of one distribution"
    )
    assert r.problem_reason(1) is None
    assert r.coverage[1] == 1.0


def test_a_logprob_below_the_floor_is_a_zero_probability_of_unknown_surprisal() -> None:
    # OpenAI and vLLM send -9999.0 for "below the floor": p is 0 to float precision, the surprisal
    # unknown — never 9999 / ln 2 = 14,425 bits (which made a perplexity of 2^1000 ≈ 1e301)
    r = from_logprob(np.array([-9999.0, -1e300, -np.inf, math.log(0.5)]))
    assert r.prob.tolist() == [0.0, 0.0, 0.0, 0.5]
    assert np.isnan(r.surprisal[:3]).all()
    assert r.surprisal[3] == pytest.approx(1.0)
    assert r.row(0)["prob"] == 0.0 and r.row(0)["surprisal"] is None
    # listed at the floor among the alternatives: rank and entropy stand, surprisal and ℏₛ are unknown
    lp = np.array([[math.log(0.75), math.log(0.25), -9999.0]])
    listed = from_top_k(lp, np.array([np.nan]), np.array([2]))
    assert listed.prob[0] == 0.0
    assert np.isnan([listed.surprisal[0], listed.hbar_s[0]]).all()
    assert listed.rank[0] == 3.0
    assert listed.entropy[0] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    # the floor's own logprob given beside a listed one: the same
    given = from_top_k(lp[:, :2], np.array([-9999.0]), np.array([-1]))
    assert given.prob[0] == 0.0 and np.isnan(given.surprisal[0])
    # just above the floor is a real (if absurd) value
    assert from_logprob(np.array([-9998.0])).surprisal[0] == pytest.approx(9998.0 / math.log(2))
