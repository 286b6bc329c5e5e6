"""Properties every distribution satisfies, on logits hypothesis makes up."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from services.auditor.metrics import from_logits, from_top_k
from services.auditor.metrics.stats import LOGPROB_FLOOR
from tests.auditor.reference import log_softmax

logit = st.one_of(st.floats(-1e4, 1e4, width=32), st.just(-math.inf))


@st.composite
def rows(draw: st.DrawFn, elements: st.SearchStrategy[float] = logit) -> tuple[np.ndarray, int]:
    v = draw(st.integers(2, 64))
    z = draw(arrays(np.float32, v, elements=elements))
    z[draw(st.integers(0, v - 1))] = draw(elements.filter(math.isfinite))  # at least one unmasked token
    finite = np.flatnonzero(np.isfinite(z))
    return z, int(finite[draw(st.integers(0, len(finite) - 1))])


@settings(max_examples=300, deadline=None)
@given(rows(), st.sampled_from(["numba", "numpy"]))
def test_bounds(row: tuple[np.ndarray, int], engine: str) -> None:
    z, token = row
    v = z.shape[0]
    r = from_logits(z[None, :], [token], kernel=engine)  # type: ignore[arg-type]
    eps = 1e-6
    assert -eps <= r.entropy[0] <= math.log2(v) + eps
    assert r.rank[0] >= 1
    assert 0.0 <= r.margin[0] <= 1.0
    assert 0.0 <= r.fisher_trace[0] <= 1.0 - 1.0 / v + eps
    assert r.hbar_s[0] >= 0.0
    assert r.varentropy[0] >= 0.0
    assert 0.0 <= r.prob[0] <= 1.0 + eps
    assert r.surprisal[0] >= -eps


on_grid = st.one_of(st.integers(-640_000, 640_000).map(lambda i: i / 64.0), st.just(-math.inf))


@settings(max_examples=200, deadline=None)
@given(rows(on_grid))
def test_top_k_with_every_token_equals_the_full_path(row: tuple[np.ndarray, int]) -> None:
    # logits on a 1/64 grid, so that their order survives the trip through float64 log-probabilities
    z, token = row
    z64 = z.astype(np.float64)
    logprobs = log_softmax(z64)
    full = from_logits(z64[None, :], [token])
    top = from_top_k(logprobs[None, :], np.array([logprobs[token]]), np.array([token]))
    names = ["prob", "surprisal", "entropy", "margin", "rank", "hbar_s", "fisher_trace", "varentropy", "coverage"]
    if logprobs[token] <= LOGPROB_FLOOR:  # a logprob there means "below the floor": surprisal unknown
        assert np.isnan([top.surprisal[0], top.hbar_s[0]]).all()
        names = [n for n in names if n not in ("surprisal", "hbar_s")]
    for name in names:
        np.testing.assert_allclose(getattr(top, name), getattr(full, name), rtol=1e-5, atol=1e-9, err_msg=name)
