"""How well a score tells wrong answers from right ones (pure: numpy and scikit-learn, no I/O).

Conventions: a *score* is "higher = more likely wrong" (an uncertainty); ``wrong`` is 1 for a wrong
answer and 0 for a correct one; ``quality`` is 1 − wrong.

- **AUROC**: probability that a random wrong answer scores above a random correct one (0.5 = chance).
- **AUPRC**: average precision of finding the wrong answers by score (chance = the share of wrong).
- **PRR** (prediction–rejection ratio, lm-polygraph's definition): reject the most uncertain answers
  first; the *prediction–rejection area* is the mean, over every rejection rate, of the mean quality
  of what is kept. PRR = (area of the score − area of random) / (area of the oracle − area of random),
  where the oracle rejects by true quality and random keeps the mean quality at every rate. 1 is
  perfect, 0 is chance, negative is worse than chance.
- **ECE**: expected calibration error of a predicted P(wrong), over equal-width bins.
- Bootstrap 95 % intervals resample the answers (percentile method, fixed seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def _clean(score: Any, wrong: Any) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(score, dtype=np.float64)
    w = np.asarray(wrong, dtype=np.float64)
    if s.shape != w.shape or s.ndim != 1:
        raise ValueError(f"score and wrong must be 1-D of one length, got {s.shape} and {w.shape}")
    if np.isnan(s).any():
        raise ValueError("scores hold NaN: fill missing scores before measuring")
    return s, w


def auroc(score: Any, wrong: Any) -> float | None:
    """Area under the ROC curve of ``score`` for ``wrong``; None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    s, w = _clean(score, wrong)
    if w.min() == w.max():
        return None
    return float(roc_auc_score(w, s))


def auprc(score: Any, wrong: Any) -> float | None:
    """Average precision of ``score`` for finding the wrong answers; None with one class only."""
    from sklearn.metrics import average_precision_score

    s, w = _clean(score, wrong)
    if w.min() == w.max():
        return None
    return float(average_precision_score(w, s))


def rejection_curve(score: Any, quality: Any) -> FloatArray:
    """Mean quality of the kept answers after rejecting the ``i`` most uncertain, for i = 0 … n−1."""
    s, q = _clean(score, quality)
    order = np.argsort(s, kind="stable")  # least uncertain first
    kept = np.cumsum(q[order]) / np.arange(1, len(q) + 1)  # mean quality of the j least uncertain
    return kept[::-1]  # index i: i rejected, n − i kept


def rejection_area(score: Any, quality: Any) -> float:
    """lm-polygraph's prediction–rejection area: the mean of :func:`rejection_curve`."""
    return float(rejection_curve(score, quality).mean())


def prr(score: Any, wrong: Any) -> dict[str, float | None]:
    """PRR with the areas it is made of: ``{"prr", "area", "random", "oracle"}``."""
    s, w = _clean(score, wrong)
    q = 1.0 - w
    area = rejection_area(s, q)
    random = float(q.mean())  # every kept subset of a random order has the mean quality, in expectation
    oracle = rejection_area(-q, q)
    value = (area - random) / (oracle - random) if oracle > random else None
    return {"prr": value, "area": area, "random": random, "oracle": oracle}


def ece(p_wrong: Any, wrong: Any, bins: int = 10) -> float:
    """Expected calibration error: Σ over equal-width bins of |mean p − share wrong| × share of answers."""
    p, w = _clean(p_wrong, wrong)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_wrong must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += abs(float(p[mask].mean()) - float(w[mask].mean())) * float(mask.mean())
    return total


def reliability(p_wrong: Any, wrong: Any, bins: int = 10) -> list[dict[str, float]]:
    """Per non-empty bin: mean predicted P(wrong), observed share wrong, count (the reliability diagram)."""
    p, w = _clean(p_wrong, wrong)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append({"predicted": float(p[mask].mean()), "observed": float(w[mask].mean()), "n": int(mask.sum())})
    return out


@dataclass(frozen=True, slots=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


def bootstrap(
    measure: Callable[[FloatArray, FloatArray], float | None],
    score: Any,
    wrong: Any,
    *,
    rounds: int = 1000,
    seed: int = 0,
) -> Interval:
    """``measure`` on the data and its 95 % percentile interval over ``rounds`` resamples."""
    s, w = _clean(score, wrong)
    value = measure(s, w)
    rng = np.random.default_rng(seed)
    n = len(s)
    samples = []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        v = measure(s[idx], w[idx])
        if v is not None:
            samples.append(v)
    if value is None or len(samples) < rounds // 2:
        return Interval(value, None, None)
    low, high = np.percentile(samples, [2.5, 97.5])
    return Interval(value, float(low), float(high))


def prr_value(score: FloatArray, wrong: FloatArray) -> float | None:
    return prr(score, wrong)["prr"]


def flagged_share(flag: Any, wrong: Any) -> dict[str, float | None]:
    """Share of correct and of wrong answers that a yes/no signal (an alert, a risk level) flags."""
    f = np.asarray(flag, dtype=bool)
    w = np.asarray(wrong, dtype=bool)
    return {
        "correct_flagged": float(f[~w].mean()) if (~w).any() else None,
        "wrong_flagged": float(f[w].mean()) if w.any() else None,
        "flagged": float(f.mean()) if len(f) else None,
    }
