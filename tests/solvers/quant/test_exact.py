"""The exact quantization solver against brute force over the whole grid, and its contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import (
    KINDS,
    brute_force_quant,
    random_hessian,
    random_quant_problem,
    rounding_tol,
)
from time_budget import ThreadClock

from solvers import QuantProblem, Status, solve
from solvers.quant.exact import solve_exact
from solvers.warm_up import warm_up

# (bits, n) pairs whose whole grid has at most 2^16 points
GRID_SIZES = [(1, 8), (2, 8), (3, 5), (4, 4), (5, 3), (6, 2), (7, 2), (8, 2)]


def _check_against_brute(p: QuantProblem, r) -> None:
    opt_sum, zb = brute_force_quant(p)
    # the brute force's error, evaluated the same way as the solver's (same rounding)
    opt = min(opt_sum, p.error(p.scale * zb))
    tol = 1e-9 * opt + 1e-15 * p.norm
    assert r.lower_bound is not None
    assert r.lower_bound <= opt, (r.lower_bound, opt)
    assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)
    if r.status is Status.OPTIMAL:
        assert r.objective <= opt + tol, (r.objective, opt)
    else:  # only a floating-point margin remains, and the codes are optimal up to it
        assert r.objective - r.lower_bound <= 1e-4 * r.objective + 1e-12 * p.norm
        assert r.objective <= opt + (r.objective - r.lower_bound) + tol
    np.testing.assert_array_equal(r.weights, p.scale * r.codes)
    assert r.objective == p.error(r.weights)


@pytest.mark.parametrize("bits,n", GRID_SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_brute_force_whole_grid(kind, bits, n):
    rng = np.random.default_rng(1000 * bits + n + 17 * KINDS.index(kind))
    for trial in range(4):
        p = random_quant_problem(rng, n, bits, kind, outside=trial % 2 == 1)
        _check_against_brute(p, solve_exact(p))


@pytest.mark.parametrize("ordering", ["box", "vblast", "natural"])
def test_orderings_agree_with_brute_force(ordering):
    rng = np.random.default_rng(7)
    for trial in range(20):
        kind = KINDS[trial % len(KINDS)]
        p = random_quant_problem(rng, 5, 3, kind, outside=trial % 3 == 0)
        _check_against_brute(p, solve_exact(p, ordering=ordering))


def test_far_outside_grid_and_rank_one():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.standard_normal(5)
        H = np.outer(x, x)  # rank one: four null directions
        w0 = 5.0 * rng.standard_normal(5)
        p = QuantProblem(H, w0, scale=0.3, bits=3)
        _check_against_brute(p, solve_exact(p))


def test_dead_inputs_and_zero_hessian():
    rng = np.random.default_rng(4)
    H = random_hessian(rng, 6, "well")
    H[2, :] = H[:, 2] = 0.0
    H[4, :] = H[:, 4] = 0.0
    p = QuantProblem(H, rng.standard_normal(6), scale=0.4, bits=3)
    r = solve_exact(p)
    _check_against_brute(p, r)
    assert r.info["dead_inputs"] == 2
    z = QuantProblem(np.zeros((3, 3)), np.ones(3), scale=1.0, bits=2)
    r0 = solve_exact(z)
    assert r0.status is Status.OPTIMAL and r0.objective == 0.0 and r0.lower_bound == 0.0


def test_registry_entry_and_initial_codes():
    rng = np.random.default_rng(5)
    p = random_quant_problem(rng, 6, 3, "corr")
    r = solve(p, "exact")
    assert r.method == "exact" and r.status is Status.OPTIMAL
    r2 = solve_exact(p, initial_codes=r.codes)
    assert r2.objective <= r.objective * (1 + 1e-12)


def test_time_limit_respected_and_anytime_bound_valid():
    rng = np.random.default_rng(11)
    p = random_quant_problem(rng, 64, 4, "corr")
    warm_up(["quant"])  # every kernel path, the stopped ones too, compiled outside the timing
    with ThreadClock() as clock:
        short = solve_exact(p, time_limit=0.2)
    assert clock.seconds < 0.2 + 1.0  # ordering/factoring overhead plus one slice (CPU time)
    longer = solve_exact(p, time_limit=3.0)
    assert short.lower_bound <= longer.objective
    assert longer.lower_bound <= short.objective
    if short.status is not Status.OPTIMAL:
        assert short.status is Status.TIME_LIMIT
        assert "time_limit" in short.message


def test_node_limit_bound_is_valid():
    rng = np.random.default_rng(12)
    for trial in range(10):
        p = random_quant_problem(rng, 8, 2, KINDS[trial % len(KINDS)])
        opt, _ = brute_force_quant(p)
        r = solve_exact(p, node_limit=5)
        assert r.lower_bound <= opt
        assert r.objective >= opt * (1 - 1e-12)
        assert r.status in (Status.NODE_LIMIT, Status.OPTIMAL)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 6),
    bits=st.integers(1, 4),
    rows=st.integers(1, 12),
    spread=st.floats(0.1, 10.0),
    scale=st.floats(0.05, 2.0),
)
def test_contract_property(seed, n, bits, rows, spread, scale):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n)) * rng.uniform(0.01, 1.0, n)
    p = QuantProblem(X.T @ X, spread * rng.standard_normal(n), scale=scale, bits=bits)
    r = solve_exact(p)
    assert r.lower_bound <= r.objective
    assert np.all(r.codes >= p.zmin) and np.all(r.codes <= p.zmax)
    np.testing.assert_array_equal(r.weights, p.scale * r.codes)
    if (2**bits) ** n <= 5000:
        opt, _ = brute_force_quant(p)
        assert r.lower_bound <= opt
        # both sides are rounded sums: compare within their rounding (|w|ᵀ|H||w| scale)
        assert r.objective <= opt + 1e-9 * opt + rounding_tol(p.H, p.w0, r.weights)


@pytest.mark.parametrize("factor", [1e300, 1e-300])
def test_badly_scaled_h_is_normalised(factor):
    # H·1e300 used to run without end (the certificate's squares overflowed): now it is solved
    # as H·2^-e, with the same codes, and reported in the user's units
    rng = np.random.default_rng(11)
    p = random_quant_problem(rng, 12, 4, "corr")
    ref = solve_exact(p)
    q = QuantProblem(p.H * factor, p.w0, scale=p.scale, bits=p.bits)
    r = solve_exact(q, node_limit=10 * max(ref.nodes, 1000))  # a hang shows as a node limit
    assert r.status is Status.OPTIMAL and r.info["h_exponent"] != 0
    np.testing.assert_array_equal(r.codes, ref.codes)
    assert r.objective == q.error(r.weights) and r.lower_bound <= r.objective
    assert r.objective == pytest.approx(factor * ref.objective, rel=1e-9)
    assert r.gap == pytest.approx(ref.gap, rel=1e-3, abs=1e-12)


def test_status_agrees_with_gap_on_tiny_rank_deficient_problems():
    # near-zero errors: the gap is measured against GAP_NORM_FLOOR·norm, and OPTIMAL is
    # reported exactly when that gap is within the tolerance
    rng = np.random.default_rng(19)
    sizes = [(b, n) for b, n in GRID_SIZES if b <= 4]
    for i in range(60):
        bits, n = sizes[i % len(sizes)]
        p = random_quant_problem(rng, n, bits, "rankdef", outside=bool(i % 2))
        r = solve_exact(p)
        assert (r.status is Status.OPTIMAL) == (r.gap <= 1e-6), (r.status, r.gap)
        _check_against_brute(p, r)


@pytest.mark.parametrize("n,kind", [(5, "rankdef"), (24, "corr"), (64, "ill")])
def test_tiny_time_limit_gives_a_valid_result(n, kind):
    # the whole path (set-up, incumbents, search, the Lagrangian bound from 48 inputs) under a
    # 1 ms limit: validity only (the wall time is measured by benchmarks/time_limits.py)
    rng = np.random.default_rng(31)
    p = random_quant_problem(rng, n, 4 if n > 5 else 3, kind)
    r = solve_exact(p, time_limit=1e-3)
    assert r.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert r.lower_bound is not None and 0.0 <= r.lower_bound <= r.objective
    assert r.objective == p.error(r.weights)
    np.testing.assert_array_equal(r.weights, p.weights(r.codes))
    if n <= 5:
        assert r.lower_bound <= brute_force_quant(p)[0]
