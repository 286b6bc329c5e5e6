"""Sequence scores: the formulas on hand-made tokens, the answer span, and the persisted state."""

from __future__ import annotations

import math

import pytest

from services.alerter.scores import AnswerSpan, SequenceStats, SpanStats, features
from services.common.contracts import Metrics


def m(surprisal: float | None, entropy: float | None = None, margin: float | None = None) -> Metrics:
    prob = 2.0**-surprisal if surprisal is not None else None
    hbar = math.sqrt(surprisal * entropy) if surprisal is not None and entropy is not None else None
    return Metrics(prob=prob, surprisal=surprisal, entropy=entropy, margin=margin, hbar_s=hbar, exact=True)


def test_span_scores_by_hand() -> None:
    span = SpanStats()
    for metrics in (m(1.0, 2.0, 0.5), m(3.0, 1.0, 0.1), m(None)):
        span.add(metrics)
    s = span.scores()
    assert span.tokens == 3
    assert s["gnll"] == pytest.approx(4.0)
    assert s["msp"] == pytest.approx(1 - 2**-4)
    assert s["mean_nll"] == pytest.approx(2.0)
    assert s["max_nll"] == pytest.approx(3.0)
    assert s["first_nll"] == pytest.approx(1.0)
    assert s["mean_entropy"] == pytest.approx(1.5)
    assert s["max_entropy"] == pytest.approx(2.0)
    assert s["max_hbar_s"] == pytest.approx(math.sqrt(3.0))
    assert s["mean_hbar_s"] == pytest.approx((math.sqrt(2.0) + math.sqrt(3.0)) / 2)
    assert s["min_margin_gap"] == pytest.approx(0.9)


def test_empty_span_scores_are_null() -> None:
    assert all(v is None for v in SpanStats().scores().values())


def test_msp_stays_finite_and_exact_for_huge_nll() -> None:
    span = SpanStats()
    span.add(m(5000.0))
    assert span.scores()["msp"] == 1.0
    tiny = SpanStats()
    tiny.add(m(1e-9))
    assert tiny.scores()["msp"] == pytest.approx(1e-9 * math.log(2))


@pytest.mark.parametrize(
    ("texts", "answer"),
    [
        ([" Paris", "\n", "Q", ":"], [" Paris", "\n"]),
        ([" Paris", ".", " It", " is"], [" Paris", "."]),
        (["\n", " Paris", " France", "\n\n", "more"], ["\n", " Paris", " France", "\n\n"]),
        ([" ", " 1945"], [" ", " 1945"]),
        ([" Paris\nQ"], [" Paris\nQ"]),
    ],
)
def test_answer_span(texts: list[str], answer: list[str]) -> None:
    span = AnswerSpan()
    assert [t for t in texts if span.take(t)] == answer


def test_state_round_trips_and_continues_identically() -> None:
    tokens = [(" Paris", m(0.5, 1.0, 0.7)), (".", m(0.1, 0.2, 0.9)), (" It", m(2.0, 3.0, 0.2))]
    whole = SequenceStats()
    for text, metrics in tokens:
        whole.add(text, metrics)
    split = SequenceStats()
    split.add(*tokens[0])
    split = SequenceStats.from_json(split.to_json())
    for text, metrics in tokens[1:]:
        split.add(text, metrics)
    assert features(split) == features(whole)
    assert features(whole)["answer.tokens"] == 2.0
    assert features(whole)["all.gnll"] == pytest.approx(2.6)
