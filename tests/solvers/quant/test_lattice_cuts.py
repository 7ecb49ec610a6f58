"""Dual-lattice tangents: every bound stays below the optimum, and the cuts strengthen it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, brute_force_quant, random_quant_problem

from solvers import QuantProblem, Status
from solvers.quant.dual_certificate import dual_bound
from solvers.quant.exact import solve_exact
from solvers.quant.lagrangian import certified_root_bound, maximize_dual
from solvers.quant.lattice_cuts import cut_bound, direction_pool, extend_pool, violations


def _shifted(p):
    c = p.w0 / p.scale
    a = np.clip(np.floor(c), p.zmin, max(p.zmin, p.zmax - 1))
    return c, a, c - a, p.zmin - a, p.zmax - a


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), bits=st.integers(1, 3),
       m=st.integers(1, 6), scale=st.floats(0.0, 100.0), entry=st.integers(1, 3))
def test_dual_bound_valid_for_any_directions_and_multipliers(seed, n, bits, m, scale, entry):
    """Weak duality: any integer directions, any tangent points, any multipliers (garbage
    included) give a certified value below the brute-force optimum."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 1, n))
    p = QuantProblem(X.T @ X, 2 * rng.standard_normal(n), scale=0.5, bits=bits)
    _, _, chat, l, u = _shifted(p)
    W = rng.integers(-entry, entry + 1, (m, n))
    ya = rng.integers(-3, 3, m).astype(float)
    nu = scale * rng.standard_normal(m)  # negative entries are clipped
    lam, mu = scale * rng.standard_normal(n), scale * rng.random(n)
    b, _ = dual_bound(p.H, chat, l, u, lam, mu, W, ya, nu)
    opt, _ = brute_force_quant(p)
    assert p.scale**2 * b <= opt + 1e-12 * p.norm


def _check_directions(rng, trials, kind):
    for trial in range(trials):
        bits, n = [(2, 6), (3, 4), (4, 3), (1, 8), (2, 5)][trial % 5]
        p = random_quant_problem(rng, n, bits, kind, outside=trial % 2 == 0)
        opt, _ = brute_force_quant(p)
        c = p.w0 / p.scale
        pool = direction_pool(p.H)
        r = maximize_dual(p.H, c, p.zmin, p.zmax, directions=pool[:2 * n])
        assert p.scale**2 * r.bound <= opt + 1e-12 * p.norm
        b, _, info = cut_bound(p.H, c, p.zmin, p.zmax, time_limit=None, max_rounds=4)
        assert p.scale**2 * b <= opt + 1e-12 * p.norm, (b, opt)
        assert b >= info["plain_bound"]


@pytest.mark.parametrize("kind", KINDS)
def test_cut_bound_below_brute_force(kind):
    _check_directions(np.random.default_rng(510 + KINDS.index(kind)), 10, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_cut_bound_below_brute_force_many(kind):
    _check_directions(np.random.default_rng(1510 + KINDS.index(kind)), 100, kind)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 5), bits=st.integers(1, 3),
       rows=st.integers(1, 8), spread=st.floats(0.1, 10.0))
def test_cut_bound_property(seed, n, bits, rows, spread):
    """Any small problem (rank-deficient ones too): the strengthened bound stays valid."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n)) * rng.uniform(0.01, 1.0, n)
    p = QuantProblem(X.T @ X, spread * rng.standard_normal(n), scale=0.5, bits=bits)
    opt, _ = brute_force_quant(p)
    b, _, _ = cut_bound(p.H, p.w0 / p.scale, p.zmin, p.zmax, time_limit=None, max_rounds=3)
    assert p.scale**2 * b <= opt + 1e-15 * p.norm


def test_cuts_close_most_of_the_gap_on_correlated_inputs():
    """Against the exact optimum at n = 20 (correlated inputs, 4 bits): never above it, and
    clearly above the plain Park–Boyd bound (its point). Three rounds, no clock: the same
    verdict on a busy machine (measured: a median 0.95 of the gap closed)."""
    rng = np.random.default_rng(77)
    gains = []
    for _ in range(4):
        p = random_quant_problem(rng, 20, 4, "corr")
        e = solve_exact(p)
        assert e.status is Status.OPTIMAL
        opt = e.objective / p.scale**2
        b, _, info = cut_bound(p.H, p.w0 / p.scale, p.zmin, p.zmax, time_limit=None,
                               max_rounds=3)
        assert info["plain_bound"] <= b <= opt
        gains.append((b - info["plain_bound"]) / (opt - info["plain_bound"]))
    assert np.median(gains) > 0.3, gains  # share of the plain bound's gap closed


def test_direction_pool_shape_and_order():
    rng = np.random.default_rng(3)
    p = random_quant_problem(rng, 12, 4, "corr")
    pool = direction_pool(p.H)
    assert pool.dtype == np.int64 and pool.shape[1] == 12 and pool.shape[0] > 12
    assert np.all(np.count_nonzero(pool, axis=1) > 1)  # no unit vectors, no zeros
    first = pool[np.arange(len(pool)), np.argmax(pool != 0, axis=1)]
    assert np.all(first > 0)  # one sign per direction
    assert len(np.unique(pool, axis=0)) == len(pool)
    Hi = np.linalg.inv(p.H)
    norms = np.einsum("ij,jk,ik->i", pool, Hi, pool)
    assert np.all(np.diff(norms) >= -1e-9 * norms[1:])  # shortest dual vectors first
    big = extend_pool(p.H, pool)
    assert big.shape[0] > pool.shape[0] and big.dtype == np.int64
    assert {r.tobytes() for r in pool} <= {r.tobytes() for r in big}
    bn = np.einsum("ij,jk,ik->i", big, Hi, big)
    assert np.all(np.diff(bn) >= -1e-9 * bn[1:])
    # singular H: still a pool (of H + δI)
    x = rng.standard_normal(6)
    assert direction_pool(np.outer(x, x)).shape[0] > 0
    assert direction_pool(np.ones((1, 1))).shape == (0, 1)


def test_violations_pick_cut_directions():
    rng = np.random.default_rng(8)
    p = random_quant_problem(rng, 16, 4, "corr")
    c = p.w0 / p.scale
    r = maximize_dual(p.H, c, p.zmin, p.zmax)
    pool = direction_pool(p.H)
    v = violations(pool, r)
    assert v.shape == (pool.shape[0],) and np.all(v <= 0.25 + 1e-12)
    best = pool[np.argsort(-v)[:16]]
    s = maximize_dual(p.H, c, p.zmin, p.zmax, directions=best)
    assert s.bound > r.bound


def test_exact_reports_the_cut_bound_on_a_time_limit():
    rng = np.random.default_rng(6)
    p = random_quant_problem(rng, 64, 4, "corr")
    r = solve_exact(p, time_limit=2.0)
    if r.status is Status.TIME_LIMIT:
        assert r.info["lagrangian_bound"] >= r.info["plain_lagrangian_bound"]
        assert r.info["cut_rounds"] >= 0
        assert r.lower_bound == min(max(r.info["lagrangian_bound"], r.info["search_bound"]),
                                    r.objective)
    b, _ = certified_root_bound(p.H, p.w0 / p.scale, p.zmin, p.zmax)
    assert p.scale**2 * b <= r.objective
