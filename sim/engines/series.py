"""Matrix exponential and phi functions of stacks of small matrices, by Taylor series.

The stock-flow engine needs ``expm``, ``phi1`` and ``phi2`` of fifty 16 x 16 matrices
(ten years x five age bands) per run, whose norms are small (a month of hazards): a
Taylor polynomial evaluated by Paterson-Stockmeyer over the whole stack is cheaper
than ``scipy.linalg.expm`` matrix by matrix (20x for 5 x 5 blocks, 3x for 16 x 16).
Callers fall back to scaling and squaring on :class:`OverflowError` (norm above 1).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from sim.model.parameters import Array


def taylor_order(theta: float) -> int | None:
    """Fewest Taylor terms with truncation below 2^-60 at norm ``theta``; None if the
    norm is too large for an unscaled series."""
    if theta > 1.0:
        return None
    for n in range(1, 40):
        if theta ** (n + 1) / math.factorial(n + 1) < 2.0 ** -60:
            return n
    return None


@functools.cache
def identity(n: int) -> Array:
    """A read-only identity (made once: ``np.eye`` on every call cost 10 us)."""
    eye = np.eye(n)
    eye.flags.writeable = False
    return eye


def row_norm(x: Array) -> float:
    """The largest row-sum norm of a stack of matrices (a product with ones: the sum
    over a short last axis is three times slower)."""
    return float((np.abs(x) @ np.ones(x.shape[-1])).max()) if x.size else 0.0


def polynomial(x: Array, coefficients: Sequence[float]) -> Array:
    """``sum_n c[n] x^n`` for a stack of matrices by Paterson-Stockmeyer: the powers
    ``x^0..x^(s-1)`` are combined into blocks by one matrix product with the
    coefficients, then Horner in ``x^s``.  Why: about 2 sqrt(degree) stacked matmuls
    instead of one per term plus three element-wise updates per term (the series was
    the largest cost of compiling a year)."""
    degree = len(coefficients) - 1
    s = max(2, math.isqrt(degree + 1))
    blocks = -(-(degree + 1) // s)
    powers = np.empty((s, *x.shape))
    powers[0] = identity(x.shape[-1])
    powers[1] = x
    for j in range(2, s):
        np.matmul(powers[j - 1], x, out=powers[j])
    x_s = powers[s - 1] @ x
    c = np.zeros((blocks, s))
    c.ravel()[:degree + 1] = coefficients
    combined = (c @ powers.reshape(s, -1)).reshape(blocks, *x.shape)
    result = combined[-1]
    for i in range(blocks - 2, -1, -1):
        result = result @ x_s
        result += combined[i]
    return result


def phi_series(x: Array) -> tuple[Array, Array]:
    """phi1(x), phi2(x): phi2 by its Taylor polynomial, then ``phi1 = I + x phi2``
    (``expm = I + x phi1`` is left to the caller, which folds it into another
    product)."""
    order = taylor_order(row_norm(x))
    if order is None:
        raise OverflowError
    p2 = polynomial(x, [1.0 / math.factorial(n + 2) for n in range(order + 1)])
    p1 = x @ p2
    p1 += identity(x.shape[-1])
    return p1, p2


def expm_series(x: Array) -> Array:
    """expm(x) by its Taylor polynomial (small norms only)."""
    order = taylor_order(row_norm(x))
    if order is None:
        raise OverflowError
    return polynomial(x, [1.0 / math.factorial(n) for n in range(order + 1)])
