"""Sequence scores: how likely a whole generation (or its answer) is wrong, from its tokens' metrics.

Pure and streaming: :class:`SpanStats` takes one token's metrics at a time in O(1) and keeps only
running sums and extremes, so the alerter computes the scores live for every session, and the
evaluation (``uq eval``) computes the very same numbers from recorded audits with the same class.

Every score is "higher = more likely wrong" (bits where it has a unit):

| score | formula |
|---|---|
| ``gnll`` | G-NLL: Σ surprisal = −log2 p(greedy sequence) |
| ``msp`` | 1 − Π p(x_t) = 1 − 2^(−gnll): one minus the maximum sequence probability |
| ``mean_nll`` | Σ surprisal / n = log2 perplexity |
| ``max_nll`` | max surprisal |
| ``first_nll`` | surprisal of the first token of the span |
| ``mean_entropy`` | Σ H / n |
| ``max_entropy`` | max H |
| ``first_entropy`` | H of the first token of the span: how open the answer was when it began |
| ``mean_hbar_s`` | Σ ℏₛ / n (experimental) |
| ``max_hbar_s`` | max ℏₛ (experimental) |
| ``min_margin_gap`` | 1 − min margin: how close the closest call of the span was |
| ``first_margin_gap`` | 1 − margin of the first token |
| ``probe`` | Σ probe / n: mean hidden-state probe projection (white-box engines with a profile probe) |

Two spans are scored: ``all`` tokens, and the ``answer``: the tokens up to the end of the first line
or sentence (:class:`AnswerSpan`), which is what a short-answer question is judged on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from services.common.answer import AnswerSpan
from services.common.contracts import Metrics

SCORE_NAMES: tuple[str, ...] = (
    "gnll",
    "msp",
    "mean_nll",
    "max_nll",
    "first_nll",
    "mean_entropy",
    "max_entropy",
    "first_entropy",
    "mean_hbar_s",
    "max_hbar_s",
    "min_margin_gap",
    "first_margin_gap",
    "probe",
)


@dataclass(slots=True)
class SpanStats:
    """Running sums and extremes of one span's token metrics (null metrics are skipped)."""

    tokens: int = 0
    nll_n: int = 0
    nll_sum: float = 0.0
    nll_max: float | None = None
    nll_first: float | None = None
    entropy_n: int = 0
    entropy_sum: float = 0.0
    entropy_max: float | None = None
    hbar_n: int = 0
    hbar_sum: float = 0.0
    hbar_max: float | None = None
    margin_min: float | None = None
    entropy_first: float | None = None
    margin_first: float | None = None
    probe_n: int = 0
    probe_sum: float = 0.0

    def add(self, m: Metrics) -> None:
        self.tokens += 1
        if m.probe is not None and math.isfinite(m.probe):
            self.probe_n += 1
            self.probe_sum += m.probe
        if m.surprisal is not None and math.isfinite(m.surprisal):
            if self.nll_n == 0:
                self.nll_first = m.surprisal
            self.nll_n += 1
            self.nll_sum += m.surprisal
            self.nll_max = m.surprisal if self.nll_max is None else max(self.nll_max, m.surprisal)
        if self.tokens == 1:
            self.entropy_first = m.entropy
            self.margin_first = m.margin
        if m.entropy is not None:
            self.entropy_n += 1
            self.entropy_sum += m.entropy
            self.entropy_max = m.entropy if self.entropy_max is None else max(self.entropy_max, m.entropy)
        if m.hbar_s is not None and math.isfinite(m.hbar_s):
            self.hbar_n += 1
            self.hbar_sum += m.hbar_s
            self.hbar_max = m.hbar_s if self.hbar_max is None else max(self.hbar_max, m.hbar_s)
        if m.margin is not None:
            self.margin_min = m.margin if self.margin_min is None else min(self.margin_min, m.margin)

    def scores(self) -> dict[str, float | None]:
        """Every score of :data:`SCORE_NAMES` (null when the span has no token with that metric)."""
        nll = self.nll_sum if self.nll_n else None
        return {
            "gnll": nll,
            "msp": -math.expm1(-nll * math.log(2)) if nll is not None else None,
            "mean_nll": self.nll_sum / self.nll_n if self.nll_n else None,
            "max_nll": self.nll_max,
            "first_nll": self.nll_first,
            "mean_entropy": self.entropy_sum / self.entropy_n if self.entropy_n else None,
            "max_entropy": self.entropy_max,
            "first_entropy": self.entropy_first,
            "mean_hbar_s": self.hbar_sum / self.hbar_n if self.hbar_n else None,
            "max_hbar_s": self.hbar_max,
            "min_margin_gap": 1.0 - self.margin_min if self.margin_min is not None else None,
            "first_margin_gap": 1.0 - self.margin_first if self.margin_first is not None else None,
            "probe": self.probe_sum / self.probe_n if self.probe_n else None,
        }

    def to_json(self) -> list[Any]:
        return [
            self.tokens,
            self.nll_n,
            self.nll_sum,
            self.nll_max,
            self.nll_first,
            self.entropy_n,
            self.entropy_sum,
            self.entropy_max,
            self.hbar_n,
            self.hbar_sum,
            self.hbar_max,
            self.margin_min,
            self.entropy_first,
            self.margin_first,
            self.probe_n,
            self.probe_sum,
        ]

    @classmethod
    def from_json(cls, raw: list[Any]) -> SpanStats:
        return cls(*raw)


@dataclass(slots=True)
class SequenceStats:
    """Both spans of one session, fed token by token."""

    all: SpanStats = field(default_factory=SpanStats)
    answer: SpanStats = field(default_factory=SpanStats)
    span: AnswerSpan = field(default_factory=AnswerSpan)

    def add(self, text: str, m: Metrics) -> None:
        self.all.add(m)
        if self.span.take(text):
            self.answer.add(m)

    def to_json(self) -> list[Any]:
        return [self.all.to_json(), self.answer.to_json(), [self.span.seen_text, self.span.closed]]

    @classmethod
    def from_json(cls, raw: list[Any]) -> SequenceStats:
        whole, answer, (seen, closed) = raw
        return cls(SpanStats.from_json(whole), SpanStats.from_json(answer), AnswerSpan(bool(seen), bool(closed)))


def features(stats: SequenceStats) -> dict[str, float | None]:
    """Every score of both spans by ``"<span>.<score>"``, plus their token counts: what calibration
    profiles fit on and what ``uq eval`` reports."""
    out: dict[str, float | None] = {}
    for span_name, span in (("answer", stats.answer), ("all", stats.all)):
        for name, value in span.scores().items():
            out[f"{span_name}.{name}"] = value
        out[f"{span_name}.tokens"] = float(span.tokens)
    return out
