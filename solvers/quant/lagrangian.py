"""Our own Lagrangian (SDP-dual) lower bound for the quantization problem: no cvxpy in the loop.

In grid units ``f(z) = (z − c)ᵀH(z − c)`` over integers ``lo <= z <= hi``. As in
:mod:`solvers.quant.sdp`, shift by ``a = clip(floor(c), lo, hi − 1)``: ``x = z − a`` is integer
with ``l <= x <= u`` (``l = lo − a <= 0``, ``u = hi − a >= 1``), ``ĉ = c − a``. Every such
``x`` has ``x_i(x_i − 1) >= 0`` and ``(x_i − l_i)(u_i − x_i) >= 0``, so for multipliers
``θ = (λ, μ) >= 0``

    f(x) >= L(x) = xᵀQx + bᵀx + k,   Q = H + diag(μ − λ),
    b = −2Hĉ + λ − μ∘(l + u),        k = ĉᵀHĉ + Σ μ_i l_i u_i,

and ``g(θ) = min_x L(x) = k − ¼ bᵀQ⁻¹b`` (``Q ≻ 0``) is a lower bound on the optimum. ``g`` is
concave; its maximum is the value of the Park–Boyd SDP (the Shor relaxation is the Lagrangian
dual). With ``x* = −½Q⁻¹b``:

    ∂g/∂λ_i = x*_i − x*_i²,    ∂g/∂μ_i = (x*_i − l_i)(x*_i − u_i),
    ∂²g/∂θ_i∂θ_j = −2 v_i v_j (Q⁻¹)_ij,   v_λi = ½ − x*_i,   v_μi = x*_i − ½(l_i + u_i).

:func:`maximize_dual` maximises ``g`` by a primal–dual-free barrier method: Newton steps on
``g + t·(log det Q + Σ log θ)`` for a decreasing ``t`` (each ``t`` costs a few dense
``n × n`` factorisations; ``n = 128`` takes a fraction of a second). The maximiser is never
trusted: the bound reported is :func:`solvers.quant.dual_certificate.dual_bound` at the final
``θ`` (clipped to ``θ >= 0``, ``μ`` shifted until ``Q`` is provably positive definite, the
eigendecomposition's backward error and the rounding of the sums subtracted), valid for *any*
``θ``.

**Directions.** ``directions=W`` adds tangents ``(w_kᵀx − a_k)(w_kᵀx − a_k − 1) >= 0`` along
integer vectors ``w_k`` (multipliers ``ν_k``, ``Q −= Wᵀdiag(ν)W``): the Shor relaxation is not
invariant under a change of lattice basis, and tangents along short dual-lattice vectors are
much stronger than along the unit vectors on correlated ``H``
(:mod:`solvers.quant.lattice_cuts` chooses them). The same Newton method runs on
``θ = (λ, μ, ν)``, from a cold start.

Reference: Buchheim, Caprara & Lodi (2012), *An effective branch-and-bound algorithm for convex
quadratic integer programming*; Park & Boyd (2018).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular

from .dual_certificate import dual_bound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DualResult:
    """Outcome of :func:`maximize_dual` (all in grid units, ``f = (z − c)ᵀH(z − c)``).

    Attributes
    ----------
    bound : certified lower bound on ``min f`` over the box
        (:func:`~solvers.quant.dual_certificate.dual_bound`).
    value : the uncertified ``g(θ)`` at the final multipliers.
    lam, mu : the multipliers of ``x_i(x_i − 1) >= 0`` and of the box (``H``'s units).
    shift : what certification added to ``mu``.
    a : the integer shift, ``x = z − a``.
    x : the minimiser ``x* = −½Q⁻¹b`` of the Lagrangian (in shifted units).
    iterations : Newton steps taken.
    seconds : wall time.
    t : the final barrier weight (normalised units).
    W, ya, nu : the integer directions (rows, int64), their tangent points (in shifted units:
        ``(w_kᵀx − ya_k)(w_kᵀx − ya_k − 1) >= 0``) and multipliers; ``None`` without
        directions.
    spread : ``t·Q_n⁻¹`` at the last barrier iterate (``Q_n = Q/τ``): on the central path the
        SDP's primal matrix is ``x xᵀ + spread``, which :mod:`solvers.quant.lattice_cuts` uses
        to find violated directions.
    """

    bound: float
    value: float
    lam: np.ndarray
    mu: np.ndarray
    shift: float
    a: np.ndarray
    x: np.ndarray
    iterations: int
    seconds: float
    t: float = 0.0
    W: np.ndarray | None = None
    ya: np.ndarray | None = None
    nu: np.ndarray | None = None
    spread: np.ndarray | None = None


class _Directions:
    """Integer directions ``W`` (float copy ``Wf``) with tangent points ``ya``."""

    def __init__(self, W, ya):
        self.W = np.asarray(W, dtype=np.int64)
        self.Wf = self.W.astype(np.float64)
        self.ya = np.asarray(ya, dtype=np.float64)
        self.m = self.W.shape[0]


def _parts(H, chat, l, u, lam, mu, D=None, nu=None):
    Q = H + np.diag(mu - lam)
    b = -2.0 * (H @ chat) + lam - mu * (l + u)
    k = float(chat @ H @ chat + np.sum(mu * l * u))
    if D is not None and D.m:
        Q = Q - (D.Wf.T * nu) @ D.Wf
        b = b + D.Wf.T @ (nu * (2.0 * D.ya + 1.0))
        k -= float(np.sum(nu * D.ya * (D.ya + 1.0)))
    return Q, b, k


def _eval(H, chat, l, u, th, t, D):
    """``(φ, g, x, L)`` of the barrier objective at ``θ = (λ, μ, ν)`` (``L`` the Cholesky factor
    of ``Q``), or ``None`` outside the domain."""
    if np.any(th <= 0.0):
        return None
    n = H.shape[0]
    Q, b, k = _parts(H, chat, l, u, th[:n], th[n:2 * n], D, th[2 * n:])
    try:
        L = cholesky(Q, lower=True, check_finite=False)
    except LinAlgError:
        return None
    x = -0.5 * cho_solve((L, True), b, check_finite=False)
    g = k + 0.5 * float(b @ x)  # k − ¼bᵀQ⁻¹b
    logdet = 2.0 * float(np.sum(np.log(np.diag(L))))
    phi = g + t * (logdet + float(np.sum(np.log(th))))
    if not np.isfinite(phi):
        return None
    return phi, g, x, L


def _inverse(L):
    """``Q⁻¹`` from the lower Cholesky factor ``L`` of ``Q``."""
    Li = solve_triangular(L, np.eye(L.shape[0]), lower=True, check_finite=False)
    return Li.T @ Li


def _newton(H, chat, l, u, th, t, D, *, t_min=0.0, max_iter=200, deadline=None, tol=1e-7):
    """Barrier Newton path on ``g + t(log det Q + Σ log θ)`` (data already normalised).

    ``θ = (λ, μ, ν)``. Every constraint ``j`` enters ``Q`` as ``σ_j θ_j w_jw_jᵀ`` (``σ = −1``
    for the integrality tangents, ``+1`` for the box) and ``b`` as ``θ_jβ_jw_j``; with
    ``x* = −½Q⁻¹b`` and ``G = [I; I; W]Q⁻¹[I; I; W]ᵀ``

        ∂g/∂θ_j = −(tangent or box product at x*),   ∂²g/∂θ_i∂θ_j = −½ τ_iτ_j G_ij,
        τ_j = β_j + 2σ_j w_jᵀx*,   ∂ log det Q/∂θ_j = σ_j G_jj.

    Starts at ``t`` and shrinks it by 5 whenever a Newton step is small, down to ``t_min`` (or
    until ``(3n + m)t <= tol(1 + |g|)``). Returns ``(θ, t, g, x, Qinv, iterations)`` of the last
    iterate (``g`` uncertified; ``None`` values if the start is outside the domain).
    """
    n = H.shape[0]
    m = 0 if D is None else D.m
    sig = np.concatenate([-np.ones(n), np.ones(n), -np.ones(m)])
    iters = 0
    cur = _eval(H, chat, l, u, th, t, D)
    if cur is None:
        return th, t, None, None, None, 0
    while iters < max_iter:
        if deadline is not None and time.perf_counter() > deadline:
            break
        phi, g, x, Lq = cur
        Qinv = _inverse(Lq)
        if m:
            B = Qinv @ D.Wf.T
            C = D.Wf @ B
            G = np.block([[Qinv, Qinv, B], [Qinv, Qinv, B], [B.T, B.T, C]])
            y = D.Wf @ x - D.ya
            gw = -y * (y - 1.0)
            tw = 1.0 - 2.0 * y
        else:
            G = np.block([[Qinv, Qinv], [Qinv, Qinv]])
            gw = tw = np.zeros(0)
        gradg = np.concatenate([x - x * x, (x - l) * (x - u), gw])
        tau = np.concatenate([1.0 - 2.0 * x, 2.0 * x - (l + u), tw])
        grad = gradg + t * (sig * np.diag(G) + 1.0 / th)
        A = 0.5 * np.outer(tau, tau) * G + t * (np.outer(sig, sig) * G * G)
        A[np.diag_indices_from(A)] += t / th**2
        ridge = 0.0
        scale_a = float(np.max(np.abs(np.diag(A))))
        for _ in range(8):
            try:
                Cf = cholesky(A + ridge * np.eye(A.shape[0]), lower=True, check_finite=False)
                break
            except LinAlgError:
                ridge = max(1e-12 * scale_a, 10.0 * ridge)
        else:
            break
        step = cho_solve((Cf, True), grad, check_finite=False)
        dec = float(grad @ step)  # Newton decrement²
        iters += 1
        # backtracking line search on φ, staying inside the domain
        s = 1.0
        for _ in range(30):
            nth = th + s * step
            nxt = _eval(H, chat, l, u, nth, t, D)
            if nxt is not None and nxt[0] >= phi + 0.25 * s * dec:
                break
            s *= 0.5
        else:
            nxt = None
        done = t * (3 * n + m) < tol * (1.0 + abs(g)) or t <= t_min
        if nxt is None:
            # no progress at this t (rounding level): move on to a smaller one, or stop
            if dec < 1e-12 or done:
                break
            t *= 0.2
            cur = _eval(H, chat, l, u, th, t, D)
            continue
        th, cur = nth, nxt
        if dec < 1e-3 * max(1e-8, t):
            if done:
                break
            t = max(t * 0.2, t_min)
            cur = _eval(H, chat, l, u, th, t, D)
    return th, t, cur[1], cur[2], _inverse(cur[3]), iters


def maximize_dual(H: np.ndarray, c: np.ndarray, lo: int, hi: int, *,
                  directions: np.ndarray | None = None,
                  time_limit: float | None = None, max_iter: int = 200,
                  tol: float = 1e-7) -> DualResult:
    """Maximise the Lagrangian dual ``g(λ, μ[, ν])`` and return a certified bound.

    Parameters
    ----------
    H : (n, n) symmetric PSD (rank-deficient is fine: ``Q = H + diag(μ − λ)`` is what must be
        positive definite, and the box multipliers ``μ`` make it so).
    c : (n,) target in grid units (``w0 / s``).
    lo, hi : the integer box.
    directions : (m, n) integer array, optional
        Extra integrality tangents ``(w_kᵀx − a_k)(w_kᵀx − a_k − 1) >= 0`` along these rows
        (:mod:`solvers.quant.dual_certificate`), each at ``a_k = floor(w_kᵀĉ)`` (the
        continuous optimum), clipped to the range of ``w_kᵀx`` on the box. Solved from a cold
        start: :mod:`solvers.quant.lattice_cuts` measured tangents at ``ĉ`` as good as at a
        previous round's minimiser, and warm starts 0.1–0.6 dB worse at ``n = 32`` (the barrier
        restarts near the boundary of ``Q ⪰ 0``).
    time_limit : seconds; the multipliers reached when it expires are certified.
    max_iter : Newton steps in all.
    tol : stop when the barrier weight times the number of barrier terms is below
        ``tol·(1 + |g|)``.

    Returns
    -------
    DualResult
        ``bound`` is a proved lower bound on ``min_z (z − c)ᵀH(z − c)`` over the box, up to the
        floating-point analysis of :func:`solvers.quant.dual_certificate.dual_bound`.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[1.0, 0.95], [0.95, 1.0]]); c = np.array([0.3, -0.2])
    >>> r = maximize_dual(H, c, -2, 1)
    >>> s = maximize_dual(H, c, -2, 1, directions=np.array([[1, 1]]))
    >>> round(r.bound, 4), round(s.bound, 4)   # z1 + z2 is an integer too; the optimum is 0.016
    (0.0088, 0.016)
    """
    t0 = time.perf_counter()
    n = H.shape[0]
    H = np.asarray(H, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    a = np.clip(np.floor(c), lo, max(lo, hi - 1))
    chat = c - a
    l, u = lo - a, hi - a
    tau = max(float(np.trace(H)) / n, np.finfo(float).tiny)
    Hn = H / tau
    # start inside the domain: Q = Hn − ½λ_min(Hn)·I + εI − WᵀνW ≻ 0, small multipliers
    eps = 1e-3
    lmin = max(float(np.linalg.eigvalsh(Hn)[0]), 0.0)
    lam = np.full(n, max(0.5 * lmin, eps))
    th = np.concatenate([lam, lam - 0.5 * lmin + eps])
    D = None
    if directions is not None and len(directions):
        Wn = np.asarray(directions, dtype=np.int64)
        D = _Directions(Wn, _tangent_points(Wn, chat, l, u))
        wn = np.sum(D.Wf**2, axis=1)
        th = np.concatenate([th, 0.5 * eps / (D.m * wn)])  # ‖WᵀνW‖ <= ε/2
    deadline = None if time_limit is None else t0 + time_limit
    th, t, g, x, Qinv, iters = _newton(Hn, chat, l, u, th, 1e-2, D, max_iter=max_iter,
                                       deadline=deadline, tol=tol)
    spread = None if Qinv is None else t * Qinv
    lam, mu, nu = th[:n] * tau, th[n:2 * n] * tau, th[2 * n:] * tau
    # certify the last iterate (the barrier path's g increases; a 'best g so far' could come
    # from a badly conditioned Q whose computed g is inaccurate)
    W, ya = (None, None) if D is None else (D.W, D.ya)
    bound, shift = dual_bound(H, chat, l, u, lam, mu, W, ya, nu if D is not None else None)
    if x is None:
        x = chat.copy()
    secs = time.perf_counter() - t0
    g = -np.inf if g is None else g * tau
    log.debug("dual n=%d m=%d: %d Newton steps, %.3f s, g=%.6g, certified %.6g", n,
              0 if D is None else D.m, iters, secs, g, bound)
    return DualResult(float(bound), float(g), lam, mu, float(shift), a, x, iters, secs, t,
                      W, ya, None if D is None else nu, spread)


def _tangent_points(W: np.ndarray, x: np.ndarray, l: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``floor(Wx)`` clipped to ``[min, max − 1]`` of ``Wx`` over the box ``[l, u]``."""
    Wf = W.astype(np.float64)
    ymin = np.minimum(Wf * l, Wf * u).sum(axis=1)
    ymax = np.maximum(Wf * l, Wf * u).sum(axis=1)
    return np.clip(np.floor(Wf @ x), ymin, np.maximum(ymin, ymax - 1.0))


def exact_target_bound(H: np.ndarray, c: np.ndarray, a: np.ndarray, B: float) -> float:
    """A bound ``B`` for the computed target ``ĉ + a`` (``ĉ = fl(c − a)``) turned into one for
    the exact target ``c_true = w0/s``.

    ``c_true`` differs from ``ĉ + a`` by at most ``u(|c| + 1)`` entrywise (the rounding of
    ``w0/s`` and of ``c − a``), so (triangle inequality in the ``H``-norm,
    ``‖H^½δ‖ <= √‖H‖_F·‖δ‖``) the bound is ``(√max(B, 0) − ε)²`` with
    ``ε = √‖H‖_F·2u(‖c‖ + ‖c − a‖ + √n)·(1 + 1e-6)`` (0 when negative).
    """
    u = np.finfo(np.float64).eps / 2
    dev = float(np.linalg.norm(c)) + float(np.linalg.norm(c - a)) + np.sqrt(c.size)
    eps = np.sqrt(float(np.linalg.norm(H))) * 2.0 * u * dev * (1.0 + 1e-6)
    root = np.sqrt(max(B, 0.0)) - eps
    return float(root * root) if root > 0.0 else 0.0


def certified_root_bound(H: np.ndarray, c: np.ndarray, lo: int, hi: int, *,
                         time_limit: float | None = None) -> tuple[float, DualResult]:
    """Lower bound on ``min (z − c_true)ᵀH(z − c_true)`` over the box, ``c = fl(c_true)``:
    :func:`maximize_dual`'s bound through :func:`exact_target_bound`.

    Returns ``(bound, DualResult)`` in grid units.
    """
    r = maximize_dual(H, c, lo, hi, time_limit=time_limit)
    return exact_target_bound(H, c, r.a, r.bound), r
