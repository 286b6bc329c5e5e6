"""Composite scores built from other metrics."""

from __future__ import annotations

import numpy as np

from services.auditor.metrics.stats import FloatArray


def hbar_s(entropy_bits: FloatArray, surprisal_bits: FloatArray) -> FloatArray:
    """ℏₛ = ``√(H · surprisal)`` bits: the geometric mean of how spread the distribution is (Δμ = H)
    and how far the emitted token lies from what the model expected (Δσ = surprisal).
    Higher = more uncertain.

    This project's own definition of the original README's headline score, and experimental: judge it
    beside surprisal (NLL) and entropy. It is on the scale of entropy, so a threshold of 2.5 keeps its
    meaning. NaN when either input is NaN; ``+inf`` surprisal with zero entropy gives NaN (0 · ∞).
    """
    with np.errstate(invalid="ignore"):
        return np.sqrt(entropy_bits * surprisal_bits)
