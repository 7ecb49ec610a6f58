"""Starting solutions (upper bounds) for the exact search, all on the box.

* :func:`rtn`: round to nearest, ``clip(rint(c))``.
* :func:`babai`: nearest plane with box clipping in the search's order (the first leaf of the
  depth-first search; identical to GPTQ-style sequential rounding with exact error feedback in
  that order).
* :func:`sequential_rounding`: GPTQ-like error-feedback rounding in a given variable order
  (input order by default): round one variable, move the rest to their conditional optimum.
* :func:`one_opt`: coordinate descent on integers: repeatedly replace ``z_i`` by its best box
  value with the others fixed until no single change improves (``O(n)`` per move).

All work in the units of the target ``c = w0 / scale``: ``f(z) = (z − c)ᵀ H (z − c)``.
"""

from __future__ import annotations

import numpy as np

from .factor import ordered_cholesky
from .kernels import babai_rows, one_opt_moves
from .setup_kernels import quadratic_form


def objective(H: np.ndarray, c: np.ndarray, z: np.ndarray) -> float:
    """``(z − c)ᵀ H (z − c)`` (compiled: called a dozen times per solve)."""
    return quadratic_form(H, c, np.asarray(z, dtype=np.int64))


def rtn(c: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Round to nearest, clipped to the box."""
    return np.minimum(np.maximum(np.rint(c), lo), hi).astype(np.int64)


def babai(R: np.ndarray, c: np.ndarray, lo: int, hi: int, zref: np.ndarray) -> np.ndarray:
    """Box-clipped nearest plane for ``‖R(z − c)‖²``; rows with ``R_kk = 0`` take ``zref``."""
    return babai_rows(R, np.ascontiguousarray(c, dtype=np.float64), int(lo), int(hi),
                      np.ascontiguousarray(zref, dtype=np.int64))


def sequential_rounding(
    H: np.ndarray, c: np.ndarray, lo: int, hi: int, order: np.ndarray | None = None
) -> np.ndarray:
    """GPTQ-like rounding: fix ``order[0]``, update the rest's continuous optimum, repeat.

    The continuous optimum of the remaining variables ``U`` given the fixed ``F`` is
    ``x_U = c_U − H_UU⁻¹ H_UF (z_F − c_F)``, which is nearest-plane (Babai) rounding with the
    Cholesky factor of ``H`` taken in this order; a variable whose conditional variance is zero
    (``H`` singular) keeps its round-to-nearest code.
    """
    n = H.shape[0]
    order = np.arange(n) if order is None else np.asarray(order, dtype=np.int64)
    # the first variable rounded sits at the top level of the nearest-plane recursion
    levels = order[::-1].copy()
    R, _ = ordered_cholesky(H, levels)
    zref = rtn(c, lo, hi)[levels]
    z = np.empty(n, dtype=np.int64)
    z[levels] = babai(R, c[levels], lo, hi, zref)
    return z


def one_opt(
    H: np.ndarray, c: np.ndarray, z: np.ndarray, lo: int, hi: int, max_sweeps: int = 50
) -> np.ndarray:
    """Integer coordinate descent from ``z``: best single-coordinate moves until none helps."""
    # f(z + t e_i) − f(z) = 2t·g_i + t²·H_ii with g = H(z − c): best t = −g_i / H_ii, rounded
    z = np.array(z, dtype=np.int64)
    return one_opt_moves(np.ascontiguousarray(H), np.ascontiguousarray(c, dtype=np.float64), z,
                         int(lo), int(hi), int(max_sweeps))
