"""The exact refit of the kept weights for a fixed mask (unboxed or boxed): the one implementation.

For a kept set ``K`` and pruned set ``R`` (``w_R = 0``) the best kept weights solve::

    unboxed:  min_{w_K} (w − w0)ᵀ H (w − w0)
              ⇔ H_KK (w_K − w0_K) = H_KR w0_R          (least squares on the kept columns)
    boxed:    the same with |w_i| <= B                   (a box-constrained least squares)

With ``H = XᵀX`` the unboxed problem is ``min ‖X_K w_K − X w0‖²``, which is well posed for any
PSD ``H``: when ``H_KK`` is singular the minimum value is still unique, and we take the
minimum-norm correction ``w_K − w0_K`` (pseudo-inverse via SVD), never a damped ``H + λI``.
Solving for the correction rather than for ``w_K`` keeps the right-hand side small when little
is pruned (zero when nothing is), and leaves alone what the error does not see: a kept input with
``H_ii = 0`` (never activated) keeps ``w0_i``, exactly as the minimum-norm correction would (its
row of ``H_KK`` is zero), without sending the whole block to the SVD. The boxed
problem is solved by an active-set QP on a positive definite kept block, otherwise by
bounded-variable least squares (scipy's BVLS, an exact active-set method) on a factor ``X`` of
``H``, and reports a Frank–Wolfe lower bound alongside.

Every refit in pqbound goes through here: the exact pruning solver, the backends' masks
(:mod:`solvers.backends.bigm`), the heuristics' ``refit=True`` (magnitude + refit, OBS,
SparseGPT) and the incumbents.

**The pivot tolerance.** ``H_KK`` is called singular when a Cholesky pivot falls to
:data:`PIVOT_RTOL` of its own diagonal, ``L_ii² <= 1e-11·H_ii``. The pivot ``L_ii²`` is the part
of input ``i``'s activation energy ``H_ii`` that the kept inputs before it do not explain
(``H_ii·(1 − R_i²)``), so the test asks whether input ``i`` is, to about 11 digits, a linear
combination of the others, whatever its scale (a test against ``max(diag H_KK)`` would call a
rarely active input dependent merely for being small). Rounding in the Cholesky factorisation
moves a pivot by at most about ``(n + 1)·u·H_ii`` (``u = 2⁻⁵³``; Higham, *Accuracy and Stability
of Numerical Algorithms*, Thm. 10.3, with ``(|L||Lᵀ|)_ii = H_ii``): below ``5e-13·H_ii`` up to
``n = 4096``, so ``1e-11`` stays 20× above rounding at every size pqbound solves, where ``1e-12``
would come within 2× of it. The same tolerance decides regular nodes in the exact search
(:mod:`solvers.prune.search`), so a mask the search treats as regular is refit the same way, and
it is the cut-off of the SVD fallback and of :func:`hessian_factor`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.optimize import lsq_linear

from ..problem import PruneProblem
from .kernels import box_qp

#: Relative pivot ``L_ii² / H_ii`` at or below which a kept column counts as dependent on the
#: others (see the module docstring for the choice).
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
    """The error-minimising ``w`` with support in ``mask`` (True = kept), no box.

    ``w_K = w0_K + δ`` with ``H_KK δ = H_KR w0_R`` (Cholesky, or the minimum-norm SVD least
    squares when ``H_KK`` is singular to :data:`PIVOT_RTOL`), solved over the kept inputs with
    ``H_ii > 0``; kept inputs with ``H_ii = 0`` keep ``w0_i`` (``δ_i = 0``); zeros on ``R``.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> unboxed_refit(H, np.array([1.0, 0.5]), np.array([True, False])).round(12).tolist()
    [1.25, 0.0]
    """
    mask = np.asarray(mask, dtype=bool)
    w0 = np.asarray(w0, dtype=np.float64)
    w = np.where(mask, w0, 0.0)
    K = np.flatnonzero(mask & (np.diag(H) > 0.0))
    R = np.flatnonzero(~mask)
    if K.size == 0 or R.size == 0:
        return w  # nothing kept that matters, or nothing pruned (w0 is optimal, error 0)
    Hkk = H[np.ix_(K, K)]
    rhs = H[np.ix_(K, R)] @ w0[R]
    delta = None
    try:
        c, low = sla.cho_factor(Hkk, lower=True, check_finite=False)
        if np.all(np.diag(c) ** 2 > PIVOT_RTOL * np.diag(Hkk)):
            delta = sla.cho_solve((c, low), rhs, check_finite=False)
    except np.linalg.LinAlgError:
        delta = None
    if delta is None:
        delta = sla.lstsq(Hkk, rhs, cond=PIVOT_RTOL, lapack_driver="gelsd", check_finite=False)[0]
    w[K] += delta
    return w


def unboxed_refit_rows(H: np.ndarray, W0: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """:func:`unboxed_refit` for every row of ``W0`` (C, n) with its own mask (C, n).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> W = unboxed_refit_rows(H, np.array([[1.0, 0.5], [1.0, 0.5]]),
    ...                        np.array([[True, False], [False, True]]))
    >>> W.round(12).tolist()
    [[1.25, 0.0], [0.0, 1.0]]
    """
    W = np.zeros_like(W0, dtype=np.float64)
    for c in range(W0.shape[0]):
        W[c] = unboxed_refit(H, W0[c], masks[c])
    return W


def hessian_factor(H: np.ndarray) -> np.ndarray:
    """``X`` with ``XᵀX = H`` (eigen-decomposition; negative rounding eigenvalues dropped)."""
    lam, V = np.linalg.eigh(H)
    keep = lam > PIVOT_RTOL * max(float(lam[-1]), np.finfo(float).tiny)
    return (V[:, keep] * np.sqrt(lam[keep])).T


def regular_cholesky(A: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of ``A``, or None when ``A`` is not positive definite to
    :data:`PIVOT_RTOL`: some pivot ``L_ii²`` at most ``PIVOT_RTOL·A_ii`` (the refit's test of a
    kept column that depends on the others)."""
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return None
    ok = np.all(np.diag(L) ** 2 > PIVOT_RTOL * np.maximum(np.diag(A), 1e-300))
    return L if ok else None


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
    if regular_cholesky(Hkk) is not None:
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
