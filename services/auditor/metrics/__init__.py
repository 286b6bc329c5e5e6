"""Uncertainty metrics of next-token distributions: pure numpy (numba optional), no I/O, no torch.

One module per family, each function's docstring giving its formula and direction:
:mod:`.information` (prob, surprisal, entropy, varentropy), :mod:`.ranking` (rank, margin),
:mod:`.geometry` (Fisher trace), :mod:`.composite` (ℏₛ). They read the row statistics of
:mod:`.stats`; :mod:`.batch` holds the three entry points. Units: bits. See docs/metrics.md.
"""

from services.auditor.metrics.batch import (
    METRIC_NAMES,
    Kernel,
    TokenMetrics,
    empty,
    from_logits,
    from_logprob,
    from_top_k,
)
from services.auditor.metrics.stats import PROBLEMS

__all__ = [
    "METRIC_NAMES",
    "PROBLEMS",
    "Kernel",
    "TokenMetrics",
    "empty",
    "from_logits",
    "from_logprob",
    "from_top_k",
]
