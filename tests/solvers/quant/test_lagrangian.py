"""Our own Lagrangian (SDP-dual) bound: never above the optimum, close to the SDP's value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, brute_force_quant, random_quant_problem
from time_budget import ThreadClock

from solvers import QuantProblem, Status
from solvers.quant.exact import solve_exact
from solvers.quant.lagrangian import certified_root_bound, maximize_dual


def _check_root_bound(rng, trials, kind):
    for trial in range(trials):
        bits, n = [(2, 6), (3, 4), (4, 3), (1, 8), (2, 5)][trial % 5]
        p = random_quant_problem(rng, n, bits, kind, outside=trial % 2 == 0)
        opt, _ = brute_force_quant(p)
        b, r = certified_root_bound(p.H, p.w0 / p.scale, p.zmin, p.zmax)
        assert p.scale**2 * b <= opt, (b, opt)
        # the search forced to a stop with the bound on (any n) stays valid too
        e = solve_exact(p, node_limit=3, lagrangian=True)
        assert e.lower_bound <= opt
        assert e.objective >= opt * (1 - 1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_root_bound_below_brute_force(kind):
    _check_root_bound(np.random.default_rng(310 + KINDS.index(kind)), 12, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_root_bound_below_brute_force_many(kind):
    _check_root_bound(np.random.default_rng(910 + KINDS.index(kind)), 100, kind)


def test_rank_deficient_stays_exact():
    """No damping: a rank-one H (Q made definite by the box multipliers only)."""
    rng = np.random.default_rng(9)
    for _ in range(15):
        x = rng.standard_normal(6)
        p = QuantProblem(np.outer(x, x), 3.0 * rng.standard_normal(6), scale=0.4, bits=2)
        opt, _ = brute_force_quant(p)
        b, _ = certified_root_bound(p.H, p.w0 / p.scale, p.zmin, p.zmax)
        assert p.scale**2 * b <= opt + 1e-15 * p.norm


def test_matches_cvxpy_sdp_value():
    pytest.importorskip("cvxpy")
    from solvers.quant.sdp import solve_sdp

    rng = np.random.default_rng(4)
    for kind in ("well", "corr"):
        p = random_quant_problem(rng, 16, 3, kind)
        r = maximize_dual(p.H, p.w0 / p.scale, p.zmin, p.zmax)
        sdp = solve_sdp(p, samples=1).info["sdp_value"] / p.scale**2
        assert r.bound == pytest.approx(sdp, rel=1e-3)
        assert r.bound <= sdp * (1 + 1e-6)


def test_time_limit_of_the_dual():
    rng = np.random.default_rng(5)
    p = random_quant_problem(rng, 96, 4, "corr")
    with ThreadClock() as clock:
        r = maximize_dual(p.H, p.w0 / p.scale, p.zmin, p.zmax, time_limit=0.05)
    assert clock.seconds < 1.0  # CPU time: never more than the wall time, whatever the load
    assert np.isfinite(r.bound)


def test_exact_uses_it_on_a_limit_and_bounds_agree():
    """A node limit (deterministic, unlike a time limit under load): the plain Lagrangian bound
    is computed to convergence and beats the depth-first search's own bound at n = 64."""
    rng = np.random.default_rng(6)
    p = random_quant_problem(rng, 64, 4, "corr")
    r = solve_exact(p, node_limit=20_000)
    assert r.status is Status.NODE_LIMIT
    assert r.info["lagrangian_bound"] > r.info["search_bound"]
    assert r.lower_bound == min(r.info["lagrangian_bound"], r.objective)
    off = solve_exact(p, node_limit=20_000, lagrangian=False)
    assert "lagrangian_bound" not in off.info
    assert off.lower_bound == r.info["search_bound"]
    with pytest.raises(ValueError):
        solve_exact(p, lagrangian="yes")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), bits=st.integers(1, 3),
       rows=st.integers(1, 8), spread=st.floats(0.1, 10.0))
def test_root_bound_property(seed, n, bits, rows, spread):
    """Any small problem: the root bound and a stopped search with it stay below the optimum."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n)) * rng.uniform(0.01, 1.0, n)
    p = QuantProblem(X.T @ X, spread * rng.standard_normal(n), scale=0.5, bits=bits)
    opt, _ = brute_force_quant(p)
    b, _ = certified_root_bound(p.H, p.w0 / p.scale, p.zmin, p.zmax)
    assert p.scale**2 * b <= opt + 1e-15 * p.norm
    r = solve_exact(p, node_limit=2, lagrangian=True)
    assert r.lower_bound <= opt + 1e-15 * p.norm
    assert r.lower_bound <= r.objective
