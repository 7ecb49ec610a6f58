"""Park & Boyd (2018) SDP relaxation of the quantization problem, with a *certified* bound.

In grid units (``c = w0/s``, ``f(z) = (z − c)ᵀH(z − c)``, error ``= s²f``) shift by the integer
vector ``a = clip(floor(c), zmin, zmax − 1)`` (the floor of the continuous optimum, kept
inside the box): ``x = z − a`` is integer with ``l <= x <= u``, ``l = zmin − a <= 0``,
``u = zmax − a >= 1``, and ``ĉ = c − a``. Every integer ``x`` satisfies ``x_i(x_i − 1) >= 0``
and, on the box, ``(x_i − l_i)(u_i − x_i) >= 0``. Lifting ``Z ≈ xxᵀ`` gives the SDP

    minimize   tr(HZ) − 2(Hĉ)ᵀx + ĉᵀHĉ
    subject to [[Z, x], [xᵀ, 1]] ⪰ 0,   diag(Z) >= x   (λ),
               diag(Z) <= (l + u)∘x − l∘u   (μ)   (the box, RLT form),

solved with cvxpy (Clarabel by default, SCS for large ``n``).

Why the reported bound is valid despite solver tolerances
---------------------------------------------------------
The SDP's optimal value is *not* used. Only its multipliers ``λ, μ >= 0`` are, through weak
Lagrangian duality, which holds for *any* ``λ, μ >= 0``: for every feasible integer ``x``

    f(x) >= L(x) = f(x) − Σλ_i(x_i² − x_i) − Σμ_i((l_i + u_i)x_i − l_iu_i − x_i²)
         = xᵀQx + bᵀx + k,
    Q = H + diag(μ − λ),  b = −2Hĉ + λ − μ∘(l + u),  k = ĉᵀHĉ + Σμ_i l_i u_i,

so ``f* >= min_x L(x) = k − ¼ bᵀQ⁻¹b`` whenever ``Q ≻ 0``. The solver's multipliers are
certified by :func:`solvers.quant.dual_certificate.dual_bound`: negative entries clipped to 0,
``μ`` shifted until ``Q`` is provably positive definite, and ``min L`` bounded from a refined
minimiser evaluated in long double (the cancelling closed form is never used). If the
solver fails, ``λ = μ = 0`` gives the trivial bound 0 (``μ`` is then only the shift).

The upper bound comes from randomized rounding (Park & Boyd): samples ``x ~ N(x̂, Ẑ − x̂x̂ᵀ)``
from the SDP solution, rounded and clipped to the box, each polished by integer 1-opt; the best
of them (and of round-to-nearest + 1-opt) is returned.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..problem import ProblemError, QuantProblem
from ..result import OPTIMALITY_RTOL, SolveResult, Status, relative_gap
from .dual_certificate import dual_bound
from .factor import live_inputs
from .incumbents import objective, one_opt, rtn

log = logging.getLogger(__name__)
_U = np.finfo(np.float64).eps / 2

SOLVERS = ("CLARABEL", "SCS")


def solve_sdp(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    solver: str = "CLARABEL",
    samples: int = 200,
    seed: int = 0,
    verbose: bool = False,
    **options: Any,
) -> SolveResult:
    """SDP lower bound + randomized-rounding upper bound (Park & Boyd 2018).

    Parameters
    ----------
    problem : QuantProblem
    time_limit : float, optional
        Passed to the SDP solver (Clarabel ``time_limit``, SCS ``time_limit_secs``); a stopped
        solve still yields a valid bound from its current multipliers.
    solver : {"CLARABEL", "SCS"}
    samples : int
        Gaussian samples for the randomized rounding.
    seed : int
        Seed of the sampling.

    Returns
    -------
    SolveResult
        ``lower_bound`` certified as described in the module docstring; ``objective`` of the
        best rounded solution. ``info["sdp_value"]`` is the solver's own (uncertified) optimal
        value, ``info["certified_bound"]`` the bound, ``info["shift"]`` the eigenvalue shift.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import QuantProblem
    >>> p = QuantProblem(np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([0.3, -0.7]),
    ...                  scale=0.5, bits=3)
    >>> r = solve_sdp(p)
    >>> r.lower_bound <= r.objective
    True
    """
    import cvxpy as cp

    if options:
        raise ProblemError(f"unknown options for sdp: {sorted(options)}")
    solver = solver.upper()
    if solver not in SOLVERS:
        raise ProblemError(f"sdp solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    t0 = time.perf_counter()
    s, lo, hi = problem.scale, problem.zmin, problem.zmax
    c = problem.w0 / s
    codes = rtn(c, lo, hi)
    idx = np.flatnonzero(live_inputs(problem.H))
    info: dict[str, Any] = {"solver": solver, "dead_inputs": int(problem.n - idx.size)}
    if idx.size == 0:
        w = problem.weights(codes)
        return SolveResult(Status.OPTIMAL, w, problem.error(w), 0.0, problem.norm, "sdp", 0,
                           time.perf_counter() - t0, codes, None, "H is zero", info)
    H = problem.H[np.ix_(idx, idx)]
    cl = c[idx]
    n = idx.size
    a = np.clip(np.floor(cl), lo, max(lo, hi - 1))
    chat = cl - a
    lv, uv = lo - a, hi - a
    tau = max(float(np.trace(H)) / n, np.finfo(float).tiny)
    Hn = H / tau

    X = cp.Variable((n + 1, n + 1), PSD=True)
    Z, x = X[:n, :n], X[:n, n]
    g = Hn @ chat
    obj = cp.trace(Hn @ Z) - 2 * g @ x + float(chat @ Hn @ chat)
    con_int = cp.diag(Z) - x >= 0
    con_box = cp.multiply(lv + uv, x) - cp.multiply(lv, uv) - cp.diag(Z) >= 0
    prob = cp.Problem(cp.Minimize(obj), [X[n, n] == 1, con_int, con_box])
    kw: dict[str, Any] = {}
    if time_limit is not None:
        kw["time_limit" if solver == "CLARABEL" else "time_limit_secs"] = max(0.01, time_limit)
    solver_status = "error"
    try:
        prob.solve(solver=getattr(cp, solver), verbose=verbose, **kw)
        solver_status = str(prob.status)
    except cp.error.SolverError as exc:
        log.warning("SDP solver %s failed (%s); falling back to the trivial bound", solver, exc)
    lam = np.zeros(n) if con_int.dual_value is None else np.asarray(con_int.dual_value) * tau
    mu = np.zeros(n) if con_box.dual_value is None else np.asarray(con_box.dual_value) * tau
    bound, shift = dual_bound(H, chat, lv, uv, lam, mu)
    info.update({"sdp_status": solver_status, "shift": shift,
                 "sdp_value": None if prob.value is None else s * s * tau * float(prob.value)})

    # randomized rounding from the SDP solution
    zl = one_opt(H, cl, rtn(cl, lo, hi), lo, hi)
    best, best_val = zl, objective(H, cl, zl)
    if X.value is not None:
        xv = np.asarray(X.value)
        xh = xv[:n, n]
        cov = xv[:n, :n] - np.outer(xh, xh)
        w_, V = np.linalg.eigh(0.5 * (cov + cov.T))
        F = V * np.sqrt(np.maximum(w_, 0.0))
        rng = np.random.default_rng(seed)
        cand = [np.rint(xh + a)]
        cand += list(np.rint(xh + a + (F @ rng.standard_normal((n, samples))).T))
        seen = set()
        for zc in cand:
            zc = np.clip(zc, lo, hi).astype(np.int64)
            key = zc.tobytes()
            if key in seen:
                continue
            seen.add(key)
            zc = one_opt(H, cl, zc, lo, hi)
            v = objective(H, cl, zc)
            if v < best_val:
                best, best_val = zc, v
    codes[idx] = best
    w = problem.weights(codes)
    err = problem.error(w)
    lower = float(min(s * s * (1.0 - 4 * _U) * max(bound, 0.0), err))
    info["certified_bound"] = s * s * bound
    gap = relative_gap(err, lower)
    if gap is not None and gap <= OPTIMALITY_RTOL:
        status = Status.OPTIMAL
    elif solver_status in ("optimal", "optimal_inaccurate"):
        status = Status.GAP_LIMIT
    else:
        status = Status.TIME_LIMIT if time_limit is not None else Status.GAP_LIMIT
    msg = f"SDP {solver} {solver_status}; bound from its certified dual point"
    return SolveResult(status, w, err, lower, problem.norm, "sdp", int(samples),
                       time.perf_counter() - t0, codes, None, msg, info)
