"""The diagonal split re-optimised at a node (``resplit``) against enumeration (n <= 10).

A node's split must satisfy ``S_UU ⪰ D_U`` for the exact Schur complement ``S = H/H_FF``; the
node bounds computed with it must stay below the least error of the node's subtree; and the
solver with re-splitting must return the enumerated optimum with a valid bound, also when a
node or time limit stops it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, brute_force_prune, random_hessian, random_prune_case
from time_budget import ThreadClock

from solvers.problem import ProblemError, PruneProblem
from solvers.prune import kernels
from solvers.prune.bounds import diagonal_split
from solvers.prune.exact import solve_exact, split_tau
from solvers.prune.kernels import node_split, perspective_bound
from solvers.result import Status

from .prune_reference import brute_force_boxed, check_contract
from .test_perspective import _node, _subtree_opt


def _exact_schur(H, F, U):
    """``(H/H_FF)_UU`` from a fresh solve (None when ``H_FF`` is singular)."""
    if len(F) == 0:
        return H[np.ix_(U, U)]
    HFF = H[np.ix_(F, F)]
    if np.linalg.eigvalsh(HFF)[0] <= 1e-10 * max(np.trace(HFF), 1e-300):
        return None
    return H[np.ix_(U, U)] - H[np.ix_(U, F)] @ np.linalg.solve(HFF, H[np.ix_(F, U)])


def _random_node(rng, H):
    n = H.shape[0]
    lab = rng.integers(0, 3, n)
    return np.flatnonzero(lab == 1), np.flatnonzero(lab == 2)


@pytest.mark.parametrize("kind", KINDS)
def test_node_split_is_certified_and_bounds_stay_valid(kind):
    """The re-optimised split fits under the exact Schur complement, and the perspective
    bound (and its per-variable children bounds) computed with it never exceed the subtree's
    enumerated optimum."""
    rng = np.random.default_rng(200 + KINDS.index(kind))
    checked = improved = 0
    for _ in range(40):
        n = int(rng.integers(3, 10))
        k = int(rng.integers(1, n))
        H = random_hessian(rng, n, kind)
        w0 = rng.standard_normal(n)
        alive = np.diag(H) > 0
        d = diagonal_split(H, w0, alive, n - k, "logdet")
        F, P = _random_node(rng, H)
        if len(F) > k:
            continue
        node = _node(H, w0, F, P)
        if node is None:
            continue
        S, w, e, st_ = node
        U = np.flatnonzero(st_ == kernels.UNDECIDED)
        Sx = _exact_schur(H, F, U)
        if Sx is None or len(U) < 2:
            continue
        dn = np.zeros(n)
        ok = node_split(S, st_, d, dn, split_tau(n, 1e3), 3)
        if not ok:
            assert np.array_equal(dn, d)
            continue
        checked += 1
        improved += bool(np.sum(np.log(dn[U] + 1e-300)) > np.sum(np.log(d[U] + 1e-300)))
        lam = np.linalg.eigvalsh(Sx - np.diag(dn[U]))[0]
        assert lam >= -1e-12 * max(np.max(np.diag(Sx)), 1e-300), lam
        mkeep = np.array([k - len(F)], dtype=np.int64)
        sal = np.full(n, -np.inf)
        kb = np.full(n, -np.inf)
        pb = perspective_bound(S, w, e, st_, mkeep, n, dn, np.zeros(n), 8, np.inf, sal, kb)
        opt = _subtree_opt(H, w0, k, n, st_)
        tol = 1e-9 * max(float(w0 @ H @ w0), 1e-300) + 1e-9 * abs(opt)
        assert pb <= opt + tol, (pb, opt)
        for j in U:
            if np.isfinite(sal[j]):
                assert sal[j] <= _subtree_opt(H, w0, k, n, st_, (j, False)) + tol
            if np.isfinite(kb[j]) and mkeep[0] > 0:
                assert kb[j] <= _subtree_opt(H, w0, k, n, st_, (j, True)) + tol
    assert checked > 0
    if kind != "diag":  # a diagonal H is its own best split: nothing to improve
        assert improved > 0


@pytest.mark.parametrize("resplit", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_solver_with_resplit_matches_enumeration(kind, resplit):
    """Unboxed, boxed and N:M problems, the log-det split re-optimised every ``resplit``
    decisions, and the automatic schedule switching after one node."""
    rng = np.random.default_rng(300 + KINDS.index(kind) + 10 * resplit)
    for t in range(12):
        p = random_prune_case(rng, kind, t)
        opt, _ = brute_force_prune(p)
        for diagonal in ("logdet", "jacobi"):
            r = solve_exact(p, incumbents=False, diagonal=diagonal, resplit=resplit)
            check_contract(p, r, opt)
            assert r.objective <= opt + 1e-7 * max(p.norm, 1e-300)
            assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)
        boxed = PruneProblem(p.H, p.w0, k=max(1, p.n // 3), box_factor=1.0)
        rb = solve_exact(boxed, incumbents=False, diagonal="logdet", resplit=resplit)
        check_contract(boxed, rb, brute_force_boxed(boxed)[0])


def test_auto_schedule_with_resplit(monkeypatch):
    from solvers.prune import exact

    monkeypatch.setattr(exact, "AUTO_SWITCH_NODES", 1)
    rng = np.random.default_rng(5)
    for kind in KINDS:
        n = 10
        p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n), k=3)
        opt, _ = brute_force_prune(p)
        for resplit, used in ((1, 1), (None, exact.AUTO_RESPLIT), (0, 0)):
            r = solve_exact(p, incumbents=False, resplit=resplit)
            check_contract(p, r, opt)
            assert r.objective <= opt + 1e-7 * max(p.norm, 1e-300)
            if len(r.info["phases"]) == 2:  # the default re-splits in the perspective phase
                assert r.info["phases"][1]["resplit"] == used


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 9), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), resplit=st.integers(1, 4),
       node_limit=st.sampled_from([1, 3, 10, None]))
def test_lower_bound_never_above_the_optimum(n, kind, seed, scale, resplit, node_limit):
    rng = np.random.default_rng(seed)
    p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n) * scale,
                     k=int(rng.integers(0, n + 1)))
    opt, _ = brute_force_prune(p)
    r = solve_exact(p, diagonal="logdet", resplit=resplit, node_limit=node_limit,
                    incumbents=bool(seed % 2))
    check_contract(p, r, opt)
    assert r.lower_bound <= opt + 1e-9 * max(p.norm, 1e-300) + 1e-9 * opt


def test_time_limit_respected_with_resplit():
    rng = np.random.default_rng(0)
    p = PruneProblem(random_hessian(rng, 40, "corr"), rng.standard_normal(40), k=10)
    with ThreadClock() as clock:
        r = solve_exact(p, time_limit=0.3, resplit=2)
    assert clock.seconds < 0.3 + 1.5  # incumbents + one kernel chunk past the limit (CPU time)
    check_contract(p, r)
    if r.status is Status.TIME_LIMIT:
        assert "time limit" in r.message


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_resplit(bad):
    p = PruneProblem(np.eye(3), np.ones(3), k=1)
    with pytest.raises(ProblemError, match="resplit"):
        solve_exact(p, resplit=bad)
