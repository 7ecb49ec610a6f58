"""Invariants of the exact pruning solver (hypothesis), limits, bad input, the registry path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, brute_force_prune, random_hessian
from time_budget import ThreadClock

from solvers import solve
from solvers.problem import ProblemError, PruneProblem
from solvers.prune.exact import solve_exact
from solvers.prune.incumbents import find_incumbents
from solvers.result import Status

from .prune_reference import check_contract


@st.composite
def problems(draw, max_n=9):
    n = draw(st.integers(2, max_n))
    kind = draw(st.sampled_from(KINDS))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    k = draw(st.integers(0, n))
    box = draw(st.sampled_from([None, None, 1.0, 2.0]))
    return PruneProblem(H, w0, k=k, box_factor=box)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_contract_and_heuristics_never_beat_the_bound(p):
    r = solve_exact(p)
    check_contract(p, r)
    assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)
    # every heuristic's solution is feasible, hence no better than the certified bound
    alive = np.diag(p.H) > 0
    for inc in find_incumbents(p, alive):
        assert inc.value >= r.lower_bound - 1e-9 * max(p.norm, 1e-300)
        assert inc.value >= r.objective - 1e-7 * max(p.norm, 1e-300) or p.box is not None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_n=8), st.integers(0, 2**31 - 1))
def test_invariant_under_permutation_and_scaling(p, seed):
    """Relabelling the inputs and scaling H (and w0) move the optimum as the math says."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(p.n)
    a, b = 3.0, 0.5
    q = PruneProblem(a * p.H[np.ix_(perm, perm)], b * p.w0[perm], k=p.k,
                     box_factor=p.box_factor)
    r, s = solve_exact(p), solve_exact(q)
    scale = a * b * b
    tol = 1e-7 * max(p.norm, 1e-300) * scale
    assert abs(s.objective - scale * r.objective) <= tol + 1e-6 * scale * r.objective


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 4)]))
def test_nm_is_never_better_than_unstructured(seed, nm):
    """N:M is a restriction of unstructured pruning at the same density."""
    rng = np.random.default_rng(seed)
    n = 8
    H, w0 = random_hessian(rng, n, "corr"), rng.standard_normal(n)
    structured = solve_exact(PruneProblem(H, w0, nm=nm))
    free = solve_exact(PruneProblem(H, w0, k=n * nm[0] // nm[1]))
    N, M = nm
    assert np.all(structured.mask.reshape(-1, M).sum(axis=1) <= N)
    assert structured.objective >= free.lower_bound - 1e-9 * max(free.norm, 1e-300)


def _hard(n=40, k=10, seed=0):
    rng = np.random.default_rng(seed)
    return PruneProblem(random_hessian(rng, n, "ill"), rng.standard_normal(n), k=k)


def test_time_limit_respected_and_bound_valid():
    p = _hard()
    with ThreadClock() as clock:
        r = solve_exact(p, time_limit=0.3)
    assert r.status is Status.TIME_LIMIT
    assert clock.seconds < 0.3 + 1.5  # incumbents + one kernel chunk past the limit (CPU time)
    check_contract(p, r)
    assert r.lower_bound is not None and r.lower_bound <= r.objective
    assert "time limit" in r.message


def test_node_limit_bound_below_the_optimum():
    rng = np.random.default_rng(11)
    p = PruneProblem(random_hessian(rng, 18, "corr"), rng.standard_normal(18), k=6)
    full = solve_exact(p)
    assert full.status is Status.OPTIMAL
    for limit in (1, 10, 100):
        r = solve_exact(p, node_limit=limit)
        if r.status is Status.NODE_LIMIT:
            assert r.nodes <= limit
        assert r.lower_bound <= full.objective * (1 + 1e-9)
        assert r.objective >= full.lower_bound * (1 - 1e-9)


def test_registry_entry_and_info():
    rng = np.random.default_rng(1)
    p = PruneProblem(random_hessian(rng, 10, "well"), rng.standard_normal(10), k=4)
    r = solve(p, "exact")
    assert r.method == "exact" and r.status is Status.OPTIMAL
    assert 0.0 <= r.info["root_bound"] <= r.objective
    assert set(r.info["incumbents"]) >= {"magnitude", "obs", "sparsegpt"}
    assert r.to_dict()["mask"] == [bool(m) for m in r.mask]


def test_bad_input():
    H = np.eye(4)
    with pytest.raises(ProblemError):
        PruneProblem(H, np.ones(4), k=5)
    with pytest.raises(ProblemError):
        PruneProblem(H, np.ones(4), k=-1)
    with pytest.raises(ProblemError):
        PruneProblem(H, np.ones(4), nm=(2, 3))
    with pytest.raises(ProblemError):
        PruneProblem(H, np.array([1.0, np.nan, 0.0, 1.0]), k=2)
    with pytest.raises(ProblemError):
        PruneProblem.from_density(H, np.ones(4), 1.5)
    with pytest.raises(ProblemError):
        solve_exact(PruneProblem(H, np.ones(4), k=2), time_limit=-1)
    with pytest.raises(ProblemError):
        solve_exact(PruneProblem(H, np.ones(4), k=2), bogus=1)


def test_nm_reports_unstructured_beside():
    rng = np.random.default_rng(8)
    p = PruneProblem(random_hessian(rng, 12, "corr"), rng.standard_normal(12), nm=(2, 4))
    r = solve_exact(p, compare_unstructured=True)
    u = r.info["unstructured"]
    assert u["status"] == "optimal"
    assert u["objective"] <= r.objective * (1 + 1e-9)
    assert u["lower_bound"] <= r.objective


@pytest.mark.parametrize("n,box", [(8, None), (24, None), (40, 2.0)])
def test_tiny_time_limit_gives_a_valid_result(n, box):
    # validity only under a 1 ms limit (wall time: benchmarks/time_limits.py)
    rng = np.random.default_rng(37)
    p = PruneProblem(random_hessian(rng, n, "corr"), rng.standard_normal(n), k=n // 4,
                     box_factor=box)
    r = solve_exact(p, time_limit=1e-3)
    assert r.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert r.lower_bound is not None and 0.0 <= r.lower_bound <= r.objective
    assert r.objective == p.error(r.weights)
    assert int(r.mask.sum()) <= p.k and np.all(r.weights[~r.mask] == 0.0)
    if n <= 8:
        assert r.lower_bound <= brute_force_prune(p)[0] * (1 + 1e-12)
