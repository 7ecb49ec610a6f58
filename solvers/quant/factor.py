"""Factorisation of ``H`` for the search: ``H[π, π] = RᵀR`` with ``R`` upper triangular.

``R`` is computed row by row in a given variable order ``π`` (row ``k`` of ``R`` is level ``k``
of the search tree; the last row is the top). Rank deficiency is handled *exactly*, never by
damping: when the Schur pivot of a row is below a rounding-level threshold the row of ``R`` is set
to zero. The dropped part is a rounding-level matrix, and the certification margin
(:mod:`solvers.quant.certify`) accounts for the whole residual ``E = H[π, π] − RᵀR`` measured
after the fact, so the search's lower bound stays valid. A zero row is a level whose value does
not change the partial distance: the search visits all its box values (nothing is lost), and the
rows below it still see its value through their coupling coefficients ``R[i, k]``.

Inputs whose row of ``H`` is exactly zero ("dead" inputs, e.g. channels that never fire) cannot
change the error at all; :func:`live_inputs` finds them so the solver can fix them to their
round-to-nearest code and search the rest.
"""

from __future__ import annotations

import numpy as np

from .kernels import cholesky_rows

_U = np.finfo(np.float64).eps / 2


def live_inputs(H: np.ndarray) -> np.ndarray:
    """Boolean mask of the inputs whose row of ``H`` is not identically zero."""
    return np.any(H != 0.0, axis=1)


def ordered_cholesky(H: np.ndarray, order: np.ndarray | None, *, rtol: float | None = None):
    """Upper-triangular ``R`` with ``H[order][:, order] ≈ RᵀR`` and zero rows for null pivots.

    Parameters
    ----------
    H : (n, n) symmetric PSD.
    order : (n,) permutation; ``order[k]`` is the variable at level (row) ``k``; ``None`` when
        ``H`` is already in the search order.
    rtol : pivot threshold relative to the variable's own diagonal ``H_kk``; a Schur pivot
        ``<= rtol·H_kk`` is a null direction. Default ``8(n+1)·u`` (the size of the rounding
        error of the pivot itself).

    Returns
    -------
    R : (n, n) upper triangular, ``R[k, k] >= 0``.
    rank : number of nonzero rows.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[1.0, 1.0], [1.0, 1.0]])          # rank 1
    >>> R, r = ordered_cholesky(H, np.array([0, 1]))
    >>> r, R.tolist()
    (1, [[1.0, 1.0], [0.0, 0.0]])
    """
    n = H.shape[0]
    Hp = np.ascontiguousarray(H if order is None else H[np.ix_(order, order)])
    if rtol is None:
        rtol = 8.0 * (n + 1) * _U
    return cholesky_rows(Hp, float(rtol))
