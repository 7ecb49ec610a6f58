"""The SDP relaxation: its certified bound never exceeds the optimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, brute_force_quant, random_quant_problem

from solvers import QuantProblem, Status, solve
from solvers.quant.exact import solve_exact
from solvers.quant.sdp import dual_bound, solve_sdp


@pytest.mark.parametrize("kind", KINDS)
def test_sdp_bound_below_brute_force(kind):
    rng = np.random.default_rng(21 + KINDS.index(kind))
    for trial in range(4):
        bits, n = [(2, 6), (3, 4), (4, 3), (1, 7)][trial]
        p = random_quant_problem(rng, n, bits, kind, outside=trial % 2 == 0)
        opt, _ = brute_force_quant(p)
        r = solve_sdp(p, samples=50)
        assert r.lower_bound <= opt
        assert r.objective >= opt * (1 - 1e-12)
        assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)
        np.testing.assert_array_equal(r.weights, p.scale * r.codes)


def test_sdp_bound_below_exact_n16_and_scs():
    rng = np.random.default_rng(3)
    for kind in ("well", "corr"):
        p = random_quant_problem(rng, 16, 3, kind)
        e = solve_exact(p)
        for solver in ("CLARABEL", "SCS"):
            r = solve(p, "sdp", solver=solver)
            assert r.lower_bound <= e.objective
            assert r.objective >= e.lower_bound
        # Clarabel is accurate: the certified bound is close to the solver's value
        r = solve_sdp(p)
        assert r.info["certified_bound"] == pytest.approx(r.info["sdp_value"], rel=1e-4)
        assert r.lower_bound > 0.5 * e.objective  # a useful bound on these instances


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), bits=st.integers(1, 3),
       lam_scale=st.floats(0.0, 100.0), mu_scale=st.floats(0.0, 100.0))
def test_dual_bound_valid_for_any_multipliers(seed, n, bits, lam_scale, mu_scale):
    """Weak duality: any λ, μ (even garbage) give a bound below the optimum."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 1, n))
    p = QuantProblem(X.T @ X, 2 * rng.standard_normal(n), scale=0.5, bits=bits)
    c = p.w0 / p.scale
    a = np.clip(np.floor(c), p.zmin, max(p.zmin, p.zmax - 1))
    lam = lam_scale * rng.standard_normal(n)  # negative entries are clipped by dual_bound
    mu = mu_scale * rng.random(n)
    b, _ = dual_bound(p.H, c - a, p.zmin - a, p.zmax - a, lam, mu)
    opt, _ = brute_force_quant(p)
    assert p.scale**2 * b <= opt + 1e-12 * p.norm
