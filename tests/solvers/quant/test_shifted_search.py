"""The re-centred search (box relaxation + KKT penalties): exact against brute force, bound
never above the optimum, and against an independent solver where the box binds at 8 bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, brute_force_quant, random_hessian, rounding_tol

from solvers import QuantProblem, Status, solve
from solvers.quant.exact import solve_exact
from solvers.quant.factor import ordered_cholesky
from solvers.quant.incumbents import rtn
from solvers.quant.ordering import order_variables
from solvers.quant.shifted_search import ShiftedSearch, box_relaxation
from solvers.registry import get_method

from .test_exact import _check_against_brute


def _clipped_problem(rng, n, bits, kind, spread=1.6):
    """A problem whose box binds: the scale clips the largest weights (targets up to
    ``spread`` times past the box end), as a clipping scale does at 8 bits."""
    w0 = rng.standard_normal(n)
    hi = 2 ** (bits - 1) - 1
    s = float(np.max(np.abs(w0))) / (spread * hi)
    return QuantProblem(random_hessian(rng, n, kind), w0, scale=s, bits=bits)


def _shifted(p: QuantProblem) -> ShiftedSearch | None:
    c = p.w0 / p.scale
    order = order_variables(p.H, c, p.zmin, p.zmax, "box")
    R, rank = ordered_cholesky(p.H[np.ix_(order, order)], None)
    if rank < p.n:
        return None
    return ShiftedSearch.build(p.H, c, R, order, p.zmin, p.zmax, rtn(c, p.zmin, p.zmax))


@pytest.mark.parametrize("bits,n", [(2, 7), (3, 5), (4, 4), (8, 2)])
@pytest.mark.parametrize("kind", KINDS)
def test_solve_with_recentring_matches_brute_force(kind, bits, n):
    rng = np.random.default_rng(31 * bits + n + 7 * KINDS.index(kind))
    for _ in range(6):
        p = _clipped_problem(rng, n, bits, kind)
        _check_against_brute(p, solve_exact(p, recentre=True, reduction=False))
        _check_against_brute(p, solve_exact(p, recentre=True, reduction=True))


@pytest.mark.parametrize("kind", ["well", "ill", "corr", "diag"])
def test_shifted_search_alone_is_exact(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    built = 0
    for _ in range(30):
        n = int(rng.integers(2, 6))
        bits = int(rng.integers(2, 5))
        p = _clipped_problem(rng, n, bits, kind, spread=float(rng.uniform(1.0, 3.0)))
        sh = _shifted(p)
        if sh is None:
            continue
        built += 1
        while not sh.done:
            sh.step(10_000)
        opt, _ = brute_force_quant(p)
        z = sh.codes
        assert np.all(z >= p.zmin) and np.all(z <= p.zmax)
        val = p.error(p.weights(z))
        tol = rounding_tol(p.H, p.w0, p.weights(z))
        assert abs(val - opt) <= tol + 1e-9 * opt
        assert p.scale ** 2 * sh.bound() <= opt + tol
        assert p.scale ** 2 * sh.bound() >= opt * (1 - 1e-6) - tol
    assert built >= 15


def test_not_built_when_the_box_does_not_bind():
    rng = np.random.default_rng(3)
    H = random_hessian(rng, 6, "well")
    c = rng.uniform(-2.0, 2.0, 6)  # the relaxation's minimiser c lies inside [-8, 7]
    R, _ = ordered_cholesky(H, np.arange(6))
    assert ShiftedSearch.build(H, c, R, np.arange(6), -8, 7, rtn(c, -8, 7)) is None


def test_box_relaxation_satisfies_kkt():
    rng = np.random.default_rng(4)
    for kind in ("well", "ill", "corr"):
        H = random_hessian(rng, 12, kind)
        c = rng.uniform(-20, 20, 12)
        x = box_relaxation(H, c, -8.0, 7.0)
        g = H @ (x - c)
        scale = np.abs(H) @ (np.abs(x) + np.abs(c))
        inside = (x > -8) & (x < 7)
        assert np.all(np.abs(g[inside]) <= 1e-8 * scale[inside])
        assert np.all(g[x == 7] <= 1e-8 * scale[x == 7])
        assert np.all(g[x == -8] >= -1e-8 * scale[x == -8])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 6), bits=st.integers(2, 4),
       kind=st.sampled_from(["well", "ill", "corr", "diag"]), budget=st.integers(1, 300),
       spread=st.floats(0.8, 4.0))
def test_stopped_search_bound_is_valid(seed, n, bits, kind, budget, spread):
    """lower_bound <= optimum <= incumbent, whenever the search is stopped."""
    rng = np.random.default_rng(seed)
    p = _clipped_problem(rng, n, bits, kind, spread)
    sh = _shifted(p)
    if sh is None:
        return
    sh.step(budget)
    opt, _ = brute_force_quant(p)
    tol = rounding_tol(p.H, p.w0)
    assert p.scale ** 2 * sh.bound() <= opt + tol
    assert p.error(p.weights(sh.codes)) >= opt - tol
    r = solve_exact(p, node_limit=budget, recentre=True)
    assert r.lower_bound <= opt + tol <= r.objective + 2 * tol


def test_eight_bit_clipped_chunk_is_proved_by_the_shifted_search():
    """n = 24 at 8 bits with clipped weights: the original search alone stops on its node
    limit far from a proof; with re-centring the shifted search proves it (node limits only,
    so the verdict does not depend on the machine)."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((60, 24)) @ (np.eye(24) + 0.3 * rng.standard_normal((24, 24)))
    w0 = rng.standard_normal(24)
    p = QuantProblem(X.T @ X, w0, scale=float(np.max(np.abs(w0))) / 160.0, bits=8)
    off = solve_exact(p, node_limit=2_000_000, recentre=False)
    on = solve_exact(p, node_limit=2_000_000)
    assert on.status is Status.OPTIMAL and on.info["proved_by"] == "shifted search"
    assert off.status is Status.NODE_LIMIT
    assert on.objective <= off.objective * (1 + 1e-12)
    assert off.lower_bound <= on.objective and on.lower_bound <= off.objective


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gurobi", "scip"])
def test_agrees_with_an_independent_solver_on_clipped_eight_bit(name):
    if not get_method("quant", name).available():
        pytest.skip(f"{name} not installed")
    rng = np.random.default_rng(16)
    for kind in ("well", "corr"):
        p = _clipped_problem(rng, 16, 8, kind, spread=1.3)
        e = solve_exact(p, node_limit=5_000_000)
        r = solve(p, name, time_limit=60)
        assert e.status is Status.OPTIMAL
        if r.status is Status.OPTIMAL:
            assert r.objective == pytest.approx(e.objective, rel=1e-6)
        assert e.objective <= r.objective * (1 + 1e-9)
        assert e.lower_bound <= r.objective and r.lower_bound <= e.objective * (1 + 1e-6)


def test_auto_leaves_large_problems_alone():
    """``"auto"`` starts the re-centred search only up to ``RECENTRE_MAX_N`` live inputs."""
    from solvers.quant.exact import RECENTRE_MAX_N

    rng = np.random.default_rng(9)
    n = RECENTRE_MAX_N + 2
    p = _clipped_problem(rng, n, 8, "well")
    auto = solve_exact(p, node_limit=30_000, lagrangian=False)
    forced = solve_exact(p, node_limit=30_000, lagrangian=False, recentre=True)
    assert "recentred" not in auto.info
    assert forced.info["recentred"] is True
