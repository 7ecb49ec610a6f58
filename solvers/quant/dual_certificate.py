"""A proved lower bound from *any* Lagrange multipliers of the quantization problem.

In shifted grid units (``x = z − a`` integer, ``l <= x <= u``, target ``ĉ``; see
:mod:`solvers.quant.sdp`) every feasible integer ``x`` satisfies

    x_i(x_i − 1) >= 0                     (λ_i >= 0, integrality along e_i)
    (x_i − l_i)(u_i − x_i) >= 0           (μ_i >= 0, the box)
    (w_kᵀx − a_k)(w_kᵀx − a_k − 1) >= 0   (ν_k >= 0, integrality along an integer direction w_k)

(the last because ``w_kᵀx`` is an integer whenever ``w_k`` is an integer vector and ``a_k`` an
integer). So for every feasible ``x``, ``f(x) = (x − ĉ)ᵀH(x − ĉ) >= L(x)`` with

    L(x) = f(x) − Σλ_i x_i(x_i − 1) − Σμ_i(x_i − l_i)(u_i − x_i)
           − Σν_k(w_kᵀx − a_k)(w_kᵀx − a_k − 1),

a quadratic with Hessian ``2Q``, ``Q = H + diag(μ − λ) − WᵀdiagνW``, and ``f* >= min L`` when
``Q ≻ 0`` (weak duality: it holds for *any* multipliers). The directions are what makes the
bound strong on correlated ``H``: a tangent along ``w`` can take a multiplier up to
``1/(wᵀH⁻¹w)``, so short vectors of the dual lattice (not the unit vectors, whose
``(H⁻¹)_ii`` is huge on correlated inputs) carry most of it (:mod:`solvers.quant.lattice_cuts`).

How the bound stays a proof
---------------------------
* Negative multipliers are clipped to 0; ``μ`` is raised by a shift ``t`` until the computed
  smallest eigenvalue of the computed ``Q`` is at least ``2e + 1e-9·tr(H)/n``, where
  ``e = 4n·u·‖Q‖`` bounds the backward error of the symmetric eigensolver.
* ``λ_lo`` = that eigenvalue − ``e`` − the rounding of forming ``Q``: ``2u·max|μ − λ|`` on the
  diagonal and, with directions, ``γ_{m+4}(2‖|W|ᵀdiagν|W|‖_F + ‖H‖_F)`` on every entry. It
  bounds the smallest eigenvalue of the *exact* Hessian from below.
* The closed form ``k − ¼bᵀQ⁻¹b`` is never evaluated (it cancels badly on ill-conditioned
  ``H``). With ``x̃`` the computed minimiser (refined twice) and ``r = ∇L(x̃)``,

      min_x L(x) = L(x̃) − ¼ rᵀQ⁻¹r >= L(x̃) − ‖r‖² / (4 λ_lo),

  where ``L(x̃)`` and ``r`` are evaluated in long double from the definition above, and bounds
  on their rounding are subtracted / added: ``2γ_{n+m+8}`` (long double) times the sums of the
  absolute terms, plus the propagated error of ``y = Wx̃`` (``γ_n·|W||x̃|`` per entry). The last
  rounding to float64 steps one ulp down.
"""

from __future__ import annotations

import numpy as np

_U = np.finfo(np.float64).eps / 2


def _gamma(k: int, u: float) -> float:
    return k * u / (1.0 - k * u)


def _direction_parts(W, nu, n):
    """``(WᵀdiagνW, its forming error bound)`` (zeros without directions)."""
    if W is None or W.shape[0] == 0:
        return np.zeros((n, n)), 0.0
    Wf = W.astype(np.float64)
    G = (Wf.T * nu) @ Wf
    Ga = (np.abs(Wf).T * nu) @ np.abs(Wf)
    return G, float(np.linalg.norm(Ga))


def dual_bound(H: np.ndarray, chat: np.ndarray, l: np.ndarray, u: np.ndarray,
               lam: np.ndarray, mu: np.ndarray, W: np.ndarray | None = None,
               a: np.ndarray | None = None, nu: np.ndarray | None = None
               ) -> tuple[float, float]:
    """Certified ``min_x L(x)`` for multipliers ``lam, mu`` (and ``nu`` on directions ``W``).

    Parameters
    ----------
    H : (n, n) symmetric PSD.
    chat : (n,) shifted target ``ĉ``.
    l, u : (n,) shifted box (integer values).
    lam, mu : (n,) multipliers of ``x_i(x_i − 1) >= 0`` and of the box.
    W : (m, n) int64 directions, optional; ``a`` (m,) their integer tangent points and ``nu``
        (m,) their multipliers.

    Returns
    -------
    (bound, shift)
        A proved lower bound on ``min (x − ĉ)ᵀH(x − ĉ)`` over the integer points of the box
        (exact arithmetic on the float inputs), and what was added to ``mu``.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.eye(2); chat = np.array([0.5, 0.5]); l = np.array([-2.0, -2.0]); u = -l + 1
    >>> b, _ = dual_bound(H, chat, l, u, np.array([1.0, 1.0]), np.zeros(2))
    >>> round(b, 6)   # each coordinate pays (1/2)² at least: 0.25 + 0.25
    0.5
    """
    n = H.shape[0]
    clean = lambda v: np.maximum(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), 0.0)  # noqa: E731
    lam, mu = clean(lam), clean(mu)
    if W is not None and W.shape[0] > 0:
        W = np.asarray(W, dtype=np.int64)
        a = np.asarray(a, dtype=np.float64)
        nu = clean(np.asarray(nu, dtype=np.float64))
    else:
        W = a = nu = None
    G, ga = _direction_parts(W, nu, n)
    floor = 1e-9 * max(float(np.trace(H)) / n, np.finfo(float).tiny)
    shift = 0.0
    for _ in range(5):
        Q = H + np.diag(mu + shift - lam) - G
        Lam = np.linalg.eigvalsh(Q)
        e = 4.0 * n * _U * float(np.max(np.abs(Lam)))
        need = 2.0 * e + floor
        if Lam[0] >= need:
            break
        shift += need - Lam[0]
    mu = mu + shift
    return _certified_min(H, chat, l, u, lam, mu, W, a, nu, G, ga), shift


def _certified_min(H, chat, l, u, lam, mu, W, a, nu, G, ga) -> float:
    """Proved lower bound on ``min_x L(x)`` (module docstring); ``-inf`` if ``Q`` cannot be
    proved positive definite. ``G, ga`` from :func:`_direction_parts`."""
    n = H.shape[0]
    m = 0 if W is None else W.shape[0]
    dq = mu - lam
    Q = H + np.diag(dq) - G
    Lam = np.linalg.eigvalsh(Q)
    lam_lo = (float(Lam[0]) - 4.0 * n * _U * float(np.max(np.abs(Lam)))
              - 2.0 * _U * float(np.max(np.abs(dq))))
    if m:
        lam_lo -= _gamma(m + 4, _U) * (2.0 * ga + float(np.linalg.norm(H)))
    if not lam_lo > 0.0:
        return -np.inf
    ld = np.longdouble
    u_ld = float(np.finfo(ld).eps) / 2
    g = 2.0 * _gamma(n + m + 8, u_ld)
    Hl, cl, lmb, mul = H.astype(ld), chat.astype(ld), lam.astype(ld), mu.astype(ld)
    ll, ul = l.astype(ld), u.astype(ld)
    if m:
        Wl, al, nul = W.astype(ld), a.astype(ld), nu.astype(ld)
        absW = np.abs(Wl)

    def grad(x):
        d = x - cl
        Hd = Hl @ d
        r = 2 * Hd - lmb * (2 * x - 1) - mul * (ll + ul - 2 * x)
        if m:
            r = r - Wl.T @ (nul * (2 * (Wl @ x - al) - 1))
        return d, Hd, r

    # ∇L(x) = 2Qx + b: solve, then refine with long-double residuals
    b = -2.0 * (H @ chat) + lam - mu * (l + u)
    if m:
        b = b + W.astype(np.float64).T @ (nu * (2.0 * a + 1.0))
    try:
        x = np.linalg.solve(Q, -0.5 * b)
        for _ in range(2):
            _, _, r = grad(x.astype(ld))
            x = x - np.linalg.solve(Q, 0.5 * r.astype(np.float64))
    except np.linalg.LinAlgError:  # pragma: no cover - Q was proved positive definite
        return -np.inf
    xl = x.astype(ld)
    d, Hd, r = grad(xl)
    absd = np.abs(d)
    aHd = np.abs(Hl) @ absd
    pen_l = lmb * xl * (xl - 1)
    pen_m = mul * (xl - ll) * (ul - xl)
    Lval = d @ Hd - np.sum(pen_l) - np.sum(pen_m)
    errL = g * (absd @ aHd + np.sum(np.abs(pen_l)) + np.sum(np.abs(pen_m)))
    err_r = g * (2 * aHd + lmb * np.abs(2 * xl - 1) + mul * np.abs(ll + ul - 2 * xl))
    if m:
        yv = Wl @ xl - al
        Y = _gamma(n, u_ld) * (absW @ np.abs(xl))  # rounding of W·x̃ (a is exact)
        pen_w = nul * yv * (yv - 1)
        Lval = Lval - np.sum(pen_w)
        errL = errL + g * np.sum(nul * (np.abs(yv) + 1) ** 2) + np.sum(
            nul * (Y * np.abs(2 * yv - 1) + Y * Y))
        err_r = err_r + g * (absW.T @ (nul * (np.abs(2 * yv - 1)))) + absW.T @ (2 * nul * Y)
    errL = errL + u_ld * abs(Lval)
    rn = float(np.sqrt(np.sum(r * r))) * (1 + 1e-12) + float(np.sqrt(np.sum(err_r * err_r)))
    val = float(Lval - errL) - rn * rn / (4.0 * lam_lo) * (1 + 1e-12)
    # float(Lval − errL) rounds to nearest: step one ulp down
    return float(np.nextafter(val, -np.inf))
