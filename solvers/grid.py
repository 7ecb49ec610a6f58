"""The signed uniform quantization grid and round-to-nearest onto it.

``w = scale·z`` with ``z ∈ {zmin, …, zmax}``, ``zmin = -2^(bits-1)``, ``zmax = 2^(bits-1) - 1``
(the grid of :class:`solvers.problem.QuantProblem`).
"""

from __future__ import annotations

import numpy as np

from .problem import grid_limits


def round_to_grid(w: np.ndarray, scale: float | np.ndarray, bits: int) -> np.ndarray:
    """Integer codes ``clip(rint(w / scale), zmin, zmax)`` (ties to even, as numpy's rint).

    ``scale`` may be a scalar or broadcast against ``w`` (e.g. shape (C, 1) per channel).
    """
    zmin, zmax = grid_limits(bits)
    z = np.rint(np.asarray(w, dtype=np.float64) / scale)
    return np.clip(z, zmin, zmax).astype(np.int64)


def dequantize(codes: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """``scale·codes`` as float64."""
    return np.asarray(codes, dtype=np.float64) * scale
