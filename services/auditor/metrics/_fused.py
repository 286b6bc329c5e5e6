"""Fused numba kernel for the row statistics of :mod:`.stats`: three passes over a row in cache.

Pass 1 finds the max (and NaN / +inf); pass 2 computes ``e = exp(z - m)`` once, vectorised with
AVX2 by a polynomial ``2^t`` (relative error < 2e-6; no SVML needed) and accumulates ``c, r, sd, q,
d2, gt`` in float32 blocks of 256 added into float64; pass 3 sums ``v = Σ e (d - mean)²`` from the
stored ``e``. float16 is read as raw bits and widened in the kernel (``vcvtph2ps``), so no float32
copy of the batch is ever made. Checked against a float64 reference in tests/auditor/test_exactness.py.

numba is optional: :func:`available` is False without it and the numpy path is used instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from services.auditor.metrics.stats import (
    ALL_MASKED,
    HAS_NAN,
    HAS_POS_INF,
    MIN_SHIFTED,
    TOKEN_OUT_OF_RANGE,
    RowStats,
)

F = TypeVar("F", bound=Callable[..., Any])
_KERNELS: dict[str, Callable[..., None]] = {}
_BLOCK = 256
_PARTS: dict[str, Any] = {}


def available() -> bool:
    """True when numba can be imported (the kernels compile on first use, ~2 s, then cached on disk)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def stats_fused(logits: NDArray[Any], token_ids: NDArray[np.int64]) -> RowStats:
    """Row statistics of float16 or float32 ``logits`` (n, V) with the fused kernel."""
    z = np.ascontiguousarray(logits)
    n, vocab = z.shape
    out = np.empty((n, 9), dtype=np.float64)
    buf = np.empty(vocab, dtype=np.float32)
    if z.dtype == np.float16:
        bits = z.view(np.uint16)
        _kernel("f16")(bits, bits, token_ids, out, buf)
    elif z.dtype == np.float32:
        _kernel("f32")(z, z.view(np.int32), token_ids, out, buf)
    else:
        raise ValueError(f"the fused kernel takes float16 or float32 logits, not {z.dtype}")
    return RowStats.from_columns(out)


def _kernel(kind: str) -> Callable[..., None]:
    if kind not in _KERNELS:
        _KERNELS[kind] = _build(kind)
    return _KERNELS[kind]


def _build(kind: str) -> Callable[..., None]:
    import numba as nb
    from llvmlite import ir  # type: ignore[import-untyped]
    from numba import types
    from numba.extending import intrinsic as numba_intrinsic

    def intrinsic(fn: Callable[..., Any]) -> Callable[..., Any]:  # typed by numba when it compiles
        return cast(Callable[..., Any], numba_intrinsic(fn))

    @intrinsic
    def bits_as_f32(typingctx: Any, x: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    @intrinsic
    def half_bits_to_f32(typingctx: Any, x: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return types.float32(types.uint16), codegen

    f32 = np.float32
    njit = nb.njit(
        # every fast-math flag but 'ninf': masked logits are -inf. 'nnan' is safe because NaN is
        # found first, from the bits, and such a row is skipped.
        fastmath={"nnan", "nsz", "arcp", "contract", "reassoc", "afn"},
        error_model="numpy",
        boundscheck=False,
        nogil=True,
        cache=True,
    )

    def jit(fn: F) -> F:
        return cast(F, njit(fn))

    # Integer passes. A float's bits map to an int "key" with the same order (negative numbers get
    # their magnitude bits flipped), so max and counts vectorise as integer ops: numba leaves float
    # max reductions scalar.
    if kind == "f16":

        @jit
        def load(a: Any) -> Any:
            return half_bits_to_f32(a)

        @jit
        def key(a: Any) -> Any:
            b = np.int32(np.int16(a))
            return b ^ ((b >> np.int32(15)) & np.int32(0x7FFF))

        @jit
        def value(k: Any) -> Any:
            return half_bits_to_f32(np.uint16(k ^ ((k >> np.int32(15)) & np.int32(0x7FFF))))

        lowest = np.int32(-0x8000)
        exp_mask, man_mask, pos_inf = np.int32(0x7C00), np.int32(0x03FF), np.int32(0x7C00)
    else:

        @jit
        def load(a: Any) -> Any:
            return a

        @jit
        def key(a: Any) -> Any:
            return a ^ ((a >> np.int32(31)) & np.int32(0x7FFFFFFF))

        @jit
        def value(k: Any) -> Any:
            return bits_as_f32(k ^ ((k >> np.int32(31)) & np.int32(0x7FFFFFFF)))

        lowest = np.int32(-0x80000000)
        exp_mask, man_mask, pos_inf = np.int32(0x7F800000), np.int32(0x007FFFFF), np.int32(0x7F800000)

    @jit
    def scan(bits: Any) -> Any:
        """(key of the max, NaN count, +inf count) of one row of raw bits."""
        top = lowest
        nan = np.int32(0)
        pinf = np.int32(0)
        for j in range(bits.shape[0]):
            b = np.int32(bits[j])
            top = max(top, key(bits[j]))
            nan += np.int32(((b & exp_mask) == exp_mask) & ((b & man_mask) != np.int32(0)))
            pinf += np.int32(b == pos_inf)
        return top, nan, pinf

    @jit
    def ranks(bits: Any, top: Any, kx: Any) -> Any:
        """(key of the second largest value below the max, count at the max, count above x)."""
        second = lowest
        c = np.int32(0)
        gt = np.int32(0)
        for j in range(bits.shape[0]):
            k = key(bits[j])
            second = max(second, k if k < top else lowest)
            c += np.int32(k == top)
            gt += np.int32(k > kx)
        return second, c, gt

    @jit
    def exp2_neg(t: Any) -> Any:
        """2**t for -126 < t <= 0, float32, |rel err| < 2e-6 (degree-6 polynomial on [-1/2, 1/2])."""
        n = np.floor(t + f32(0.5))
        f = t - n
        p = f32(1.5353362e-4)
        p = p * f + f32(1.3398874e-3)
        p = p * f + f32(9.6181294e-3)
        p = p * f + f32(5.5504109e-2)
        p = p * f + f32(2.4022652e-1)
        p = p * f + f32(6.9314718e-1)
        p = p * f + f32(1.0)
        return p * bits_as_f32((np.int32(n) + np.int32(127)) << np.int32(23))

    log2e = f32(1.4426950408889634)
    min_t = f32(MIN_SHIFTED * 1.4426950408889634)
    block = _BLOCK

    @jit
    def exp_pass(row: Any, m: Any, buf: Any) -> Any:
        """e = exp(z - m) into buf; returns r, sd, q (see stats.py)."""
        vocab = row.shape[0]
        r: Any = 0.0
        sd: Any = 0.0
        q: Any = 0.0
        for b0 in range(0, vocab, block):
            b1 = min(b0 + block, vocab)
            br = f32(0.0)
            bsd = f32(0.0)
            bq = f32(0.0)
            for j in range(b0, b1):
                a = load(row[j])
                d = a - m
                t = d * log2e
                keep = t > min_t
                e1 = exp2_neg(t if keep else f32(0.0))
                e = e1 if keep else f32(0.0)
                dk = d if keep else f32(0.0)
                buf[j] = e
                rest = f32(0.0) if d == f32(0.0) else e
                br += rest
                bsd += e * dk
                bq += rest * rest
            r += br
            sd += bsd
            q += bq
        return r, sd, q

    @jit
    def spread_pass(row: Any, m: Any, mean: Any, buf: Any) -> Any:
        """v = Σ e (d - mean)² from the stored e."""
        vocab = row.shape[0]
        v: Any = 0.0
        for b0 in range(0, vocab, block):
            b1 = min(b0 + block, vocab)
            bv = f32(0.0)
            for j in range(b0, b1):
                d = load(row[j]) - m
                dk = d if d * log2e > min_t else f32(0.0)
                u = dk - mean
                bv += buf[j] * u * u
            v += bv
        return v

    @jit
    def kernel(z: Any, zbits: Any, ids: Any, out: Any, buf: Any) -> None:
        n, vocab = z.shape
        for i in range(n):
            row = z[i]
            bits = zbits[i]
            top, nan, pinf = scan(bits)
            x = ids[i]
            problem = 0
            if nan:
                problem = HAS_NAN
            elif pinf:
                problem = HAS_POS_INF
            elif value(top) == f32(-np.inf):
                problem = ALL_MASKED
            elif x < 0 or x >= vocab:
                problem = TOKEN_OUT_OF_RANGE
            if problem:
                out[i, 0] = problem
                for k in range(1, 9):
                    out[i, k] = np.nan
                continue
            second, c, gt = ranks(bits, top, key(bits[x]))
            m = value(top)
            zx = load(row[x])
            r, sd, q = exp_pass(row, m, buf)
            mean = sd / (c + r)
            v = spread_pass(row, m, f32(mean), buf)
            out[i, 0] = 0
            out[i, 1] = c
            out[i, 2] = r
            out[i, 3] = sd
            out[i, 4] = q
            out[i, 5] = v
            if c >= 2:
                out[i, 6] = 0.0
            elif second == lowest:
                out[i, 6] = -np.inf
            else:
                out[i, 6] = np.float64(value(second)) - np.float64(m)
            out[i, 7] = np.float64(zx) - np.float64(m)
            out[i, 8] = gt

    _PARTS[kind] = {"scan": scan, "ranks": ranks, "exp_pass": exp_pass, "spread_pass": spread_pass}
    kernel_fn: Callable[..., None] = kernel
    return kernel_fn
