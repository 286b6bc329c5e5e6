"""Every metric against the independent float64 reference (tests/auditor/reference.py).

Tolerance: 1e-5 relative, or 1e-12 absolute for values within rounding of zero (the varentropy of
a uniform row is 0, the reference's float64 sums leave ~1e-30).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from services.auditor.metrics import from_logits
from tests.auditor.reference import reference

REF_METRICS = ("prob", "surprisal", "entropy", "margin", "rank", "hbar_s", "fisher_trace", "varentropy")
Maker = Callable[[np.random.Generator, int], np.ndarray]


def _random(rng: np.random.Generator, v: int) -> np.ndarray:
    return rng.standard_normal(v) * 3.0


def _huge(rng: np.random.Generator, v: int) -> np.ndarray:
    return rng.uniform(-1e4, 1e4, v)


def _huge_close(rng: np.random.Generator, v: int) -> np.ndarray:
    z = np.full(v, -1e4) + rng.standard_normal(v) * 2.0  # large magnitude, small differences
    z[rng.integers(v)] = 1e4
    z[: v // 2] = 9990.0 + rng.standard_normal(v // 2)
    return z


def _masked(rng: np.random.Generator, v: int) -> np.ndarray:
    z = rng.standard_normal(v) * 2.0
    z[rng.random(v) < 0.7] = -np.inf
    return z


def _tied_top(rng: np.random.Generator, v: int) -> np.ndarray:
    z = rng.standard_normal(v)
    z[rng.choice(v, 3, replace=False)] = 6.0
    return z


def _one_hot(rng: np.random.Generator, v: int) -> np.ndarray:
    z = np.full(v, -np.inf)
    z[rng.integers(v)] = rng.normal()
    return z


def _near_one_hot(rng: np.random.Generator, v: int) -> np.ndarray:
    z = np.zeros(v)
    z[rng.integers(v)] = 40.0
    return z


def _uniform(rng: np.random.Generator, v: int) -> np.ndarray:
    return np.full(v, 3.25)


MAKERS: dict[str, Maker] = {
    "random": _random,
    "huge": _huge,
    "huge_close": _huge_close,
    "masked": _masked,
    "tied_top": _tied_top,
    "one_hot": _one_hot,
    "near_one_hot": _near_one_hot,
    "uniform": _uniform,
}


def _check(logits: np.ndarray, ids: np.ndarray, engine: str) -> None:
    result = from_logits(logits, ids, kernel=engine)  # type: ignore[arg-type]
    assert (result.problem == 0).all()
    for i, token in enumerate(ids):
        expected = reference(logits[i], int(token))
        got = {name: float(getattr(result, name)[i]) for name in REF_METRICS}
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-12, nan_ok=True), f"row {i}"


def _batch(case: str, v: int, dtype: type, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = [MAKERS[case](rng, v) for _ in range(3)]
    logits = np.stack(rows).astype(dtype)
    ids = np.array([rng.integers(v), int(np.argmax(logits[1])), rng.integers(v)])
    finite = np.flatnonzero(np.isfinite(logits[2]))
    ids[2] = finite[rng.integers(len(finite))]  # one emitted token that is never masked
    return logits, ids


@pytest.mark.parametrize("case", list(MAKERS))
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_float16_v32000(case: str, engine: str) -> None:
    _check(*_batch(case, 32_000, np.float16, seed=1), engine)


@pytest.mark.parametrize("case", ["random", "huge", "masked", "tied_top", "near_one_hot"])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_float32_v49152(case: str, engine: str) -> None:
    _check(*_batch(case, 49_152, np.float32, seed=2), engine)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(MAKERS))
@pytest.mark.parametrize("v", [49_152, 151_936])
def test_float16_large_vocabularies(case: str, v: int) -> None:
    _check(*_batch(case, v, np.float16, seed=3), "numba")


def test_float64_input_uses_float64() -> None:
    _check(*_batch("random", 1_000, np.float64, seed=4), "numpy")


def test_engines_agree_on_a_long_batch() -> None:
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal((40, 4_096)) * 4).astype(np.float16)  # more than one 8-row chunk
    ids = rng.integers(0, 4_096, 40)
    a = from_logits(logits, ids, kernel="numba")
    b = from_logits(logits, ids, kernel="numpy")
    for name in REF_METRICS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-12, err_msg=name)
