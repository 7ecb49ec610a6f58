"""Per-problem ingredients of the node bounds: the diagonal split ``H ⪰ D`` and the margin.

Diagonal split
--------------
Any diagonal ``D = diag(d) ⪰ 0`` with ``H − D ⪰ 0`` gives, at every node, the separable bound
``Δ(S) >= Σ_{j∈S} d_j w_j²`` on the cost of pruning a further set ``S`` (see
:func:`solvers.prune.kernels.node_bound`): ``(G_SS)^-1`` is a Schur complement of ``H_KK``, and
Schur complements preserve the order ``H_KK ⪰ D_KK``. Choices:

* ``"jacobi"`` (default, ``O(n³)`` once): ``d = α·diag(H)`` with ``α = λ_min(Dₕ^-½ H Dₕ^-½)``;
* ``"eig"``: ``d = λ_min(H)·1``;
* ``"sdp"``: maximise the root bound ``sum of the (n−k) smallest d_j w0_j²`` subject to
  ``H − diag(d) ⪰ 0`` (cvxpy; Zheng, Sun & Li 2014 choose D by a similar SDP).

Whatever the choice, ``d`` is then *certified*: the smallest eigenvalue of ``H − diag(d)``
computed by LAPACK (backward stable: exact for a matrix within ``c·n·ε·‖H‖`` of ours) must be at
least ``10·n·ε·‖H‖``; otherwise ``d`` is shrunk until it is. An uncertifiable ``d`` becomes 0.

Margin
------
Node bounds come from rank-one updated inverses, accurate to roughly ``n·ε·κ`` relative, where
``κ`` is the condition number of the Jacobi-scaled ``H`` (diagonal scaling changes nothing in
the problem). Bounds are shrunk by the relative margin
``μ = clip(4·n·ε·κ, 1e-13, MAX_MARGIN)`` before any comparison; when ``4·n·ε·κ`` exceeds
``MAX_MARGIN`` the result says so (the bound is then only as good as float64 allows).
"""

from __future__ import annotations

import logging

import numpy as np

from ..problem import ProblemError

log = logging.getLogger(__name__)

EPS = float(np.finfo(float).eps)
#: Largest relative margin applied to node bounds (keeps OPTIMAL reachable at 1e-9 gaps).
MAX_MARGIN = 1e-10


def scaled_spectrum(H: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of the Jacobi-scaled alive block and the scaling ``diag(H)^½``."""
    idx = np.flatnonzero(alive)
    Ha = H[np.ix_(idx, idx)]
    s = np.sqrt(np.diag(Ha))
    return np.linalg.eigvalsh(Ha / np.outer(s, s)), s


def margin_for(H: np.ndarray, alive: np.ndarray) -> tuple[float, float, bool]:
    """``(margin, kappa, capped)`` for the alive block of ``H``."""
    n = int(alive.sum())
    if n == 0:
        return 1e-13, 1.0, False
    lam, _ = scaled_spectrum(H, alive)
    lo = max(float(lam[0]), float(lam[-1]) * EPS)
    kappa = float(lam[-1]) / lo
    raw = 4.0 * n * EPS * kappa
    return float(np.clip(raw, 1e-13, MAX_MARGIN)), kappa, raw > MAX_MARGIN


def certify_diagonal(H: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Shrink ``d >= 0`` until ``λ_min(H − diag d) >= 10·n·ε·‖H‖`` (computed); else zeros."""
    n = H.shape[0]
    d = np.maximum(np.asarray(d, dtype=float), 0.0)
    normH = float(np.max(np.abs(np.linalg.eigvalsh(H)))) if n else 0.0
    tol = 10.0 * n * EPS * max(normH, np.finfo(float).tiny)
    for _ in range(8):
        if not np.any(d > 0):
            return d
        lam = float(np.linalg.eigvalsh(H - np.diag(d))[0])
        if lam >= tol:
            return d
        # shifting every d_j down by (tol − lam) makes λ_min >= tol in exact arithmetic
        d = np.maximum(d - (tol - lam) * 1.5, 0.0)
    return np.zeros(n)


def diagonal_split(H: np.ndarray, w0: np.ndarray, alive: np.ndarray, need: int,
                   method: str = "jacobi") -> np.ndarray:
    """A certified ``d`` with ``H − diag(d) ⪰ 0`` (zeros on dead inputs)."""
    n = H.shape[0]
    idx = np.flatnonzero(alive)
    d = np.zeros(n)
    if idx.size == 0 or method == "none":
        return d
    Ha = H[np.ix_(idx, idx)]
    if method == "eig":
        da = np.full(idx.size, float(np.linalg.eigvalsh(Ha)[0]))
    elif method == "jacobi":
        lam, s = scaled_spectrum(H, alive)
        da = float(lam[0]) * s**2
    elif method == "logdet":
        da = logdet_diagonal(Ha)
        if da is None:
            lam, s = scaled_spectrum(H, alive)
            da = float(lam[0]) * s**2
    elif method == "sdp":
        da = _sdp_diagonal(Ha, w0[idx], need)
        if da is None:
            lam, s = scaled_spectrum(H, alive)
            da = float(lam[0]) * s**2
    else:
        raise ProblemError(
            f"unknown diagonal split {method!r}; use auto, jacobi, logdet, eig, sdp or none")
    d[idx] = certify_diagonal(Ha, np.maximum(da, 0.0))
    return d


def logdet_diagonal(H: np.ndarray, mu_end: float = 1e-4) -> np.ndarray | None:
    """The largest-volume diagonal under ``H``: ``argmax Σ log d_j`` s.t. ``H − diag(d) ⪰ 0``.

    Solved by a log-barrier Newton method on the Jacobi-scaled matrix (``n`` unknowns; each
    step one Cholesky), to the barrier weight ``mu_end`` (which bounds the loss in
    ``Σ log d_j`` by ``n·mu_end``). Independent of ``w0`` and ``k``, so one split serves every
    node. Returns ``None`` when ``H`` is numerically singular (no positive diagonal fits).
    """
    n = H.shape[0]
    s = np.sqrt(np.diag(H))
    Hs = H / np.outer(s, s)
    lam = float(np.linalg.eigvalsh(Hs)[0])
    if not lam > 1e3 * n * EPS:
        return None
    d = np.full(n, 0.5 * lam)

    def phi(dd, mu):
        try:
            c = np.linalg.cholesky(Hs - np.diag(dd))
        except np.linalg.LinAlgError:
            return -np.inf, None
        return float(np.sum(np.log(dd)) + 2.0 * mu * np.sum(np.log(np.diag(c)))), c

    mu = 1.0
    while True:
        val, c = phi(d, mu)
        for _ in range(30):
            ci = np.linalg.inv(c)
            B = ci.T @ ci
            g = 1.0 / d - mu * np.diag(B)
            Hn = np.diag(1.0 / d**2) + mu * B * B  # minus the Hessian (positive definite)
            step = np.linalg.solve(Hn, g)
            dec = float(g @ step)
            if dec < 1e-10:
                break
            t = 1.0
            while t > 1e-12:
                dn = d + t * step
                if np.all(dn > 0):
                    vn, cn = phi(dn, mu)
                    if vn >= val + 0.25 * t * dec:
                        d, val, c = dn, vn, cn
                        break
                t *= 0.5
            else:
                break
        if mu <= mu_end:
            break
        mu = max(mu * 0.2, mu_end)
    return d * s**2


def _sdp_diagonal(H: np.ndarray, w0: np.ndarray, need: int) -> np.ndarray | None:
    try:
        import cvxpy as cp
    except ImportError:  # pragma: no cover - cvxpy is a declared dependency
        return None
    n = H.shape[0]
    need = int(np.clip(need, 1, n))
    scale = float(np.max(np.diag(H)))
    Hs = H / scale
    d = cp.Variable(n, nonneg=True)
    a = w0**2
    a = a / max(float(a.max()), np.finfo(float).tiny)
    obj = cp.Maximize(cp.sum_smallest(cp.multiply(a, d), need) + 1e-3 * cp.sum(cp.multiply(a, d)))
    prob = cp.Problem(obj, [Hs - cp.diag(d) >> 0])
    try:
        prob.solve(solver=cp.CLARABEL)
    except Exception as exc:  # noqa: BLE001 - any solver failure falls back to Jacobi
        log.debug("SDP diagonal split failed: %s", exc)
        return None
    if d.value is None:
        return None
    return np.maximum(np.asarray(d.value, dtype=float), 0.0) * scale
