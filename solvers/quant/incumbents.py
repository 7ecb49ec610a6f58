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


def objective(H: np.ndarray, c: np.ndarray, z: np.ndarray) -> float:
    """``(z − c)ᵀ H (z − c)``."""
    d = z - c
    return float(d @ H @ d)


def rtn(c: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Round to nearest, clipped to the box."""
    return np.clip(np.rint(c), lo, hi).astype(np.int64)


def babai(R: np.ndarray, c: np.ndarray, lo: int, hi: int, zref: np.ndarray) -> np.ndarray:
    """Box-clipped nearest plane for ``‖R(z − c)‖²``; rows with ``R_kk = 0`` take ``zref``."""
    n = R.shape[0]
    z = np.zeros(n, dtype=np.int64)
    for k in range(n - 1, -1, -1):
        if R[k, k] == 0.0:
            z[k] = zref[k]
            continue
        s = R[k, k + 1:] @ (z[k + 1:] - c[k + 1:])
        ctr = c[k] - s / R[k, k]
        z[k] = int(np.clip(np.rint(ctr), lo, hi))
    return z


def sequential_rounding(
    H: np.ndarray, c: np.ndarray, lo: int, hi: int, order: np.ndarray | None = None
) -> np.ndarray:
    """GPTQ-like rounding: fix ``order[0]``, update the rest's continuous optimum, repeat.

    The continuous optimum of the remaining variables ``U`` given the fixed ``F`` solves
    ``H_UU x_U = H_UU c_U − H_UF (z_F − c_F)``; least squares keeps it exact for singular ``H``.
    """
    n = H.shape[0]
    order = np.arange(n) if order is None else np.asarray(order)
    z = np.zeros(n, dtype=np.int64)
    x = c.astype(np.float64).copy()
    fixed = np.zeros(n, dtype=bool)
    for i in order:
        z[i] = int(np.clip(np.rint(x[i]), lo, hi))
        fixed[i] = True
        free = ~fixed
        if not free.any():
            break
        d = np.where(fixed, z - c, 0.0)
        rhs = -H[np.ix_(free, fixed)] @ d[fixed]
        delta = np.linalg.lstsq(H[np.ix_(free, free)], rhs, rcond=None)[0]
        x[free] = c[free] + delta
    return z


def one_opt(
    H: np.ndarray, c: np.ndarray, z: np.ndarray, lo: int, hi: int, max_sweeps: int = 50
) -> np.ndarray:
    """Integer coordinate descent from ``z``: best single-coordinate moves until none helps."""
    z = np.asarray(z, dtype=np.int64).copy()
    diag = np.diag(H)
    g = H @ (z - c)  # gradient / 2
    for _ in range(max_sweeps):
        improved = False
        for i in range(len(z)):
            if diag[i] <= 0.0:
                continue
            # f(z + t e_i) - f(z) = 2 t g_i + t² H_ii, minimised at t = -g_i / H_ii
            t = int(np.clip(np.rint(z[i] - g[i] / diag[i]), lo, hi)) - z[i]
            if t != 0 and 2.0 * t * g[i] + t * t * diag[i] < -1e-15 * abs(diag[i]):
                z[i] += t
                g += t * H[:, i]
                improved = True
        if not improved:
            break
    return z
