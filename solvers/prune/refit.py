"""The exact refit of the kept weights for a fixed mask (unboxed or boxed).

For a kept set ``K`` and pruned set ``R`` (``w_R = 0``) the best kept weights solve::

    unboxed:  min_{w_K} (w − w0)ᵀ H (w − w0)
              ⇔ H_KK (w_K − w0_K) = H_KR w0_R          (least squares on the kept columns)
    boxed:    the same with |w_i| <= B                   (a box-constrained least squares)

With ``H = XᵀX`` the unboxed problem is ``min ‖X_K w_K − X w0‖²``, which is well posed for any
PSD ``H``: when ``H_KK`` is singular the minimum value is still unique, and we take the
minimum-norm solution (pseudo-inverse via SVD), never a damped ``H + λI``. The boxed problem is
solved by bounded-variable least squares (scipy's BVLS, an exact active-set method) on a
factor ``X`` of ``H``, and reports a Frank–Wolfe lower bound alongside.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.optimize import lsq_linear

from ..problem import PruneProblem
from .kernels import box_qp

#: Relative pivot below which a kept column counts as dependent on the others.
PIVOT_RTOL = 1e-11


def refit(problem: PruneProblem, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Exact refit on ``mask`` (bool, True = kept).

    Returns ``(weights, value, lower)``: the refit weights (zeros on the pruned inputs), their
    error ``problem.error(weights)``, and a lower bound on the least error with this mask (equal
    to ``value`` for the unboxed refit; the Frank–Wolfe bound for the boxed one).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers.problem import PruneProblem
    >>> p = PruneProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([1.0, 1.0]), k=1)
    >>> w, v, _ = refit(p, np.array([True, False]))
    >>> w.round(6).tolist(), round(v, 6)
    ([1.5, 0.0], 1.5)
    """
    mask = np.asarray(mask, dtype=bool)
    w = unboxed_refit(problem.H, problem.w0, mask)
    B = problem.box
    if B is None or np.all(np.abs(w) <= B):
        v = problem.error(w)
        return w, v, v
    return boxed_refit(problem.H, problem.w0, mask, B)


def unboxed_refit(H: np.ndarray, w0: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``w_K = w0_K + δ`` with ``H_KK δ = H_KR w0_R`` (Cholesky, or SVD least squares when
    ``H_KK`` is singular); zeros on ``R``."""
    K = np.flatnonzero(mask)
    R = np.flatnonzero(~mask)
    w = np.zeros_like(w0)
    if K.size == 0:
        return w
    if R.size == 0:
        w[:] = w0
        return w
    Hkk = H[np.ix_(K, K)]
    rhs = H[np.ix_(K, R)] @ w0[R]
    delta = None
    try:
        c, low = sla.cho_factor(Hkk, lower=True, check_finite=False)
        piv = np.diag(c) ** 2
        if np.all(piv > PIVOT_RTOL * np.maximum(np.diag(Hkk), np.finfo(float).tiny)):
            delta = sla.cho_solve((c, low), rhs, check_finite=False)
    except np.linalg.LinAlgError:
        delta = None
    if delta is None:
        delta = sla.lstsq(Hkk, rhs, cond=PIVOT_RTOL, lapack_driver="gelsd", check_finite=False)[0]
    w[K] = w0[K] + delta
    return w


def hessian_factor(H: np.ndarray) -> np.ndarray:
    """``X`` with ``XᵀX = H`` (eigen-decomposition; negative rounding eigenvalues dropped)."""
    lam, V = np.linalg.eigh(H)
    keep = lam > PIVOT_RTOL * max(float(lam[-1]), np.finfo(float).tiny)
    return (V[:, keep] * np.sqrt(lam[keep])).T


def boxed_refit(
    H: np.ndarray, w0: np.ndarray, mask: np.ndarray, B: float
) -> tuple[np.ndarray, float, float]:
    """``min (w − w0)ᵀH(w − w0)`` over ``w`` supported on ``mask`` with ``|w_i| <= B``.

    Positive definite kept block: primal active set (:func:`~solvers.prune.kernels.box_qp`);
    otherwise bounded-variable least squares on a factor of ``H``. Returns
    ``(weights, value, frank_wolfe_lower_bound)``.
    """
    K = np.flatnonzero(mask)
    w = np.zeros_like(w0)
    if K.size == 0:
        v = max(0.0, float(w0 @ H @ w0))
        return w, v, v
    wu = unboxed_refit(H, w0, mask)
    Hkk = H[np.ix_(K, K)]
    try:
        c = np.linalg.cholesky(Hkk)
        pd = bool(np.all(np.diag(c) ** 2 > PIVOT_RTOL * np.maximum(np.diag(Hkk), 1e-300)))
    except np.linalg.LinAlgError:
        pd = False
    if pd:
        x, _, _ = box_qp(np.ascontiguousarray(Hkk), np.ascontiguousarray(wu[K]), float(B),
                         20 * K.size + 50)
    else:
        X = hessian_factor(H)
        res = lsq_linear(X[:, K], X @ w0, bounds=(-B, B), method="bvls", tol=1e-14,
                         lsmr_tol="auto", max_iter=None)
        x = np.clip(res.x, -B, B)
    w[K] = x
    value = max(0.0, float((w - w0) @ H @ (w - w0)))
    g = 2.0 * (H @ (w - w0))[K]
    fw = float(np.sum(np.minimum(g * (-B - x), g * (B - x))))
    return w, value, min(value, value + fw)
