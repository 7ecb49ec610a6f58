"""The exact pruning solver against enumeration of every mask (n <= 12)."""

from __future__ import annotations

import numpy as np
import pytest
from problem_instances import KINDS, brute_force_prune, random_hessian, refit_error

from solvers.problem import PruneProblem
from solvers.prune.exact import solve_exact
from solvers.result import Status

from .prune_reference import brute_force_boxed, check_contract

OK = (Status.OPTIMAL, Status.GAP_LIMIT)  # GAP_LIMIT only with the ill-conditioning message


def _assert_solved(p, r, opt):
    check_contract(p, r, opt)
    tol = 1e-7 * max(p.norm, 1e-300)
    assert r.objective <= opt + tol, (r.objective, opt)
    assert r.status in OK
    if r.status is Status.GAP_LIMIT:
        assert "ill-conditioned" in r.message and r.gap < 1e-6
    # the weights are the exact unboxed refit on the returned mask
    if p.box is None:
        ref, _ = refit_error(p.H, p.w0, r.mask)
        assert abs(r.objective - ref) <= tol


@pytest.mark.parametrize("kind", KINDS)
def test_unstructured_matches_enumeration(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    for _ in range(50):
        n = int(rng.integers(1, 11))
        k = int(rng.integers(0, n + 1))
        p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n), k=k)
        opt, _ = brute_force_prune(p)
        _assert_solved(p, solve_exact(p), opt)


@pytest.mark.parametrize("kind", ["well", "corr", "ill"])
def test_n12_matches_enumeration(kind):
    rng = np.random.default_rng(12)
    for k in (3, 6, 9):
        p = PruneProblem(random_hessian(rng, 12, kind), rng.standard_normal(12), k=k)
        opt, _ = brute_force_prune(p)
        _assert_solved(p, solve_exact(p), opt)


@pytest.mark.parametrize("nm", [(1, 2), (2, 4), (1, 4), (3, 4), (2, 6), (1, 3)])
@pytest.mark.parametrize("kind", KINDS)
def test_nm_matches_enumeration(nm, kind):
    rng = np.random.default_rng(7 * nm[0] + nm[1])
    N, M = nm
    for n in (M, 2 * M, 12 if 12 % M == 0 else 2 * M):
        p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n), nm=nm)
        opt, _ = brute_force_prune(p)
        r = solve_exact(p)
        _assert_solved(p, r, opt)
        assert np.all(r.mask.reshape(-1, M).sum(axis=1) <= N)


def _boxed_case(rng, kind, c, n_lo):
    """A random boxed problem of ``n_lo..8`` inputs and its optimum by enumeration."""
    n = int(rng.integers(n_lo, 8))
    p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n),
                     k=int(rng.integers(1, n)), box_factor=c)
    return p, brute_force_boxed(p)[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_boxed_matches_enumeration(kind, c):
    rng = np.random.default_rng(int(10 * c) + len(kind))
    for _ in range(6):
        p, opt = _boxed_case(rng, kind, c, 2)
        r = solve_exact(p)
        check_contract(p, r, opt, rtol=1e-6)
        assert r.objective <= opt + 1e-6 * p.norm
        assert r.info["formulation"] == "boxed"


def test_dead_inputs_are_pruned_for_free():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 8))
    X[:, [1, 5]] = 0.0  # inputs that never fire
    p = PruneProblem(X.T @ X, rng.standard_normal(8), k=4)
    r = solve_exact(p)
    opt, _ = brute_force_prune(p)
    _assert_solved(p, r, opt)
    assert not r.mask[1] and not r.mask[5]
    assert r.info["dead_inputs"] == 2


def test_rank_deficient_k_at_least_rank_is_zero():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 9))  # rank 3
    p = PruneProblem(X.T @ X, rng.standard_normal(9), k=4)
    r = solve_exact(p)
    assert r.status is Status.OPTIMAL
    assert r.objective <= 1e-12 * p.norm
    assert r.lower_bound == 0.0 or r.lower_bound <= r.objective


def test_trivial_budgets():
    rng = np.random.default_rng(5)
    H = random_hessian(rng, 6, "well")
    w0 = rng.standard_normal(6)
    r0 = solve_exact(PruneProblem(H, w0, k=0))
    assert r0.mask.sum() == 0 and np.isclose(r0.objective, w0 @ H @ w0)
    assert r0.status is Status.OPTIMAL
    rn = solve_exact(PruneProblem(H, w0, k=6))
    assert rn.objective == pytest.approx(0.0, abs=1e-12) and rn.status is Status.OPTIMAL


def test_status_agrees_with_gap_on_tiny_rank_deficient_problems():
    # OPTIMAL exactly when the reported gap (against the norm where the error is near zero)
    # is within the tolerance; never GAP_LIMIT with a gap of 1.0 at a near-zero error
    from solvers.result import OPTIMALITY_RTOL

    rng = np.random.default_rng(23)
    for _ in range(60):
        n = int(rng.integers(2, 11))
        p = PruneProblem(random_hessian(rng, n, "rankdef"), rng.standard_normal(n),
                         k=int(rng.integers(0, n + 1)))
        r = solve_exact(p)
        opt, _ = brute_force_prune(p)
        assert (r.status is Status.OPTIMAL) == (r.gap <= OPTIMALITY_RTOL), (r.status, r.gap)
        _assert_solved(p, r, opt)


@pytest.mark.parametrize("factor", [1e300, 1e-300])
def test_badly_scaled_h_is_normalised(factor):
    rng = np.random.default_rng(29)
    H = random_hessian(rng, 12, "corr")
    w0 = rng.standard_normal(12)
    ref = solve_exact(PruneProblem(H, w0, k=5))
    q = PruneProblem(H * factor, w0, k=5)
    r = solve_exact(q, node_limit=10 * max(ref.nodes, 1000))
    assert r.status is Status.OPTIMAL and r.info["h_exponent"] != 0
    np.testing.assert_array_equal(r.mask, ref.mask)
    assert r.objective == q.error(r.weights) and r.lower_bound <= r.objective
    assert r.objective == pytest.approx(factor * ref.objective, rel=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("c", [0.3, 0.6, 2.0])
def test_box_screen_matches_enumeration_both_ways(kind, c):
    """The unboxed relaxation's answer (screen ``inside``) and the boxed search after it
    (``outside``/``open``, the better bound) are the boxed optimum; the same without the
    screen. ``c = 0.3`` makes the box active on most rows, ``2.0`` on few."""
    rng = np.random.default_rng(int(100 * c) + 7 * len(kind))
    seen = set()
    for _ in range(8):
        p, opt = _boxed_case(rng, kind, c, 3)
        for screen in (True, False):
            r = solve_exact(p, box_screen=screen)
            check_contract(p, r, opt, rtol=1e-6)
            assert r.objective <= opt + 1e-6 * p.norm
            assert r.info["formulation"] == "boxed"
            assert ("box_screen" in r.info) == screen
            if screen:
                seen.add(r.info["box_screen"])
                if r.info["box_screen"] == "inside":
                    assert np.all(np.abs(r.weights) <= p.box)
    if c == 0.3:
        assert "outside" in seen  # the fallback ran somewhere


def test_box_screen_fallback_bound_is_the_better_one():
    """A box active at the optimum: the relaxation's solution is outside, the boxed search
    runs under a node limit, and the reported bound is at least the relaxation's."""
    rng = np.random.default_rng(11)
    X = np.cumsum(rng.standard_normal((40, 10)), axis=1)
    p = PruneProblem(X.T @ X, rng.standard_normal(10), k=4, box_factor=0.25)
    r = solve_exact(p, node_limit=3)
    assert r.info["box_screen"] == "outside"
    assert r.lower_bound >= min(r.info["screen_lower_bound"], r.objective)
    assert r.lower_bound <= brute_force_boxed(p)[0] + 1e-9 * p.norm
