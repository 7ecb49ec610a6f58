"""Integrality tangents along short dual-lattice directions: a stronger Lagrangian bound.

For any integer vector ``w`` and integer ``a``, every integer point ``z`` has
``(wᵀz − a)(wᵀz − a − 1) >= 0``: the lattice points lie on the hyperplanes ``wᵀz ∈ ℤ``. The
Park–Boyd SDP (:mod:`solvers.quant.lagrangian`) uses these only along the unit vectors. Its
relaxation is not invariant under a change of lattice basis, and along ``w`` the tangent can
carry a multiplier up to ``1/(wᵀH⁻¹w)`` (``Q = H − νwwᵀ ⪰ 0``), so the useful directions are the
*short vectors of the dual lattice* (Gram matrix ``H⁻¹``): widely spaced hyperplanes in the
metric of ``H``. On correlated ``H`` (real layers) the unit vectors are long dual vectors
(``(H⁻¹)_ii`` is large), which is why the plain SDP bound is weak there.

Algorithm (a cutting-plane loop on the SDP, in its Lagrangian dual form)
------------------------------------------------------------------------
1. A *pool* of candidate directions (:func:`direction_pool`): the dual basis ``Z⁻¹`` of an
   LLL-reduced primal basis, an LLL-reduced basis of the dual lattice itself, and the sums and
   differences of pairs of the shortest of those (ranked by ``wᵀH⁻¹w``).
2. Solve the dual with the unit tangents only (the Park–Boyd bound).
3. On the barrier's central path the SDP's primal matrix is ``X = x xᵀ + S`` (``S = t·Q_n⁻¹``,
   :attr:`~solvers.quant.lagrangian.DualResult.spread`); the tangent along ``w`` at
   ``a = floor(wᵀx)`` is violated by ``φ(wᵀx) − wᵀSw``, ``φ(y) = frac(y)(1 − frac(y))``. Add
   the ``n`` most violated pool directions (tangent points at the current minimiser) and
   re-solve from scratch (:func:`~solvers.quant.lagrangian.maximize_dual`); repeat until the
   time is spent or nothing is violated.
4. Every round's multipliers are certified independently
   (:func:`~solvers.quant.dual_certificate.dual_bound`); the best certified bound is returned.
   Validity never depends on how the directions were chosen: any integer ``W`` is sound.

Measured on MobileNetV2 chunks at 4 bits (see docs/quantization.md): the gap between the bound
and the optimum falls from ~1.6 to ~0.9 dB at ``n = 32``, by ~0.5 dB at ``n = 128``.

References: Park & Boyd (2018); Buchheim, Caprara & Lodi (2012); Lenstra, Lenstra & Lovász
(1982) for the reduction. Split cuts along lattice directions are classical in integer
programming (e.g. Cook, Kannan & Schrijver 1990); here they enter the lifted (SDP) space.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.linalg import solve_triangular

from .factor import ordered_cholesky
from .lagrangian import DualResult, exact_target_bound, maximize_dual
from .lattice_reduction import MAX_ENTRY, lll_basis

#: candidates combined pairwise (the shortest of the bases)
PAIR_BASE = 96
#: directions added per round, as a multiple of n
PER_ROUND = 1.0
#: least violation (in units of the tangent's value, at most 1/4) for a direction to be added
MIN_VIOLATION = 1e-3


def _canonical(W: np.ndarray) -> np.ndarray:
    """Rows without zeros and unit vectors, sign fixed (first non-zero positive), unique."""
    W = np.asarray(W, dtype=np.int64)
    W = W[np.count_nonzero(W, axis=1) > 1]
    if W.shape[0] == 0:
        return W
    first = W[np.arange(W.shape[0]), np.argmax(W != 0, axis=1)]
    return np.unique(W * np.sign(first)[:, None], axis=0)


def direction_pool(H: np.ndarray, *, pair_base: int = PAIR_BASE) -> np.ndarray:
    """Candidate integer directions for :func:`cut_bound`, shortest in ``wᵀH⁻¹w`` first.

    Returns an ``(m, n)`` int64 array (no unit vectors: those are the plain SDP's tangents);
    empty when ``n < 2``. A singular ``H`` has no dual lattice: its pool is that of
    ``H + δI`` (``δ = 1e-3·tr(H)/n``) — any integer direction gives a valid tangent, the pool
    only steers which ones are tried.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[1.0, 0.99], [0.99, 1.0]])
    >>> direction_pool(H)[0].tolist()    # z1 + z2, the stiff direction: widest-spaced planes
    [1, 1]
    """
    n = H.shape[0]
    if n < 2:
        return np.zeros((0, n), dtype=np.int64)
    H = np.asarray(H, dtype=np.float64)
    R, rank = ordered_cholesky(H, np.arange(n))
    if rank < n:
        delta = 1e-3 * max(float(np.trace(H)) / n, np.finfo(float).tiny)
        R, rank = ordered_cholesky(H + delta * np.eye(n), np.arange(n))
        if rank < n:  # pragma: no cover - H + δI is positive definite
            return np.zeros((0, n), dtype=np.int64)
    parts = []
    basis = lll_basis(R)
    if basis is not None:
        parts.append(basis[1])  # rows of Z⁻¹: the dual basis of the reduced primal basis
    # the dual lattice: H⁻¹ = R⁻¹R⁻ᵀ; T = flip(R⁻ᵀ) is upper triangular with TᵀT = P H⁻¹ P
    Rinv_t = solve_triangular(R, np.eye(n), trans="T", lower=False)
    T = np.ascontiguousarray(Rinv_t[::-1, ::-1])
    dual = lll_basis(T)
    if dual is not None:
        parts.append(dual[0].T[:, ::-1])  # columns of Z_d, back from the flipped order
    if not parts:
        return np.zeros((0, n), dtype=np.int64)
    base = np.vstack(parts + [np.eye(n, dtype=np.int64)])
    cost = _dual_norms(Rinv_t, base)
    top = base[np.argsort(cost, kind="stable")[:pair_base]]
    pairs = np.concatenate([(top[:, None, :] + top[None, :, :]).reshape(-1, n),
                            (top[:, None, :] - top[None, :, :]).reshape(-1, n)])
    pool = _canonical(np.vstack([base, pairs]))
    pool = pool[np.max(np.abs(pool), axis=1) <= MAX_ENTRY]
    return pool[np.argsort(_dual_norms(Rinv_t, pool), kind="stable")]


def _dual_norms(Rinv_t: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``wᵀH⁻¹w = ‖R⁻ᵀw‖²`` for every row ``w``."""
    V = Rinv_t @ W.T.astype(np.float64)
    return np.einsum("ij,ij->j", V, V)


def violations(pool: np.ndarray, r: DualResult) -> np.ndarray:
    """How much the SDP point of ``r`` violates the tangent along each pool row (> 0: cut)."""
    y = pool.astype(np.float64) @ r.x
    f = y - np.floor(y)
    phi = f * (1.0 - f)
    if r.spread is None:
        return phi
    P = pool.astype(np.float64)
    return phi - np.einsum("ij,jk,ik->i", P, r.spread, P)


def cut_bound(H: np.ndarray, c: np.ndarray, lo: int, hi: int, *, time_limit: float,
              pool: np.ndarray | None = None, per_round: int | None = None,
              first: DualResult | None = None) -> tuple[float, DualResult, dict]:
    """The Lagrangian bound strengthened by dual-lattice tangents, within ``time_limit``.

    Parameters
    ----------
    H, c, lo, hi : the problem in grid units (``c = w0/s``).
    time_limit : seconds for everything (the plain bound, the pool, the rounds).
    pool : candidate directions (default :func:`direction_pool`).
    per_round : directions added per round (default ``n``).
    first : the plain bound's result, if already computed.

    Returns
    -------
    (bound, DualResult, info)
        ``bound`` is proved for the exact target ``w0/s``
        (:func:`~solvers.quant.lagrangian.exact_target_bound`), in grid units; the result is
        the round that gave it; ``info`` has ``rounds``, ``directions``, ``plain_bound`` (the
        Park–Boyd bound alone) and ``seconds``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 12)) + 2.0 * rng.standard_normal((200, 1))
    >>> c = 3.0 * rng.standard_normal(12)
    >>> b, r, info = cut_bound(X.T @ X, c, -8, 7, time_limit=5.0)
    >>> b >= info["plain_bound"], info["rounds"] >= 1
    (True, True)
    """
    t0 = time.perf_counter()
    deadline = t0 + float(time_limit)
    n = H.shape[0]
    r = first if first is not None else maximize_dual(H, c, lo, hi, time_limit=0.5 * time_limit)
    best, plain = r, r.bound
    if pool is None:
        pool = direction_pool(H)
    per_round = max(1, int(per_round if per_round is not None else PER_ROUND * n))
    rounds = 0
    used: set[bytes] = set()
    while pool.shape[0] and time.perf_counter() < deadline - 0.02:
        v = violations(pool, r)
        fresh = np.array([row.tobytes() not in used for row in pool])
        v[~fresh] = -np.inf
        pick = np.argsort(-v, kind="stable")[:per_round]
        pick = pick[v[pick] > MIN_VIOLATION]
        if pick.size == 0:
            break
        for i in pick:
            used.add(pool[i].tobytes())
        W = pool[pick] if r.W is None else np.vstack([r.W, pool[pick]])
        r = maximize_dual(H, c, lo, hi, directions=W,
                          time_limit=max(0.01, deadline - time.perf_counter()))
        rounds += 1
        if r.bound > best.bound:
            best = r
    info = {"rounds": rounds, "directions": 0 if best.W is None else int(best.W.shape[0]),
            "plain_bound": exact_target_bound(H, c, r.a, plain),
            "seconds": time.perf_counter() - t0}
    return exact_target_bound(H, c, best.a, best.bound), best, info
