"""Exact least-squares refit of the kept weights for a fixed sparsity mask.

For a kept set ``K`` (pruned weights exactly 0) the best kept weights solve the normal equations
of ``min_w (w − w0)ᵀ H (w − w0)`` with ``w_i = 0`` off ``K``::

    H_KK w_K = (H w0)_K

A Cholesky factorisation solves them when ``H_KK`` is safely positive definite (smallest pivot
``L_ii² > 1e-12·max(diag H_KK)``); otherwise (rank-deficient or nearly so) the minimum-norm
least-squares solution (``scipy.linalg.lstsq``, SVD based) is used, which is a minimiser too:
every solution of a consistent system has the same error.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

#: Smallest accepted ``L_ii² / max(diag H_KK)`` for the Cholesky path.
PIVOT_RTOL = 1e-12


def refit_weights(H: np.ndarray, w0: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The error-minimising ``w`` with support in ``keep`` (one channel).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> refit_weights(H, np.array([1.0, 0.5]), np.array([True, False])).round(12).tolist()
    [1.25, 0.0]
    """
    keep = np.asarray(keep, dtype=bool)
    w0 = np.asarray(w0, dtype=np.float64)
    if keep.all():
        return w0.copy()  # nothing pruned: w0 itself is optimal (error 0)
    w = np.zeros_like(w0)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return w
    Hkk = H[np.ix_(idx, idx)]
    rhs = H[idx] @ w0
    top = float(np.max(np.diag(Hkk))) if idx.size else 0.0
    if top <= 0.0:
        return w  # every kept input is dead: any value is optimal, 0 is the smallest
    try:
        L = linalg.cholesky(Hkk, lower=True, check_finite=False)
        if float(np.min(np.diag(L))) ** 2 <= PIVOT_RTOL * top:
            raise np.linalg.LinAlgError("nearly singular")
        w[idx] = linalg.cho_solve((L, True), rhs, check_finite=False)
    except (np.linalg.LinAlgError, linalg.LinAlgError):
        w[idx] = linalg.lstsq(Hkk, rhs, check_finite=False)[0]
    return w


def refit_rows(H: np.ndarray, W0: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """:func:`refit_weights` for every row of ``W0`` (C, n) with its own mask (C, n)."""
    W = np.zeros_like(W0)
    for c in range(W0.shape[0]):
        W[c] = refit_weights(H, W0[c], masks[c])
    return W
