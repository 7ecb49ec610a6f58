"""Compiled kernels of the scale search (:mod:`solvers.scales`).

Both evaluate ``SSE(s) = Σ_i c_i (s·clip(⌊v_i/s + ½⌋, zmin, zmax) − v_i)²`` for distinct sorted
values ``v`` with multiplicities ``c``:

* :func:`sse_direct`: one pass over the values, ``O(m)``;
* :func:`sse_prefix`: from prefix sums of ``c``, ``c·v`` and ``c·v²``, one binary search per grid
  level whose rounding cell meets ``[v_0, v_{m−1}]``, ``O(levels·log m)``.

``⌊x + ½⌋`` replaces numpy's round-half-even ``rint``: they differ only at exact ties, where both
neighbouring levels give the same error ``(s/2)²``, so the sums agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sse_direct(v, c, s, zmin, zmax):
    inv = 1.0 / s
    acc = 0.0
    for i in range(v.shape[0]):
        q = min(max(np.floor(v[i] * inv + 0.5), zmin), zmax)
        d = s * q - v[i]
        acc += c[i] * (d * d)
    return acc


@njit(cache=True)
def sse_prefix(v, p0, p1, p2, s, zmin, zmax):
    """``p0, p1, p2``: prefix sums (length m+1) of ``c``, ``c·v``, ``c·v²`` over sorted ``v``."""
    m = v.shape[0]
    klo = max(zmin, np.floor(v[0] / s + 0.5))
    khi = min(zmax, np.floor(v[m - 1] / s + 0.5))
    acc = 0.0
    start = 0
    k = klo
    while k <= khi:
        if k >= khi:
            stop = m
        else:
            # values with ⌊v/s + ½⌋ <= k, i.e. v < (k + ½)·s
            stop = np.searchsorted(v, (k + 0.5) * s, side="left")
        if stop > start:
            q = k * s
            n0 = p0[stop] - p0[start]
            s1 = p1[stop] - p1[start]
            s2 = p2[stop] - p2[start]
            acc += s2 - 2.0 * q * s1 + q * q * n0
            start = stop
        k += 1.0
    return max(acc, 0.0)


@njit(cache=True)
def sse_many(v, c, p0, p1, p2, scales, zmin, zmax, use_prefix):
    out = np.empty(scales.shape[0])
    for j in range(scales.shape[0]):
        if use_prefix:
            out[j] = sse_prefix(v, p0, p1, p2, scales[j], zmin, zmax)
        else:
            out[j] = sse_direct(v, c, scales[j], zmin, zmax)
    return out
