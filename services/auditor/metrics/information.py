"""Information-theoretic metrics: probability, surprisal, entropy, varentropy. Units: bits.

Each function takes the row statistics of :mod:`.stats` (``s = c + r``, ``log s = log1p(c - 1 + r)``)
and returns float64 arrays, NaN where a row has a problem.
"""

from __future__ import annotations

import numpy as np

from services.auditor.metrics.stats import LOGPROB_FLOOR, FloatArray, RowStats

LN2 = float(np.log(2.0))


def log_partition(st: RowStats) -> FloatArray:
    """``log s`` (natural) where ``s = Σ exp(z_i - max z)``; exact for near one-hot rows."""
    return np.log1p((st.c - 1.0) + st.r)


def prob(st: RowStats) -> FloatArray:
    """``p(x) = exp(z_x - m) / s``, the emitted token's probability. Higher = more certain."""
    with np.errstate(under="ignore"):
        return np.exp(st.dx - log_partition(st))


def surprisal(st: RowStats) -> FloatArray:
    """``-log2 p(x) = (log s - (z_x - m)) / ln 2`` bits. Higher = more uncertain.

    ``+inf`` when the emitted token was masked (``z_x = -inf``); the auditor publishes that as null.
    """
    return (log_partition(st) - st.dx) / LN2


def entropy(st: RowStats) -> FloatArray:
    """``H = -Σ p_i log2 p_i = (log s - sd/s) / ln 2`` bits, in ``[0, log2 V]``. Higher = more uncertain."""
    s = st.c + st.r
    return np.maximum(log_partition(st) - st.sd / s, 0.0) / LN2


def varentropy(st: RowStats) -> FloatArray:
    """``Σ p_i (-log2 p_i - H)²`` bits²: the variance of the surprisal. Higher = less predictable spread.

    Equals ``Var_p(d) / ln²2`` because ``-log p_i = log s - d_i``; ``v`` is computed two-pass.
    """
    return (st.v / (st.c + st.r)) / (LN2 * LN2)


def surprisal_from_logprob(logprob: FloatArray) -> FloatArray:
    """``-log2 p`` from a natural-log probability. Higher = more uncertain.

    NaN (unknown) for a logprob at or below :data:`~.stats.LOGPROB_FLOOR` (a producer's "below the
    floor", -inf included): the true value is only known to be large.
    """
    lp = np.asarray(logprob, dtype=np.float64)
    out: FloatArray = np.where(lp > LOGPROB_FLOOR, -lp / LN2 + 0.0, np.nan)
    return out
