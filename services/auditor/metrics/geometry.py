"""Information-geometric metrics of the softmax."""

from __future__ import annotations

import numpy as np

from services.auditor.metrics.stats import FloatArray, RowStats


def fisher_trace(st: RowStats) -> FloatArray:
    """``1 - Σ p_i²``, in ``[0, 1 - 1/V]``. Higher = more uncertain.

    The trace of the Fisher information of the softmax with respect to the logits,
    ``tr(diag(p) - p pᵀ)``; also the Gini impurity, the chance that two independent draws differ.
    Written as ``(c(c-1) + 2cr + r² - q) / s²`` so a near one-hot row keeps its tiny value exactly.
    """
    s = st.c + st.r
    return np.clip((st.c * (st.c - 1.0) + 2.0 * st.c * st.r + (st.r * st.r - st.q)) / (s * s), 0.0, 1.0)
