"""Sufficient statistics of a next-token distribution, from which every metric follows.

Every full-distribution metric is a closed form of a few sums over one row of logits ``z``
(length V) and the emitted token ``x``. With ``m = max(z)``, ``d_i = z_i - m <= 0`` and
``e_i = exp(d_i)`` (so ``p_i = e_i / s``):

=========  ==========================================================================
``c``      number of tokens tied for the top (``d_i == 0``); ``s = c + r``
``r``      ``Σ_{d_i<0} e_i``: the mass outside the top, unnormalised
``sd``     ``Σ e_i d_i``  (``sd / s`` is the mean of ``d`` under ``p``)
``q``      ``Σ_{d_i<0} e_i²``
``v``      ``Σ e_i (d_i - sd/s)²``  (two-pass, so no cancellation)
``d2``     ``z_(2) - m``: second largest logit (with multiplicity) minus the largest
``dx``     ``z_x - m``
``gt``     ``#{i : z_i > z_x}``
=========  ==========================================================================

Keeping the top apart (``c`` and ``r`` rather than ``s``) keeps near one-hot rows exact:
``log s = log1p(c - 1 + r)`` and ``1 - Σp² = (c(c-1) + 2cr + r² - q) / s²`` lose nothing when
``r`` is tiny. Two producers fill a :class:`RowStats`: :func:`stats_numpy` here (chunked numpy,
any float dtype) and the fused numba kernel in :mod:`._fused` (float16/float32, one pass per sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Problem codes, per row. A row with a problem has no metrics.
OK, HAS_NAN, HAS_POS_INF, ALL_MASKED, TOKEN_OUT_OF_RANGE, MASS_OVER_ONE = 0, 1, 2, 3, 4, 5
PROBLEMS: dict[int, str] = {
    HAS_NAN: "logits contain NaN",
    HAS_POS_INF: "logits contain +inf",
    ALL_MASKED: "every logit is -inf: there is no distribution",
    TOKEN_OUT_OF_RANGE: "token_id is outside the vocabulary of the logits",
    MASS_OVER_ONE: "the top_k probabilities sum to more than 1: they are not log-probabilities of one distribution",
}
#: How far above 1 the listed top-k probabilities may sum (producers round their logprobs).
MASS_TOLERANCE = 1e-3
#: A log-probability at or below this means "below the floor": OpenAI and vLLM send -9999.0 for a
#: token whose probability is too small to report. Its probability is 0 to float64 precision
#: (e^-9999 underflows) and its surprisal unknown — not 9999 / ln 2 ≈ 14,425 bits.
LOGPROB_FLOOR = -9999.0
#: Below this shifted logit ``d`` the term ``e^d`` is dropped (float32 underflow: e^-87.3 ≈ 1.2e-38).
MIN_SHIFTED = -87.0
_CHUNK_ROWS = 8  # rows per chunk at full vocabularies; short rows (top-k) take more
_CHUNK_ELEMENTS = 1 << 18


@dataclass(frozen=True, slots=True)
class RowStats:
    """The statistics above for a batch of rows (struct of arrays, float64; see the module docstring)."""

    problem: NDArray[np.int8]
    c: FloatArray
    r: FloatArray
    sd: FloatArray
    q: FloatArray
    v: FloatArray
    d2: FloatArray
    dx: FloatArray
    gt: FloatArray

    @classmethod
    def from_columns(cls, out: NDArray[np.float64]) -> RowStats:
        """From an ``(n, 9)`` array whose columns are the fields in declaration order."""
        return cls(out[:, 0].astype(np.int8), *(np.ascontiguousarray(out[:, k]) for k in range(1, 9)))

    @property
    def ok(self) -> NDArray[np.bool_]:
        ok: NDArray[np.bool_] = self.problem == OK
        return ok


def stats_numpy(logits: NDArray[Any], token_ids: NDArray[Any]) -> RowStats:
    """Row statistics with numpy, a chunk of rows at a time in reused float32 buffers.

    float64 input is worked in float64 (the same code, no buffers reused across dtypes).
    """
    z = np.asarray(logits)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (tokens × vocabulary), got shape {z.shape}")
    n, vocab = z.shape
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"{n} rows of logits need {n} token ids, got shape {ids.shape}")
    work = np.float64 if z.dtype == np.float64 else np.float32
    out = np.zeros((n, 9), dtype=np.float64)
    rows = min(max(_CHUNK_ROWS, _CHUNK_ELEMENTS // max(vocab, 1)), max(n, 1))
    d = np.empty((rows, vocab), dtype=work)
    e = np.empty((rows, vocab), dtype=work)
    below = np.empty((rows, vocab), dtype=np.bool_)
    tmp = np.empty((rows, vocab), dtype=work)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        k = stop - start
        _chunk(z[start:stop], ids[start:stop], d[:k], e[:k], below[:k], tmp[:k], out[start:stop])
    return RowStats.from_columns(out)


def _chunk(
    z: NDArray[Any],
    ids: NDArray[np.int64],
    d: NDArray[Any],
    e: NDArray[Any],
    below: NDArray[np.bool_],
    tmp: NDArray[Any],
    out: NDArray[np.float64],
) -> None:
    vocab = z.shape[1]
    with np.errstate(invalid="ignore"):  # signalling NaNs; their rows are flagged below
        np.copyto(d, z, casting="unsafe")
        m = d.max(axis=1)  # NaN propagates
    problem = np.where(np.isnan(m), HAS_NAN, np.where(m == np.inf, HAS_POS_INF, np.where(m == -np.inf, ALL_MASKED, OK)))
    in_range = (ids >= 0) & (ids < vocab)
    problem = np.where((problem == OK) & ~in_range, TOKEN_OUT_OF_RANGE, problem)
    bad = problem != OK
    m[bad] = 0.0
    if bad.any():
        d[bad] = 0.0
    rows = np.arange(z.shape[0])
    zx = d[rows, np.where(in_range, ids, 0)].astype(np.float64)
    gt = (d > zx.astype(d.dtype)[:, None]).sum(axis=1)
    d -= m[:, None]
    np.less(d, 0, out=below)
    c = vocab - below.sum(axis=1)
    d2 = np.where(below, d, -np.inf).max(axis=1) if vocab > 1 else np.full(len(d), -np.inf)
    d2 = np.where(c >= 2, 0.0, d2)
    np.maximum(d, MIN_SHIFTED, out=d)  # masked (-inf) and negligible terms: finite d, e^d ≈ 0
    np.exp(d, out=e)
    e[d <= MIN_SHIFTED] = 0.0
    # numpy's sum along a row is pairwise (error ~log2(V) ulp); einsum's is not, so products go
    # through a buffer (d's, once it is no longer needed) and then .sum.
    sd = _dot(e, d, tmp)
    e[~below] = 0.0  # keep the top out of r and q
    r = e.sum(axis=1, dtype=np.float64) if e.dtype == np.float64 else e.sum(axis=1).astype(np.float64)
    q = _dot(e, e, tmp)
    s = c + r
    mean = sd / s
    d -= mean[:, None].astype(d.dtype)
    np.multiply(d, d, out=d)
    v = _dot(e, d, tmp) + c * mean * mean
    out[:, 0] = problem
    out[:, 1] = c
    out[:, 2] = r
    out[:, 3] = sd
    out[:, 4] = q
    out[:, 5] = v
    out[:, 6] = d2
    out[:, 7] = zx - m
    out[:, 8] = gt
    out[bad, 1:] = np.nan


def _dot(a: NDArray[Any], b: NDArray[Any], tmp: NDArray[Any]) -> FloatArray:
    """Row-wise Σ a·b with numpy's pairwise summation, as float64."""
    np.multiply(a, b, out=tmp)
    return np.asarray(tmp.sum(axis=1), dtype=np.float64)
