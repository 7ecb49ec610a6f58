"""Choosing the quantization scale: min-max or MSE-optimal on the weights.

Both act on weights alone (no Hessian), per tensor (one scale, the paper's default) or per
channel (one scale per row of a (C, n) weight matrix).

* **min-max**: ``s = max|w| / max(zmax, 1)`` so the largest magnitude lands on the last positive
  level (for 1 bit, where ``zmax = 0``, ``s = max|w|``).
* **MSE**: ``s* = argmin_s Σ_i (s·clip(rint(w_i/s), zmin, zmax) − w_i)²``, searched on
  ``candidates`` equally spaced ratios ``r = s / s_minmax`` in ``(0, max_ratio]`` and, with
  ``refine=True``, polished by a bounded Brent minimisation (compiled, the method of scipy's
  ``minimize_scalar(method="bounded")``) between the neighbours of the best
  candidate (the objective is piecewise quadratic in ``s`` with many local minima: the fine grid
  picks the basin, the polish its minimum; the polished value is kept only when no worse).
  The default range reaches ``2·s_minmax``: for small tensors the optimum can lie above the
  min-max scale (MobileNetV2 ``features.0.0`` at 8 bits: ``1.029·s_minmax``, 37.29 dB against
  37.15 dB for the best scale ≤ ``s_minmax``). ``candidates=100, refine=False, max_ratio=1`` is
  the paper's 100-candidate search.

* **output** (per channel, needs ``H``): ``s* = argmin_s (s·q(s) − w0)ᵀ H (s·q(s) − w0)`` with
  ``q(s) = clip(rint(w0/s), zmin, zmax)`` — the scale under which round-to-nearest serves the
  layer's *output* best (:func:`output_scale`), searched on ``candidates`` ratios of the min-max
  scale in ``(0, max_ratio]``, then on a finer grid between the neighbours of the best one, with
  the weight-MSE scale as one more candidate (so it is never worse than MSE for round-to-nearest
  on the output error). It needs one ``n × n`` product per candidate: chosen per channel, for the
  channels one solves.

Every candidate is evaluated exactly on the distinct values with their multiplicities, by a
compiled pass over the values or from sorted prefix sums (one binary search per grid level),
whichever is cheaper for the bit width (:mod:`solvers.scale_kernels`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from . import scale_kernels
from .problem import ProblemError, grid_limits

#: Default number of candidate ratios (400 per unit ratio over the default range).
CANDIDATES = 800
#: Default upper end of the searched ratio ``s / s_minmax``.
MAX_RATIO = 2.0


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
    candidates: int = CANDIDATES,
    refine: bool = True,
    max_ratio: float = MAX_RATIO,
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
    bits = int(bits)
    zmin, zmax = grid_limits(bits)
    if candidates < 1:
        raise ProblemError(f"candidates must be >= 1, got {candidates}")
    if not (math.isfinite(max_ratio) and max_ratio > 0):
        raise ProblemError(f"max_ratio must be finite and > 0, got {max_ratio}")
    if per_channel:
        W = np.ascontiguousarray(np.atleast_2d(w))
        out = scale_kernels.search_rows(W, float(zmin), float(zmax), int(candidates),
                                        float(max_ratio), bool(refine), float(zmax - zmin + 1))
        amax = np.max(np.abs(W), axis=1) if W.shape[1] else np.zeros(W.shape[0])
        for r in np.flatnonzero((amax > 0) & ~((amax > 1e-250) & (amax < 1e250))):
            out[r] = _search(W[r], zmin, zmax, candidates, refine, max_ratio)
        return out
    return _search(w.ravel(), zmin, zmax, candidates, refine, max_ratio)


def rtn_output_errors(H: np.ndarray, w0: np.ndarray, scales: np.ndarray, bits: int
                      ) -> np.ndarray:
    """``(s·q − w0)ᵀ H (s·q − w0)`` for round-to-nearest ``q`` at each scale of ``scales``."""
    zmin, zmax = grid_limits(bits)
    s = np.asarray(scales, dtype=np.float64)[:, None]
    D = s * np.clip(np.rint(w0[None, :] / s), zmin, zmax) - w0[None, :]
    return np.maximum(np.einsum("ij,ij->i", D @ H, D), 0.0)


def output_scale(
    H: np.ndarray,
    w0: np.ndarray,
    bits: int,
    *,
    candidates: int = 128,
    refine: int = 32,
    max_ratio: float = MAX_RATIO,
) -> float:
    """The per-channel scale whose round-to-nearest has the least output error
    ``(s·q − w0)ᵀ H (s·q − w0)`` (see the module docstring): the best of ``candidates`` ratios
    ``r·s_minmax``, ``r ∈ (0, max_ratio]``, of ``refine`` ratios between the best one's
    neighbours, and of the weight-MSE scale. An all-zero ``w0`` gets 1.0.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 8)); H = X.T @ X; w0 = rng.standard_normal(8)
    >>> s = output_scale(H, w0, 3)
    >>> errs = rtn_output_errors(H, w0, np.array([s, mse_scale(w0, 3)]), 3)
    >>> bool(errs[0] <= errs[1])
    True
    """
    w0 = _finite(w0).ravel()
    H = np.asarray(H, dtype=np.float64)
    if H.shape != (w0.size, w0.size):
        raise ProblemError(f"H must have shape ({w0.size}, {w0.size}), got {H.shape}")
    if candidates < 1 or refine < 0:
        raise ProblemError(f"candidates must be >= 1 and refine >= 0, got {candidates}, {refine}")
    if not np.any(w0):
        return 1.0
    base = float(minmax_scale(w0, bits))
    step = max_ratio / candidates
    ratios = step * np.arange(1, candidates + 1)
    errs = rtn_output_errors(H, w0, base * ratios, bits)
    i = int(np.argmin(errs))
    lo, hi = ratios[max(i - 1, 0)] if i else 0.5 * step, ratios[min(i + 1, candidates - 1)]
    fine = np.linspace(lo, hi, refine + 2)[1:-1] if refine else np.empty(0)
    pool = np.concatenate([base * ratios, base * fine, [float(mse_scale(w0, bits))]])
    pool = pool[pool > 0]
    errs = rtn_output_errors(H, w0, pool, bits)
    return float(pool[int(np.argmin(errs))])


def scale_tables(W: np.ndarray, bits: Iterable[int] | None = None) -> dict[str, np.ndarray]:
    """Per-tensor and per-channel min-max and MSE scales of a (C, n) weight matrix.

    Returns the problem-file tables ``scales_mse_tensor``, ``scales_minmax_tensor`` (16,) and
    ``scales_mse_channel``, ``scales_minmax_channel`` (16, C): row ``b − 1`` holds bit width
    ``b``. Only the rows of ``bits`` (default: all of 1..16) are computed; the others are NaN,
    which readers treat as "not computed" (the per-channel MSE search over all 16 widths is the
    expensive part of an export).
    """
    W = np.atleast_2d(_finite(W))
    wanted = sorted({int(b) for b in (range(1, 17) if bits is None else bits)})
    for b in wanted:
        grid_limits(b)
    C = W.shape[0]
    out = {
        "scales_mse_tensor": np.full(16, np.nan),
        "scales_minmax_tensor": np.full(16, np.nan),
        "scales_mse_channel": np.full((16, C), np.nan),
        "scales_minmax_channel": np.full((16, C), np.nan),
    }
    for b in wanted:
        out["scales_mse_tensor"][b - 1] = mse_scale(W, b)
        out["scales_minmax_tensor"][b - 1] = minmax_scale(W, b)
        out["scales_mse_channel"][b - 1] = mse_scale(W, b, per_channel=True)
        out["scales_minmax_channel"][b - 1] = minmax_scale(W, b, per_channel=True)
    return out


class _Evaluator:
    """Distinct sorted values, multiplicities and prefix sums; the cheaper kernel's flag."""

    def __init__(self, w: np.ndarray, zmin: int, zmax: int):
        v, c = np.unique(w, return_counts=True)
        self.v = np.ascontiguousarray(v)
        self.c = c.astype(np.float64)
        self.p0 = np.concatenate([[0.0], np.cumsum(self.c)])
        self.p1 = np.concatenate([[0.0], np.cumsum(self.c * self.v)])
        self.p2 = np.concatenate([[0.0], np.cumsum(self.c * self.v * self.v)])
        self.zmin, self.zmax = float(zmin), float(zmax)
        levels = zmax - zmin + 1
        self.use_prefix = levels * max(1.0, math.log2(self.v.size)) < self.v.size

    def one(self, s: float) -> float:
        return scale_kernels.sse(self.v, self.c, self.p0, self.p1, self.p2, s, self.zmin,
                                 self.zmax, self.use_prefix)


def _search(w: np.ndarray, zmin: int, zmax: int, candidates: int, refine: bool,
            max_ratio: float) -> float:
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    if amax == 0.0:
        return 1.0
    if not 1e-250 < amax < 1e250:
        # The search is scale-equivariant: run it on w / max|w| where tiny candidate scales
        # would underflow (subnormal weights) or huge ones overflow.
        s = amax * _search(w / amax, zmin, zmax, candidates, refine, max_ratio)
        return s if 0.0 < s < math.inf else amax  # amax: every step underflows (subnormals)
    ev = _Evaluator(w, zmin, zmax)
    return float(scale_kernels.search(ev.v, ev.c, ev.p0, ev.p1, ev.p2, ev.zmin, ev.zmax,
                                      int(candidates), float(max_ratio), bool(refine),
                                      ev.use_prefix))


def _finite(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ProblemError("weights contain NaN or infinite entries")
    return w
