"""Fast per-tensor and per-channel scale tables for the exporter (bits 1..16).

The exporter stores, for every layer, the min-max and MSE-optimal symmetric scales of the
*whole* (float16-rounded) weight tensor and of every whole row, for bits 1..16 — the tables
``scales_{mse,minmax}_{tensor,channel}`` of the problem file. The definitions are those of
:mod:`solvers.scales`: min-max from :func:`solvers.scales.minmax_scale`, and for MSE the same
``candidates``-point grid of ratios ``s / s_minmax`` followed by the same bounded Brent
refinement (Brent 1973, *Algorithms for Minimization without Derivatives*, ch. 5; the variant
``scipy.optimize.minimize_scalar(method="bounded")`` implements) between the neighbours of the
best candidate, accepted only when no worse.

:func:`solvers.scales.mse_scale` evaluates each candidate with a few numpy passes; a whole
MobileNetV2 at 16 bit widths × 17 000 rows would take most of an hour that way. Here the same
search runs as one compiled loop per row (numba), so the tables for a whole network take
seconds. ``tests/layers/test_export_scales.py`` checks the results against
:func:`solvers.scales.mse_scale` itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from solvers.problem import ProblemError
from solvers.scales import minmax_scale

BITS = tuple(range(1, 17))
#: The candidate grid and refinement of :func:`solvers.scales.mse_scale`'s defaults.
CANDIDATES = 400
MAX_RATIO = 1.0


@njit(cache=True, fastmath=True)
def _sse(w, c, s, zmin, zmax):
    """``Σ c_i (s·clip(round(w_i/s), zmin, zmax) − w_i)²`` in one vectorisable pass.

    ``w`` holds distinct values and ``c`` their multiplicities (a tensor of float16-rounded
    weights has far fewer distinct values than entries). ``floor(w/s + 0.5)`` replaces numpy's
    round-half-even ``rint``: the two differ only at exact ties, where both neighbouring levels
    give the same error ``(s/2)²``, so the sum is the same.
    """
    inv = 1.0 / s
    acc = 0.0
    for i in range(w.shape[0]):
        q = min(max(np.floor(w[i] * inv + 0.5), zmin), zmax)
        d = s * q - w[i]
        acc += c[i] * (d * d)
    return acc


@njit(cache=True)
def _brent_bounded(w, c, lo, hi, xatol, zmin, zmax, maxfun):
    """Bounded Brent minimisation of ``_sse(w, ·)`` on [lo, hi]; returns (x, f, converged)."""
    sqrt_eps = np.sqrt(2.2e-16)
    golden_mean = 0.5 * (3.0 - np.sqrt(5.0))
    a, b = lo, hi
    v = a + golden_mean * (b - a)  # fulc
    wpt = v  # nfc
    x = v  # xf
    fx = _sse(w, c, x, zmin, zmax)
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
        fu = _sse(w, c, u, zmin, zmax)
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
def _mse_scale_row(w, c, zmin, zmax, candidates, max_ratio):
    amax = 0.0
    for i in range(w.shape[0]):
        if abs(w[i]) > amax:
            amax = abs(w[i])
    if amax == 0.0:
        return 1.0
    base = amax / max(zmax, 1)
    step = max_ratio / candidates
    best_i = 0
    best_e = np.inf
    for i in range(candidates):
        e = _sse(w, c, (i + 1) * step * base, zmin, zmax)
        if e < best_e:
            best_e = e
            best_i = i
    best_s = (best_i + 1) * step * base
    if best_i > 0:
        lo = best_i * step * base
    else:
        lo = 0.5 * step * base
    hi = (min(best_i + 1, candidates - 1) + 1) * step * base
    if hi > lo:
        x, fx, ok = _brent_bounded(w, c, lo, hi, 1e-10 * base, zmin, zmax, 500)
        if ok and fx <= best_e:
            best_s = x
    return best_s


@njit(cache=True)
def _mse_scale_rows(W, zmin, zmax, candidates, max_ratio):
    out = np.empty(W.shape[0])
    ones = np.ones(W.shape[1])
    for r in range(W.shape[0]):
        out[r] = _mse_scale_row(W[r], ones, zmin, zmax, candidates, max_ratio)
    return out


def mse_scales(W: np.ndarray, bits: int, *, per_channel: bool) -> float | np.ndarray:
    """``solvers.scales.mse_scale(W, bits, per_channel=…)`` with its default settings, compiled."""
    W = np.ascontiguousarray(W, dtype=np.float64)
    if not np.all(np.isfinite(W)):
        raise ProblemError("weights contain NaN or infinite entries")
    zmin, zmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if per_channel:
        return _mse_scale_rows(np.atleast_2d(W), float(zmin), float(zmax), CANDIDATES,
                               MAX_RATIO)
    values, counts = np.unique(W, return_counts=True)
    return float(_mse_scale_row(values, counts.astype(np.float64), float(zmin), float(zmax),
                                CANDIDATES, MAX_RATIO))


def scale_tables(W: np.ndarray) -> dict[str, np.ndarray]:
    """The four tables for a (C, n) weight matrix: rows are bits 1..16.

    Returns ``scales_mse_tensor`` and ``scales_minmax_tensor`` of shape (16,) and
    ``scales_mse_channel`` and ``scales_minmax_channel`` of shape (16, C).
    """
    W = np.asarray(W, dtype=np.float64)
    tables = {
        "scales_mse_tensor": np.array([mse_scales(W, b, per_channel=False) for b in BITS]),
        "scales_minmax_tensor": np.array([minmax_scale(W, b) for b in BITS], dtype=float),
        "scales_mse_channel": np.stack([mse_scales(W, b, per_channel=True) for b in BITS]),
        "scales_minmax_channel": np.stack(
            [np.asarray(minmax_scale(W, b, per_channel=True), dtype=float) for b in BITS]
        ),
    }
    return tables
