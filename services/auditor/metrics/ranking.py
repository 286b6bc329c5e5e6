"""Rank-based metrics: the emitted token's rank, and the margin between the two most likely tokens."""

from __future__ import annotations

import numpy as np

from services.auditor.metrics.information import log_partition
from services.auditor.metrics.stats import FloatArray, RowStats


def rank(st: RowStats) -> FloatArray:
    """``1 + #{i : z_i > z_x}``: 1 when the emitted token is (tied for) the most likely. Higher = more surprising.

    Ties count in the token's favour: a token tied with the top has rank 1.
    """
    return 1.0 + st.gt


def margin(st: RowStats) -> FloatArray:
    """``p(1st) - p(2nd) = (1 - exp(z_(2) - m)) / s``, in ``[0, 1]``. Higher = more certain.

    Two tokens tied for the top give 0; a single unmasked token gives 1.
    """
    with np.errstate(under="ignore"):
        return -np.expm1(st.d2) * np.exp(-log_partition(st))
