"""The Shor (lifted) SDP of ``benchmarks/prune_root_sdp.py`` (columns ``shor``, ``shor+``).

It is a measurement (uncertified), but it claims to be a relaxation at least as strong as the
optimal-diagonal perspective SDP. Checked here: every constraint holds at the lifted point
``vvᵀ`` of every mask (so none cuts off a feasible point), the value lies between
``perspective_sdp``'s and the optimum over all masks, and it is strictly stronger (up to exact)
on some problems, so an over-tight constraint would show as a value above the optimum.
"""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest

from solvers.problem import PruneProblem
from solvers.prune.refit import refit
from tests.benchmark_scripts import load_benchmark

prs = load_benchmark("prune_root_sdp")


def _problem(kind: str, seed: int, n: int):
    """``(H, w0)``: ``factor`` (one common factor, condition ~10²), ``near-null`` (the same
    with a near-null direction spread over every input, condition ~10³, then a random
    diagonal scaling), ``wide`` (independent inputs of unequal scales)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3 * n, n))
    if kind != "wide":
        X = X + 1.5 * rng.standard_normal((3 * n, 1))
    H = X.T @ X
    if kind == "near-null":
        v = rng.uniform(0.5, 1.5, n) * rng.choice([-1.0, 1.0], n)
        v /= np.linalg.norm(v)
        P = np.eye(n) - np.outer(v, v)
        H = P @ H @ P + 3e-3 * np.trace(H) / n * np.outer(v, v)
        s = rng.uniform(0.3, 3.0, n)
        H = H * np.outer(s, s)
    elif kind == "wide":
        s = rng.uniform(0.3, 3.0, n)
        H = H * np.outer(s, s)
    return (H + H.T) / 2, rng.standard_normal(n)


def _optimum(H, w0, k):
    """The least error over every mask keeping ``k`` (the project's refit)."""
    p = PruneProblem(H, w0, k=k)
    n = len(w0)
    return min(refit(p, np.isin(np.arange(n), S))[1]
               for S in itertools.combinations(range(n), k))


def _violation(cons) -> float:
    return max(float(np.max(np.abs(c.violation()))) for c in cons)


@pytest.mark.parametrize("exact_k", [False, True])
def test_every_row_holds_at_every_lifted_mask(exact_k):
    """``shor_rows`` at ``Y = vvᵀ``, ``v = [1; x; z]``, for every support ``z`` and a random
    ``x`` on it: with at most ``k`` kept (every size up to ``k``), or exactly ``k``."""
    rng = np.random.default_rng(0)
    n, k = 6, 3
    for q in ([k] if exact_k else range(k + 1)):
        for S in itertools.combinations(range(n), q):
            z = np.isin(np.arange(n), S).astype(float)
            x = rng.standard_normal(n) * z
            U, Z = np.outer(x, z), np.outer(z, z)
            cons = prs.shor_rows(*map(cp.Constant, (x, z, U, Z)), k, exact_k)
            assert _violation(cons) <= 1e-12
    # and the parametrisation of exact_k (x = U·1/k, z = Z·1/k) is the lifted point's
    assert np.allclose(U.sum(1) / k, x) and np.allclose(Z.sum(1) / k, z)


def test_rows_cut_off_what_is_not_a_mask():
    """The rows are not vacuous: a fractional ``z`` with ``Z = zzᵀ`` (McCormick, ``diag(Z) =
    z``), too many kept (the cardinality row) and ``x`` off the support (``diag(U) = x``)."""
    n, k = 5, 2
    z = np.r_[1.0, 1.0, 0.0, 0.0, 0.0]
    x = np.r_[0.5, -1.0, 0.0, 0.0, 0.0]
    for bad in ({"z": np.full(n, 0.4)}, {"z": np.r_[1.0, 1.0, 1.0, 0.0, 0.0]},
                {"x": np.r_[0.5, -1.0, 0.3, 0.0, 0.0]}):
        xb, zb = bad.get("x", x), bad.get("z", z)
        for exact_k in (False, True):
            cons = prs.shor_rows(*map(cp.Constant, (xb, zb, np.outer(xb, zb),
                                                     np.outer(zb, zb))), k, exact_k)
            assert _violation(cons) > 0.1


def _check(kind, seed, n, ks):
    """Between ``perspective_sdp`` and the optimum (tolerance relative to ``w0ᵀHw0``, the
    SDPs' scale); returns ``(shor − persp) / optimum`` per ``k``."""
    H, w0 = _problem(kind, seed, n)
    tol = 5e-5 * float(w0 @ H @ w0)
    gains = []
    for k in ks:
        opt = _optimum(H, w0, k)
        persp = prs.perspective_sdp(H, w0, k)
        shor = prs.shor_sdp(H, w0, k)[0]
        plus = prs.shor_sdp(H, w0, k, exact_k=True)[0]
        assert persp <= opt + tol
        assert shor <= opt + tol, (k, shor, opt)
        assert plus <= opt + tol, (k, plus, opt)
        assert shor >= persp - tol, (k, shor, persp)
        assert plus >= shor - tol, (k, plus, shor)
        gains.append((shor - persp) / opt)
    return gains


@pytest.mark.parametrize("kind", ["factor", "near-null", "wide"])
def test_between_perspective_and_optimum(kind):
    gains = _check(kind, 0, 7, (1, 3))
    # strictly stronger somewhere, so that a wrong (too tight) row would show above the optimum
    assert max(gains) > 0.02


def test_exact_where_the_perspective_is_not():
    """A problem where the Shor SDP reaches the optimum and the perspective SDP stays 3 %
    below: any row that cut off the optimal mask would show here as a value above it."""
    H, w0 = _problem("factor", 3, 7)
    opt, tol = _optimum(H, w0, 2), 5e-5 * float(w0 @ H @ w0)
    assert prs.perspective_sdp(H, w0, 2) < 0.98 * opt
    for exact_k in (False, True):
        assert abs(prs.shor_sdp(H, w0, 2, exact_k=exact_k)[0] - opt) <= tol


def test_exact_k_where_shor_keeps_less_than_k():
    """``shor+`` equals ``shor`` where ``shor``'s optimum keeps ``Σ z = k`` (module docstring);
    here it keeps 3.89 of 4 and ``shor+`` is strictly higher, still below the optimum."""
    H, w0 = _problem("near-null", 1, 8)
    opt, tol = _optimum(H, w0, 4), 5e-5 * float(w0 @ H @ w0)
    shor, plus = prs.shor_sdp(H, w0, 4)[0], prs.shor_sdp(H, w0, 4, exact_k=True)[0]
    assert plus > 1.02 * shor and plus <= opt + tol


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", ["factor", "near-null", "wide"])
def test_between_perspective_and_optimum_more(kind, seed):
    _check(kind, seed, 8, (1, 2, 4, 6))


def test_exact_on_a_diagonal_H():
    """With ``H`` diagonal the problem keeps the ``k`` largest ``h_jj w0_j²``; the Shor SDP
    (like the perspective one) is exact there. (The optimum is a vertex where the interior
    point solver may stall just short of its tolerances: ``accurate`` is not asserted.)"""
    H = np.diag([3.0, 1.0, 2.0, 0.5, 4.0, 1.5])
    w0 = np.array([1.0, -2.0, 0.5, 3.0, -0.7, 1.2])
    for k in (1, 2, 4):
        opt, tol = _optimum(H, w0, k), 5e-5 * float(w0 @ H @ w0)
        for exact_k in (False, True):
            assert abs(prs.shor_sdp(H, w0, k, exact_k=exact_k)[0] - opt) <= tol
