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
trusted: the bound reported is :func:`solvers.quant.sdp.dual_bound` at the final ``θ`` (clipped
to ``θ >= 0``, ``μ`` shifted until ``Q`` is provably positive definite, the eigendecomposition's
backward error and the rounding of the sums subtracted), valid for *any* ``θ``.

Reference: Buchheim, Caprara & Lodi (2012), *An effective branch-and-bound algorithm for convex
quadratic integer programming*; Park & Boyd (2018).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .sdp import dual_bound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DualResult:
    """Outcome of :func:`maximize_dual` (all in grid units, ``f = (z − c)ᵀH(z − c)``).

    Attributes
    ----------
    bound : certified lower bound on ``min f`` over the box (:func:`~solvers.quant.sdp.dual_bound`).
    value : the uncertified ``g(θ)`` at the final multipliers.
    lam, mu : the multipliers (``H``'s units).
    shift : what certification added to ``mu``.
    a : the integer shift, ``x = z − a``.
    x : the minimiser ``x* = −½Q⁻¹b`` of the Lagrangian (in shifted units).
    iterations : Newton steps taken.
    seconds : wall time.
    t : the final barrier weight (normalised units, for warm starts).
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


def _parts(H, chat, l, u, lam, mu):
    Q = H + np.diag(mu - lam)
    b = -2.0 * (H @ chat) + lam - mu * (l + u)
    k = float(chat @ H @ chat + np.sum(mu * l * u))
    return Q, b, k


def _eval(H, chat, l, u, lam, mu, t):
    """``(φ, g, x, Qinv)`` of the barrier objective, or ``None`` outside the domain."""
    if np.any(lam <= 0.0) or np.any(mu <= 0.0):
        return None
    Q, b, k = _parts(H, chat, l, u, lam, mu)
    try:
        L = np.linalg.cholesky(Q)
    except np.linalg.LinAlgError:
        return None
    Li = np.linalg.solve(L, np.eye(Q.shape[0]))  # L⁻¹ (dense is fine at these sizes)
    Qinv = Li.T @ Li
    x = -0.5 * (Qinv @ b)
    g = k + 0.5 * float(b @ x)  # k − ¼bᵀQ⁻¹b
    logdet = 2.0 * float(np.sum(np.log(np.diag(L))))
    phi = g + t * (logdet + float(np.sum(np.log(lam)) + np.sum(np.log(mu))))
    if not np.isfinite(phi):
        return None
    return phi, g, x, Qinv


def _newton(H, chat, l, u, lam, mu, t, *, t_min=0.0, max_iter=200, deadline=None, tol=1e-7):
    """Barrier Newton path on ``g + t(log det Q + Σ log θ)`` (data already normalised).

    Starts at ``t`` and shrinks it by 5 whenever a Newton step is small, down to ``t_min`` (or
    until ``3nt <= tol(1 + |g|)``). Returns ``(lam, mu, t, g, x, iterations)`` of the last
    iterate (``g`` uncertified; ``None`` values if the start is outside the domain).
    """
    n = H.shape[0]
    iters = 0
    cur = _eval(H, chat, l, u, lam, mu, t)
    if cur is None:
        return lam, mu, t, None, None, 0
    while iters < max_iter:
        if deadline is not None and time.perf_counter() > deadline:
            break
        phi, g, x, Qinv = cur
        # gradient and Hessian of φ in θ = (λ, μ)
        dQ = np.diag(Qinv)
        gl = x - x * x + t * (-dQ + 1.0 / lam)
        gm = (x - l) * (x - u) + t * (dQ + 1.0 / mu)
        vl = 0.5 - x
        vm = x - 0.5 * (l + u)
        Q2 = Qinv * Qinv
        Hll = -2.0 * np.outer(vl, vl) * Qinv - t * Q2 - t * np.diag(1.0 / lam**2)
        Hmm = -2.0 * np.outer(vm, vm) * Qinv - t * Q2 - t * np.diag(1.0 / mu**2)
        Hlm = -2.0 * np.outer(vl, vm) * Qinv + t * Q2
        A = -np.block([[Hll, Hlm], [Hlm.T, Hmm]])
        grad = np.concatenate([gl, gm])
        ridge = 0.0
        scale_a = float(np.max(np.abs(np.diag(A))))
        for _ in range(8):
            try:
                C = np.linalg.cholesky(A + ridge * np.eye(2 * n))
                break
            except np.linalg.LinAlgError:
                ridge = max(1e-12 * scale_a, 10.0 * ridge)
        else:
            break
        step = np.linalg.solve(C.T, np.linalg.solve(C, grad))
        dec = float(grad @ step)  # Newton decrement²
        iters += 1
        # backtracking line search on φ, staying inside the domain
        s = 1.0
        dl, dm = step[:n], step[n:]
        for _ in range(30):
            nl, nm = lam + s * dl, mu + s * dm
            nxt = _eval(H, chat, l, u, nl, nm, t)
            if nxt is not None and nxt[0] >= phi + 0.25 * s * dec:
                break
            s *= 0.5
        else:
            nxt = None
        done = t * 3 * n < tol * (1.0 + abs(g)) or t <= t_min
        if nxt is None:
            # no progress at this t (rounding level): move on to a smaller one, or stop
            if dec < 1e-12 or done:
                break
            t *= 0.2
            cur = _eval(H, chat, l, u, lam, mu, t)
            continue
        lam, mu, cur = nl, nm, nxt
        if dec < 1e-3 * max(1e-8, t):
            if done:
                break
            t = max(t * 0.2, t_min)
            cur = _eval(H, chat, l, u, lam, mu, t)
    return lam, mu, t, cur[1], cur[2], iters


def maximize_dual(H: np.ndarray, c: np.ndarray, lo: int, hi: int, *,
                  time_limit: float | None = None, max_iter: int = 200,
                  tol: float = 1e-7) -> DualResult:
    """Maximise the Lagrangian dual ``g(λ, μ)`` and return a certified bound.

    Parameters
    ----------
    H : (n, n) symmetric PSD (rank-deficient is fine: ``Q = H + diag(μ − λ)`` is what must be
        positive definite, and the box multipliers ``μ`` make it so).
    c : (n,) target in grid units (``w0 / s``).
    lo, hi : the integer box.
    time_limit : seconds; the multipliers reached when it expires are certified.
    max_iter : Newton steps in all.
    tol : stop when the barrier weight times the number of barrier terms is below
        ``tol·(1 + |g|)``.

    Returns
    -------
    DualResult
        ``bound`` is a proved lower bound on ``min_z (z − c)ᵀH(z − c)`` over the box, up to the
        floating-point analysis of :func:`solvers.quant.sdp.dual_bound`.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> r = maximize_dual(H, np.array([0.5, 0.5]), -2, 1)
    >>> 0.0 < r.bound <= 1.0       # the optimum is 1 (any of (0, 1), (1, 0) … (0, 0): 1.5)
    True
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
    # start inside the domain with Q = Hn − ½λ_min(Hn)·I + εI ≻ 0 and a small box multiplier
    eps = 1e-3
    lmin = max(float(np.linalg.eigvalsh(Hn)[0]), 0.0)
    lam = np.full(n, max(0.5 * lmin, eps))
    mu = lam - 0.5 * lmin + eps
    deadline = None if time_limit is None else t0 + time_limit
    lam, mu, t, g, x, iters = _newton(Hn, chat, l, u, lam, mu, 1e-2, max_iter=max_iter,
                                     deadline=deadline, tol=tol)
    # certify the last iterate (the barrier path's g increases; a 'best g so far' could come
    # from a badly conditioned Q whose computed g is inaccurate)
    bound, shift = dual_bound(H, chat, l, u, lam * tau, mu * tau)
    Q, b, _ = _parts(H, chat, l, u, lam * tau, mu * tau + shift)
    try:
        x = -0.5 * np.linalg.solve(Q, b)
    except np.linalg.LinAlgError:  # pragma: no cover - Q is positive definite after the shift
        x = chat.copy()
    secs = time.perf_counter() - t0
    g = -np.inf if g is None else g * tau
    log.debug("dual n=%d: %d Newton steps, %.3f s, g=%.6g, certified %.6g", n, iters, secs,
              g, bound)
    return DualResult(float(bound), float(g), lam * tau, mu * tau, float(shift), a, x, iters,
                      secs, t)


def certified_root_bound(H: np.ndarray, c: np.ndarray, lo: int, hi: int, *,
                         time_limit: float | None = None) -> tuple[float, DualResult]:
    """Lower bound on ``min (z − c_true)ᵀH(z − c_true)`` over the box, ``c = fl(c_true)``.

    :func:`maximize_dual`'s bound ``B`` is for the target ``ĉ + a`` with ``ĉ = fl(c − a)``;
    the exact target ``c_true = w0/s`` differs from it by at most ``u(|c| + 1)`` entrywise
    (the rounding of ``w0/s`` and of ``c − a``, ``|c − a| <= 1`` inside the box), so (triangle
    inequality in the ``H``-norm, ``‖H^½δ‖ <= √‖H‖_F·‖δ‖``) the bound returned is
    ``(√max(B, 0) − ε)²`` with ``ε = √‖H‖_F·2u(‖c‖ + ‖c − a‖)·(1 + 1e-6)`` (0 when
    negative).

    Returns ``(bound, DualResult)`` in grid units.
    """
    r = maximize_dual(H, c, lo, hi, time_limit=time_limit)
    u = np.finfo(np.float64).eps / 2
    dev = float(np.linalg.norm(c)) + float(np.linalg.norm(c - r.a)) + np.sqrt(c.size)
    eps = np.sqrt(float(np.linalg.norm(H))) * 2.0 * u * dev * (1.0 + 1e-6)
    root = np.sqrt(max(r.bound, 0.0)) - eps
    return (root * root if root > 0.0 else 0.0), r
