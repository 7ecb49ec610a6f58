"""General-solver adapters against the exact solver, and cross-solver agreement."""

from __future__ import annotations

import numpy as np
import pytest
from problem_instances import brute_force_quant, random_quant_problem

from solvers import Status, solve
from solvers.quant.exact import solve_exact
from solvers.registry import get_method

FAST = ["scip", "scip-cvxpy", "gurobi", "highs"]


def _available(name):
    return get_method("quant", name).available()


@pytest.mark.parametrize(
    "name", FAST + [pytest.param("cpsat", marks=pytest.mark.slow)]  # cpsat may need a spawn
)
def test_adapter_matches_brute_force(name):
    if not _available(name):
        pytest.skip(f"{name} not installed")
    rng = np.random.default_rng(8)
    n, bits = (4, 2) if name == "highs" else (5, 3)
    # cpsat may run in a spawned process (HiGHS symbol clash with highspy): fewer cases
    kinds = ("corr",) if name == "cpsat" else ("well", "corr", "rankdef")
    for kind in kinds:
        p = random_quant_problem(rng, n, bits, kind)
        opt, _ = brute_force_quant(p)
        r = solve(p, name, time_limit=60)
        assert r.method == name
        assert r.lower_bound is None or r.lower_bound <= r.objective
        np.testing.assert_array_equal(r.weights, p.scale * r.codes)
        rtol = 1e-4 if name == "cpsat" else 1e-6  # cpsat optimises a rounded model
        assert r.objective <= opt * (1 + rtol) + 1e-12 * p.norm
        if r.lower_bound is not None:
            assert r.lower_bound <= opt * (1 + 1e-6) + 1e-12 * p.norm


@pytest.mark.parametrize("name", ["gurobi", pytest.param("scip", marks=pytest.mark.slow)])
def test_cross_solver_agreement(name):
    if not _available(name):
        pytest.skip(f"{name} not installed")
    rng = np.random.default_rng(16)
    for kind in ("well", "corr"):
        n, bits = (16, 4) if name == "gurobi" else (10, 2)  # SCIP is slow: smaller
        p = random_quant_problem(rng, n, bits, kind)
        e = solve_exact(p)
        r = solve(p, name, time_limit=60)
        assert e.status is Status.OPTIMAL
        assert r.status is Status.OPTIMAL
        assert r.objective == pytest.approx(e.objective, rel=1e-6)
        assert e.objective <= r.objective * (1 + 1e-9)
        assert e.lower_bound <= r.objective and r.lower_bound <= e.objective * (1 + 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("n", [24, 32])
def test_cross_solver_agreement_gurobi_larger(n):
    if not _available("gurobi"):
        pytest.skip("gurobi not installed")
    rng = np.random.default_rng(n)
    for kind in ("well", "corr"):
        for bits in (3, 4, 8):
            p = random_quant_problem(rng, n, bits, kind)
            e = solve_exact(p, time_limit=60)
            r = solve(p, "gurobi", time_limit=60)
            if e.status is Status.OPTIMAL and r.status is Status.OPTIMAL:
                assert e.objective <= r.objective * (1 + 1e-9)
            assert e.lower_bound <= r.objective
            assert r.lower_bound <= e.objective * (1 + 1e-6)


@pytest.mark.slow
@pytest.mark.mobilenet
def test_mobilenet_chunks_exact_vs_gurobi_and_scip():
    pytest.importorskip("torch")
    from bounds.export import export_model
    from solvers.scales import mse_scale

    probs = export_model("mobilenet_v2", layers=["features.6.conv.2"], opt_dim=16, samples=8)
    lp = next(lp for lps in probs.values() for lp in lps if lp.n == 16)
    s = mse_scale(lp.W0, 4)
    for ch in range(3):
        p = lp.quant(ch, scale=s, bits=4)
        e = solve_exact(p)
        assert e.status is Status.OPTIMAL
        for name in ("gurobi", "scip"):
            if not _available(name):
                continue
            r = solve(p, name, time_limit=300)
            assert r.objective == pytest.approx(e.objective, rel=1e-6)
            assert e.objective <= r.objective * (1 + 1e-9)
