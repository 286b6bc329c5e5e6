"""Fused numba kernel for the row statistics of :mod:`.stats`, a few passes over a row in cache.

Per row: an integer pass finds the max and min of the raw bits (a float's bits map to an int "key"
of the same order, so max and counts vectorise as integer ops, where numba leaves float max
reductions scalar; NaN keys lie beyond the infinities', so the extremes also reveal NaN and +inf); a second integer pass counts the ties at the top and the tokens above the
emitted one and finds the runner-up; a float pass computes ``e = exp(z - m)`` once, vectorised with
AVX2 by a polynomial ``2^t`` (relative error < 2e-6, no SVML needed), accumulating ``r, sd, q`` in
float32 blocks of 256 added into float64; a last pass sums ``v = Σ e (d - mean)²`` from the stored
``e``. float16 is read as raw bits and widened in the kernel (``vcvtph2ps``), so no float32 copy of
the batch is ever made. Checked against a float64 reference in tests/auditor/metrics/test_exactness.py.

This module imports numba; :mod:`.batch` imports it only when numba is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba as nb
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.extending import intrinsic as numba_intrinsic
from numba.extending import overload as numba_overload
from numpy.typing import NDArray

from services.auditor.metrics.stats import (
    ALL_MASKED,
    HAS_NAN,
    HAS_POS_INF,
    MIN_SHIFTED,
    TOKEN_OUT_OF_RANGE,
    RowStats,
)

# Every fast-math flag but 'ninf' (masked logits are -inf). 'nnan' is safe: NaN is found first, from
# the bits, and such a row is skipped.
_FASTMATH = {"nnan", "nsz", "arcp", "contract", "reassoc", "afn"}
_OPTIONS: dict[str, Any] = {"fastmath": _FASTMATH, "error_model": "numpy", "boundscheck": False}
_BLOCK = 256
_LOG2E = np.float32(1.4426950408889634)
_MIN_T = np.float32(MIN_SHIFTED * 1.4426950408889634)
_F32 = np.float32


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:  # numba types these when it compiles, not mypy
    return cast(Callable[..., Any], nb.njit(nogil=True, cache=True, **_OPTIONS)(fn))


def _intrinsic(fn: Callable[..., Any]) -> Callable[..., Any]:
    return cast(Callable[..., Any], numba_intrinsic(fn))


def _overload(stub: Callable[..., Any]) -> Callable[[Callable[..., Any]], Any]:
    return cast(Callable[[Callable[..., Any]], Any], numba_overload(stub, jit_options=cast(Any, _OPTIONS)))


def stats_fused(logits: NDArray[Any], token_ids: NDArray[np.int64]) -> RowStats:
    """Row statistics of float16 or float32 ``logits`` (n, V) with the fused kernel."""
    z = np.ascontiguousarray(logits)
    n, vocab = z.shape
    out = np.empty((n, 9), dtype=np.float64)
    buf = np.empty(vocab, dtype=np.float32)
    ids = np.ascontiguousarray(token_ids, dtype=np.int64)
    if z.dtype == np.float16:
        bits = z.view(np.uint16)
        _kernel(bits, bits, ids, out, buf)
    elif z.dtype == np.float32:
        _kernel(z, z.view(np.int32), ids, out, buf)
    else:
        raise ValueError(f"the fused kernel takes float16 or float32 logits, not {z.dtype}")
    return RowStats.from_columns(out)


# --- bit-level helpers -------------------------------------------------------------------------


@_intrinsic
def _bits_as_f32(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@_intrinsic
def _half_bits_to_f32(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


def _load_stub(a):  # type: ignore[no-untyped-def]  # numba matches stub and impl signatures
    """An element of the logits as float32 (float16 arrive as their uint16 bits)."""


def _key_stub(b):  # type: ignore[no-untyped-def]  # numba matches stub and impl signatures
    """An int32 whose order is the float order of the raw bits ``b``."""


def _value_stub(k, like):  # type: ignore[no-untyped-def]  # numba matches stub and impl signatures
    """The float32 whose key is ``k`` (``like``: an element of the bits array, for its type)."""


def _traits_stub(like):  # type: ignore[no-untyped-def]  # numba matches stub and impl signatures
    """(lowest key, exponent mask, mantissa mask, bits of +inf) for the bits' type."""


@_overload(_load_stub)
def _load_impl(a):  # type: ignore[no-untyped-def]
    if a == types.uint16:
        return lambda a: _half_bits_to_f32(a)
    return lambda a: a


@_overload(_key_stub)
def _key_impl(b):  # type: ignore[no-untyped-def]
    if b == types.uint16:

        def half_key(b):  # type: ignore[no-untyped-def]
            s = np.int32(np.int16(b))
            return s ^ ((s >> np.int32(15)) & np.int32(0x7FFF))

        return half_key
    return lambda b: b ^ ((b >> np.int32(31)) & np.int32(0x7FFFFFFF))


@_overload(_value_stub)
def _value_impl(k, like):  # type: ignore[no-untyped-def]
    if like == types.uint16:
        return lambda k, like: _half_bits_to_f32(np.uint16(k ^ ((k >> np.int32(15)) & np.int32(0x7FFF))))
    return lambda k, like: _bits_as_f32(k ^ ((k >> np.int32(31)) & np.int32(0x7FFFFFFF)))


@_overload(_traits_stub)
def _traits_impl(like):  # type: ignore[no-untyped-def]
    if like == types.uint16:  # keys of: nothing, +inf (0x7C00), -inf (0xFC00)
        return lambda like: (np.int32(-0x8000), np.int32(0x7C00), np.int32(-31745))
    # keys of: nothing, +inf (0x7F800000), -inf (0xFF800000)
    return lambda like: (np.int32(-0x80000000), np.int32(0x7F800000), np.int32(-2139095041))


# typed names for the stubs (numba resolves these globals to the same function objects)
_load: Callable[..., Any] = _load_stub
_key: Callable[..., Any] = _key_stub
_value: Callable[..., Any] = _value_stub
_traits: Callable[..., Any] = _traits_stub


# --- the passes ----------------------------------------------------------------------------------


@_jit
def _scan(bits: Any) -> Any:
    """(key of the max, key of the min) of one row of raw bits.

    NaN keys lie beyond the infinities' keys (above +inf for a clear sign bit, below -inf for a set
    one), so the two extremes also tell whether the row holds NaN or +inf.
    """
    lowest = _traits(bits[0])[0]
    top = lowest
    bottom = -(lowest + np.int32(1))
    for j in range(bits.shape[0]):
        k = _key(bits[j])
        top = max(top, k)
        bottom = min(bottom, k)
    return top, bottom


@_jit
def _ranks(bits: Any, top: Any, kx: Any) -> Any:
    """(key of the largest value below the max, count at the max, count above the emitted token)."""
    lowest = _traits(bits[0])[0]
    second = lowest
    c = np.int32(0)
    gt = np.int32(0)
    for j in range(bits.shape[0]):
        k = _key(bits[j])
        second = max(second, k if k < top else lowest)
        c += np.int32(k == top)
        gt += np.int32(k > kx)
    return second, c, gt


@_jit
def _exp2_neg(t: Any) -> Any:
    """2**t for -126 < t <= 0, float32, |rel err| < 2e-6 (degree-6 polynomial on [-1/2, 1/2])."""
    n = np.floor(t + _F32(0.5))
    f = t - n
    p = _F32(1.5353362e-4)
    p = p * f + _F32(1.3398874e-3)
    p = p * f + _F32(9.6181294e-3)
    p = p * f + _F32(5.5504109e-2)
    p = p * f + _F32(2.4022652e-1)
    p = p * f + _F32(6.9314718e-1)
    p = p * f + _F32(1.0)
    return p * _bits_as_f32((np.int32(n) + np.int32(127)) << np.int32(23))


@_jit
def _exp_pass(row: Any, m: Any, buf: Any) -> Any:
    """``e = exp(z - m)`` into buf (0 below MIN_SHIFTED); returns r, sd, q (see stats.py)."""
    vocab = row.shape[0]
    r: Any = 0.0
    sd: Any = 0.0
    q: Any = 0.0
    for b0 in range(0, vocab, _BLOCK):
        b1 = min(b0 + _BLOCK, vocab)
        br = _F32(0.0)
        bsd = _F32(0.0)
        bq = _F32(0.0)
        for j in range(b0, b1):
            d = _load(row[j]) - m
            t = d * _LOG2E
            keep = t > _MIN_T
            e1 = _exp2_neg(t if keep else _F32(0.0))
            e = e1 if keep else _F32(0.0)
            dk = d if keep else _F32(0.0)
            buf[j] = e
            rest = _F32(0.0) if d == _F32(0.0) else e
            br += rest
            bsd += e * dk
            bq += rest * rest
        r += br
        sd += bsd
        q += bq
    return r, sd, q


@_jit
def _spread_pass(row: Any, m: Any, mean: Any, buf: Any) -> Any:
    """``v = Σ e (d - mean)²`` from the stored e (the max entries included, e = 1)."""
    vocab = row.shape[0]
    v: Any = 0.0
    for b0 in range(0, vocab, _BLOCK):
        b1 = min(b0 + _BLOCK, vocab)
        bv = _F32(0.0)
        for j in range(b0, b1):
            d = _load(row[j]) - m
            dk = d if d * _LOG2E > _MIN_T else _F32(0.0)
            u = dk - mean
            bv += buf[j] * u * u
        v += bv
    return v


@_jit
def _kernel(z: Any, zbits: Any, ids: Any, out: Any, buf: Any) -> None:
    n, vocab = z.shape
    for i in range(n):
        row = z[i]
        bits = zbits[i]
        top, bottom = _scan(bits)
        _, pinf_key, ninf_key = _traits(bits[0])
        x = ids[i]
        problem = 0
        if top > pinf_key or bottom < ninf_key:
            problem = HAS_NAN
        elif top == pinf_key:
            problem = HAS_POS_INF
        elif _value(top, bits[0]) == _F32(-np.inf):
            problem = ALL_MASKED
        elif x < 0 or x >= vocab:
            problem = TOKEN_OUT_OF_RANGE
        if problem:
            out[i, 0] = problem
            for k in range(1, 9):
                out[i, k] = np.nan
            continue
        second, c, gt = _ranks(bits, top, _key(bits[x]))
        m = _value(top, bits[0])
        zx = _load(row[x])
        r, sd, q = _exp_pass(row, m, buf)
        mean = sd / (c + r)
        v = _spread_pass(row, m, _F32(mean), buf)
        out[i, 0] = 0
        out[i, 1] = c
        out[i, 2] = r
        out[i, 3] = sd
        out[i, 4] = q
        out[i, 5] = v
        if c >= 2:
            out[i, 6] = 0.0
        elif second == _traits(bits[0])[0]:
            out[i, 6] = -np.inf
        else:
            out[i, 6] = np.float64(_value(second, bits[0])) - np.float64(m)
        out[i, 7] = np.float64(zx) - np.float64(m)
        out[i, 8] = gt
