"""The three entry points, one per kind of input, each returning a :class:`TokenMetrics` batch.

- :func:`from_logits`: full logits, exact (``exact`` true, ``coverage`` 1);
- :func:`from_top_k`: the top-k log-probabilities only; entropy, varentropy and Fisher trace over
  the k listed tokens plus one tail bucket of mass ``1 - Σ p_k`` (``exact`` false, ``coverage = Σ p_k``);
- :func:`from_logprob`: only the emitted token's log-probability: ``prob`` and ``surprisal``.

A metric the input does not determine is NaN (null in an audit), never guessed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from services.auditor.metrics import composite, geometry, information, ranking
from services.auditor.metrics.stats import (
    MASS_OVER_ONE,
    MASS_TOLERANCE,
    PROBLEMS,
    FloatArray,
    RowStats,
    stats_numpy,
)

Kernel = Literal["auto", "numba", "numpy"]
METRIC_NAMES = (
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
_UNIT_INTERVAL = frozenset({"prob", "margin", "fisher_trace", "coverage"})


@dataclass(frozen=True, slots=True)
class TokenMetrics:
    """Metrics of a batch of tokens, one float64 array per metric (NaN = cannot be computed)."""

    prob: FloatArray
    surprisal: FloatArray
    entropy: FloatArray
    margin: FloatArray
    rank: FloatArray
    hbar_s: FloatArray
    fisher_trace: FloatArray
    varentropy: FloatArray
    coverage: FloatArray
    exact: NDArray[np.bool_]
    problem: NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.prob.shape[0])

    def problem_reason(self, i: int) -> str | None:
        """Why row ``i`` has no metrics (NaN or +inf logits, …), or None when it has them."""
        code = int(self.problem[i])
        return PROBLEMS.get(code) if code else None

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as the fields of the ``Metrics`` contract: non-finite values become None."""
        return self.rows(np.array([i]))[0]

    def rows(self, index: NDArray[np.intp] | None = None) -> list[dict[str, Any]]:
        """Rows (all, or those at ``index``) as ``Metrics`` fields, converted a column at a time.

        Non-finite values become None; probabilities are clipped to [0, 1] and the rest to >= 0
        (rounding can leave -1e-17 where 0 is meant); rank becomes an int.
        """
        pick = slice(None) if index is None else index
        columns: dict[str, list[Any]] = {}
        for name in METRIC_NAMES:
            values = getattr(self, name)[pick]
            with np.errstate(invalid="ignore"):
                values = np.clip(values, 0.0, 1.0) if name in _UNIT_INTERVAL else np.maximum(values, 0.0)
            finite = np.isfinite(values).tolist()
            if name == "rank":
                as_list = np.where(np.isfinite(values), values, 0).astype(np.int64).tolist()
            else:
                as_list = values.tolist()
            columns[name] = [v if ok else None for v, ok in zip(as_list, finite, strict=True)]
        exact = self.exact[pick].tolist()
        names = (*METRIC_NAMES, "exact")
        return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), exact, strict=True)]


def from_logits(
    logits: NDArray[Any], token_ids: NDArray[Any] | Sequence[int], *, kernel: Kernel = "auto"
) -> TokenMetrics:
    """Exact metrics from full next-token logits.

    ``logits``: ``(n, V)`` float16, float32 or float64; ``-inf`` marks a masked token. A row with NaN
    or ``+inf``, with every entry ``-inf``, or whose token id is outside ``[0, V)`` gets NaN metrics
    and a nonzero ``problem`` (see :meth:`TokenMetrics.problem_reason`).
    ``kernel``: ``"numba"`` (fused kernel, float16/float32 only), ``"numpy"`` (chunked), or ``"auto"``
    (numba where it is installed and the dtype allows, else numpy).
    """
    z = np.asarray(logits)
    ids = np.asarray(token_ids, dtype=np.int64)
    if z.ndim != 2 or ids.shape != (z.shape[0],):
        raise ValueError(f"need logits (n, V) and n token ids; got shapes {z.shape} and {ids.shape}")
    if z.shape[1] < 1:
        raise ValueError("the vocabulary is empty")
    st = _stats(z, ids, kernel)
    n = z.shape[0]
    return _assemble(st, exact=np.ones(n, np.bool_), coverage=np.where(st.ok, 1.0, np.nan))


def from_top_k(logprobs: NDArray[Any], token_logprob: NDArray[Any], token_pos: NDArray[Any]) -> TokenMetrics:
    """Metrics from the k most likely tokens' natural-log probabilities (an external producer's view).

    ``logprobs``: ``(n, K)``, row i's listed log-probabilities padded with ``-inf`` (order free).
    ``token_logprob``: the emitted token's log-probability, NaN where unknown.
    ``token_pos``: the emitted token's column in ``logprobs``, -1 where it is not listed.

    Entropy, varentropy and Fisher trace treat the unlisted mass ``1 - Σ p_k`` as one token (a lower
    bound of the true value, equal to it when the list is the whole vocabulary); ``coverage = Σ p_k``.
    Margin needs the two most likely tokens listed; rank needs the emitted token listed.
    A logprob at or below ``LOGPROB_FLOOR`` (-9999, "below the floor") is a probability of 0: the
    emitted token's surprisal and ℏₛ are then NaN (unknown), its ``prob`` 0.
    A row whose listed probabilities sum to more than ``1 + MASS_TOLERANCE`` gets a problem (its
    figures mean nothing; the auditor dead-letters it).
    """
    lp = np.asarray(logprobs, dtype=np.float64)
    tok = np.asarray(token_logprob, dtype=np.float64)
    pos = np.asarray(token_pos, dtype=np.int64)
    if lp.ndim != 2 or tok.shape != (lp.shape[0],) or pos.shape != tok.shape:
        raise ValueError(
            f"need logprobs (n, K), token_logprob (n,), token_pos (n,); got {lp.shape}, {tok.shape}, {pos.shape}"
        )
    n, k = lp.shape
    if n == 0:
        return _empty(0)
    listed = np.isfinite(lp)
    n_listed = listed.sum(axis=1)
    with np.errstate(under="ignore"):
        p = np.exp(lp)
    total = p.sum(axis=1)
    coverage = np.minimum(total, 1.0)
    tail = 1.0 - total
    # 1 - Σp is rounding noise up to ~K ulp; as a bucket it would add ~1e-14 bits to an entropy that can
    # be far smaller (near one-hot rows), so a tail that small is no tail
    tail = np.where(tail > 16 * max(k, 1) * np.finfo(np.float64).eps, tail, 0.0)
    with np.errstate(divide="ignore"):
        bucketed = np.concatenate([lp, np.log(tail)[:, None]], axis=1)
    has_list = n_listed > 0
    st = stats_numpy(np.where(has_list[:, None], bucketed, 0.0), np.zeros(n, np.int64))
    none = np.full(n, np.nan)
    entropy = np.where(has_list, information.entropy(st), np.nan)
    varentropy = np.where(has_list, information.varentropy(st), np.nan)
    fisher = np.where(has_list, geometry.fisher_trace(st), np.nan)

    rows = np.arange(n)
    known = pos >= 0
    at_pos = lp[rows, np.where(known, pos, 0)]
    x_lp = np.where(np.isfinite(tok), tok, np.where(known, at_pos, np.nan))
    rank = np.where(known, 1.0 + (lp > at_pos[:, None]).sum(axis=1), np.nan)
    first = lp.max(axis=1) if k else none
    ties = (lp == first[:, None]).sum(axis=1) if k else np.zeros(n, np.int64)
    second = np.where(ties >= 2, first, np.where(lp < first[:, None], lp, -np.inf).max(axis=1) if k else none)
    with np.errstate(under="ignore", invalid="ignore"):
        margin = np.where(n_listed >= 2, np.exp(first) - np.exp(second), np.nan)
        margin = np.where((n_listed == 1) & (tail == 0.0), np.exp(first), margin)
    with np.errstate(under="ignore"):
        prob = np.exp(x_lp)
    surprisal = information.surprisal_from_logprob(x_lp)
    return TokenMetrics(
        prob=prob,
        surprisal=surprisal,
        entropy=entropy,
        margin=margin,
        rank=rank,
        hbar_s=composite.hbar_s(entropy, surprisal),
        fisher_trace=fisher,
        varentropy=varentropy,
        coverage=np.where(has_list, coverage, np.nan),
        exact=np.zeros(n, np.bool_),
        problem=np.where(total > 1.0 + MASS_TOLERANCE, MASS_OVER_ONE, 0).astype(np.int8),
    )


def from_logprob(token_logprob: NDArray[Any]) -> TokenMetrics:
    """Only the emitted token's natural-log probability is known: ``prob`` and ``surprisal``; the rest NaN.

    At or below ``LOGPROB_FLOOR`` ("below the floor") ``prob`` is 0 and ``surprisal`` NaN (unknown).
    """
    tok = np.asarray(token_logprob, dtype=np.float64)
    if tok.ndim != 1:
        raise ValueError(f"token_logprob must be 1-D, got shape {tok.shape}")
    out = _empty(tok.shape[0])
    with np.errstate(under="ignore"):
        out.prob[:] = np.exp(tok)
    out.surprisal[:] = information.surprisal_from_logprob(tok)
    return out


def empty(n: int) -> TokenMetrics:
    """``n`` rows with every metric NaN (distribution ``"none"``)."""
    return _empty(n)


def _empty(n: int) -> TokenMetrics:
    nan = {name: np.full(n, np.nan) for name in METRIC_NAMES}
    return TokenMetrics(**nan, exact=np.zeros(n, np.bool_), problem=np.zeros(n, np.int8))


def _stats(z: NDArray[Any], ids: NDArray[np.int64], kernel: Kernel) -> RowStats:
    if kernel == "numpy" or z.dtype not in (np.float16, np.float32):
        if kernel == "numba":
            raise ValueError(f"the numba kernel takes float16 or float32 logits, not {z.dtype}")
        return stats_numpy(z, ids)
    if importlib.util.find_spec("numba") is None:
        if kernel == "numba":
            raise ImportError("numba is not installed: `pip install numba`, or use kernel='numpy'")
        return stats_numpy(z, ids)
    from services.auditor.metrics import _fused  # compiles on first use (seconds), then cached on disk

    return _fused.stats_fused(z, ids)


def _assemble(st: RowStats, *, exact: NDArray[np.bool_], coverage: FloatArray) -> TokenMetrics:
    with np.errstate(invalid="ignore"):
        entropy = information.entropy(st)
        surprisal = information.surprisal(st)
        return TokenMetrics(
            prob=information.prob(st),
            surprisal=surprisal,
            entropy=entropy,
            margin=ranking.margin(st),
            rank=ranking.rank(st),
            hbar_s=composite.hbar_s(entropy, surprisal),
            fisher_trace=geometry.fisher_trace(st),
            varentropy=information.varentropy(st),
            coverage=coverage,
            exact=exact,
            problem=st.problem,
        )
