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
def sse(v, c, p0, p1, p2, s, zmin, zmax, use_prefix):
    if use_prefix:
        return sse_prefix(v, p0, p1, p2, s, zmin, zmax)
    return sse_direct(v, c, s, zmin, zmax)


@njit(cache=True)
def brent_bounded(vals, c, p0, p1, p2, lo, hi, xatol, zmin, zmax, use_prefix, maxfun):
    """Bounded Brent minimisation of the SSE on [lo, hi] (the method of scipy's
    ``minimize_scalar(method="bounded")``); returns (x, f, converged)."""
    sqrt_eps = np.sqrt(2.2e-16)
    golden_mean = 0.5 * (3.0 - np.sqrt(5.0))
    a, b = lo, hi
    v = a + golden_mean * (b - a)  # fulc
    wpt = v  # nfc
    x = v  # xf
    fx = sse(vals, c, p0, p1, p2, x, zmin, zmax, use_prefix)
    fv = fx
    fw = fx
    num = 1
    rat = 0.0
    e = 0.0
    xm = 0.5 * (a + b)
    tol1 = sqrt_eps * abs(x) + xatol / 3.0
    tol2 = 2.0 * tol1
    converged = True
    while abs(x - xm) > (tol2 - 0.5 * (b - a)):
        golden = True
        if abs(e) > tol1:
            golden = False
            r = (x - wpt) * (fx - fv)
            q = (x - v) * (fx - fw)
            p = (x - v) * q - (x - wpt) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r = e
            e = rat
            if abs(p) < abs(0.5 * q * r) and p > q * (a - x) and p < q * (b - x):
                rat = (p + 0.0) / q
                u = x + rat
                if (u - a) < tol2 or (b - u) < tol2:
                    d = xm - x
                    si = (1.0 if d > 0 else (-1.0 if d < 0 else 0.0)) + (1.0 if d == 0 else 0.0)
                    rat = tol1 * si
            else:
                golden = True
        if golden:
            if x >= xm:
                e = a - x
            else:
                e = b - x
            rat = golden_mean * e
        si = (1.0 if rat > 0 else (-1.0 if rat < 0 else 0.0)) + (1.0 if rat == 0 else 0.0)
        u = x + si * max(abs(rat), tol1)
        fu = sse(vals, c, p0, p1, p2, u, zmin, zmax, use_prefix)
        num += 1
        if fu <= fx:
            if u >= x:
                a = x
            else:
                b = x
            v, fv = wpt, fw
            wpt, fw = x, fx
            x, fx = u, fu
        else:
            if u < x:
                a = u
            else:
                b = u
            if fu <= fw or wpt == x:
                v, fv = wpt, fw
                wpt, fw = u, fu
            elif fu <= fv or v == x or v == wpt:
                v, fv = u, fu
        xm = 0.5 * (a + b)
        tol1 = sqrt_eps * abs(x) + xatol / 3.0
        tol2 = 2.0 * tol1
        if num >= maxfun:
            converged = False
            break
    if np.isnan(x) or np.isnan(fx):
        converged = False
    return x, fx, converged



@njit(cache=True)
def search(v, c, p0, p1, p2, zmin, zmax, candidates, max_ratio, refine, use_prefix):
    """The MSE scale search of :func:`solvers.scales.mse_scale` on prepared values."""
    amax = max(abs(v[0]), abs(v[v.shape[0] - 1]))
    base = amax / max(zmax, 1.0)
    step = max_ratio / candidates
    best_i = 0
    best_e = np.inf
    for i in range(candidates):
        e = sse(v, c, p0, p1, p2, (i + 1) * step * base, zmin, zmax, use_prefix)
        if e < best_e:
            best_e = e
            best_i = i
    best_s = (best_i + 1) * step * base
    if refine:
        lo = best_i * step * base if best_i > 0 else 0.5 * step * base
        hi = (min(best_i + 1, candidates - 1) + 1) * step * base
        if hi > lo:
            x, fx, ok = brent_bounded(v, c, p0, p1, p2, lo, hi, 1e-10 * base, zmin, zmax,
                                      use_prefix, 500)
            if ok and fx <= best_e:
                best_s = x
    return best_s


@njit(cache=True)
def prepare(values):
    """Sorted values with unit multiplicities and their prefix sums."""
    v = np.sort(values)
    m = v.shape[0]
    c = np.ones(m)
    p0 = np.zeros(m + 1)
    p1 = np.zeros(m + 1)
    p2 = np.zeros(m + 1)
    for i in range(m):
        p0[i + 1] = p0[i] + 1.0
        p1[i + 1] = p1[i] + v[i]
        p2[i + 1] = p2[i] + v[i] * v[i]
    return v, c, p0, p1, p2


@njit(cache=True)
def search_rows(W, zmin, zmax, candidates, max_ratio, refine, levels):
    """:func:`search` on every row of ``W`` (rows of zeros get 1.0)."""
    out = np.empty(W.shape[0])
    for r in range(W.shape[0]):
        v, c, p0, p1, p2 = prepare(W[r])
        if max(abs(v[0]), abs(v[v.shape[0] - 1])) == 0.0:
            out[r] = 1.0
            continue
        use_prefix = levels * max(1.0, np.log2(v.shape[0])) < v.shape[0]
        out[r] = search(v, c, p0, p1, p2, zmin, zmax, candidates, max_ratio, refine,
                        use_prefix)
    return out
