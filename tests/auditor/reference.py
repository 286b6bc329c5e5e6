"""An independent, plainly written float64 reference of every metric, one token at a time.

Nothing here is shared with services/auditor/metrics: textbook formulas on float64, with the two
cares any float64 implementation needs for near one-hot rows: ``log Σ exp`` as ``log1p`` of the mass
outside the top, and ``1 - p`` of a top token as the mass of the others (not ``1.0 - p``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def log_softmax(logits: Any) -> np.ndarray:
    """Natural-log probabilities of a row of logits, in float64 (``log Σ exp`` as ``log1p`` of the rest)."""
    z = np.asarray(logits, dtype=np.float64)
    m = z.max()
    is_top = z == m
    log_sum = math.log1p(int(is_top.sum()) - 1 + math.fsum(np.exp(z[~is_top] - m)))
    return (z - m) - log_sum


def reference(logits: Any, token_id: int) -> dict[str, float]:
    """Every full-distribution metric of one row of logits (any dtype; worked in float64), in bits."""
    z = np.asarray(logits, dtype=np.float64)
    m = z.max()
    is_top = z == m
    n_top = int(is_top.sum())
    others = np.exp(z[~is_top] - m)  # masked tokens: exp(-inf) = 0
    log_sum = math.log1p(n_top - 1 + math.fsum(others))  # log Σ exp(z - m)
    logp = (z - m) - log_sum
    p = np.exp(logp)
    nz = p > 0
    bits = -logp[nz] / math.log(2)  # information content of each possible token
    entropy = math.fsum(p[nz] * bits)
    surprisal = float(-logp[token_id] / math.log(2))
    ordered = np.sort(p)[::-1]
    second = ordered[1] if len(ordered) > 1 else 0.0
    one_minus_p = 1.0 - p
    one_minus_p[is_top] = (n_top - 1 + math.fsum(others)) * math.exp(-log_sum)
    return {
        "prob": float(p[token_id]),
        "surprisal": surprisal,
        "entropy": entropy,
        "margin": float(ordered[0] - second),
        "rank": float(1 + np.count_nonzero(z > z[token_id])),
        "hbar_s": math.sqrt(entropy * surprisal),
        "fisher_trace": math.fsum(p * one_minus_p),
        "varentropy": math.fsum(p[nz] * (bits - entropy) ** 2),
    }
