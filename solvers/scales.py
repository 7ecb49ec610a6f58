"""Choosing the quantization scale: min-max or MSE-optimal on the weights.

Both act on weights alone (no Hessian), per tensor (one scale, the paper's default) or per
channel (one scale per row of a (C, n) weight matrix).

* **min-max**: ``s = max|w| / max(zmax, 1)`` so the largest magnitude lands on the last positive
  level (for 1 bit, where ``zmax = 0``, ``s = max|w|``).
* **MSE**: ``s* = argmin_s Σ_i (s·clip(rint(w_i/s), zmin, zmax) − w_i)²``, searched on
  ``candidates`` equally spaced ratios ``s / s_minmax`` in ``(0, max_ratio]`` and, with
  ``refine=True``, polished by a bounded scalar minimisation between the neighbours of the best
  candidate (the objective is piecewise quadratic in ``s``, so a fine grid plus local polish is
  what finds its minimum; the refined value is only accepted when it is no worse).
  ``candidates=100, refine=False, max_ratio=1`` is the paper's 100-candidate search.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from .problem import ProblemError, grid_limits


def quantization_mse(w: np.ndarray, scale: float, bits: int) -> float:
    """Sum of squared errors of round-to-nearest at ``scale`` (weights-only MSE × size)."""
    zmin, zmax = grid_limits(bits)
    w = np.asarray(w, dtype=np.float64)
    q = scale * np.clip(np.rint(w / scale), zmin, zmax)
    return float(np.sum((q - w) ** 2))


def minmax_scale(w: np.ndarray, bits: int, *, per_channel: bool = False) -> float | np.ndarray:
    """Min-max scale; per row of ``w`` with ``per_channel=True``."""
    w = _finite(w)
    _, zmax = grid_limits(bits)
    denom = max(zmax, 1)
    if per_channel:
        amax = np.max(np.abs(np.atleast_2d(w)), axis=1)
        return np.where(amax > 0, amax / denom, 1.0)
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    return amax / denom if amax > 0 else 1.0


def mse_scale(
    w: np.ndarray,
    bits: int,
    *,
    per_channel: bool = False,
    candidates: int = 400,
    refine: bool = True,
    max_ratio: float = 1.0,
) -> float | np.ndarray:
    """MSE-optimal symmetric scale on the weights (see the module docstring).

    Returns a float, or an array of one scale per row with ``per_channel=True``. An all-zero
    tensor (or row) gets scale 1.0: every grid then represents it exactly.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.random.default_rng(0).standard_normal(1000)
    >>> s = mse_scale(w, 4)
    >>> quantization_mse(w, s, 4) <= quantization_mse(w, minmax_scale(w, 4), 4)
    True
    """
    w = _finite(w)
    if candidates < 1:
        raise ProblemError(f"candidates must be >= 1, got {candidates}")
    if per_channel:
        rows = np.atleast_2d(w)
        return np.array(
            [
                mse_scale(r, bits, candidates=candidates, refine=refine, max_ratio=max_ratio)
                for r in rows
            ]
        )
    base = minmax_scale(w, bits)
    if not w.size or float(np.max(np.abs(w))) == 0.0:
        return 1.0
    ratios = np.arange(1, candidates + 1) * (max_ratio / candidates)
    errs = np.array([quantization_mse(w, r * base, bits) for r in ratios])
    i = int(np.argmin(errs))
    best_s, best_e = ratios[i] * base, errs[i]
    if refine:
        lo = ratios[max(i - 1, 0)] * base if i > 0 else 0.5 * ratios[0] * base
        hi = ratios[min(i + 1, len(ratios) - 1)] * base
        if hi > lo:
            res = minimize_scalar(
                lambda s: quantization_mse(w, s, bits),
                bounds=(lo, hi),
                method="bounded",
                options={"xatol": 1e-10 * base},
            )
            if res.success and res.fun <= best_e:
                best_s, best_e = float(res.x), float(res.fun)
    return float(best_s)


def _finite(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ProblemError("weights contain NaN or infinite entries")
    return w
