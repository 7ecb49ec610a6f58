"""The paper's big-M formulation through SCIP, Gurobi and HiGHS, against our exact solver on the
same boxed problems (and against the boxed brute force on small ones)."""

from __future__ import annotations

import numpy as np
import pytest
from problem_instances import random_hessian

from solvers.backends.base import importable
from solvers.problem import PruneProblem
from solvers.prune.exact import solve_exact
from solvers.result import Status

from .prune_reference import brute_force_boxed, check_contract

BACKENDS = []
if importable("pyscipopt"):
    from solvers.backends.scip_prune import solve_scip

    BACKENDS.append(pytest.param(solve_scip, id="scip"))
if importable("gurobipy"):
    from solvers.backends.gurobi_prune import solve_gurobi

    BACKENDS.append(pytest.param(solve_gurobi, id="gurobi"))
if importable("highspy"):
    from solvers.backends.highs_prune import solve_highs_oa

    BACKENDS.append(pytest.param(solve_highs_oa, id="highs"))


def _agree(a: float, b: float, norm: float, rtol: float = 2e-6) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-12 * norm


@pytest.mark.parametrize("fn", BACKENDS)
def test_small_boxed_matches_enumeration(fn):
    rng = np.random.default_rng(5)
    for kind, c, nm in [("well", 2.0, None), ("corr", 0.5, None), ("rankdef", 1.0, None),
                        ("ill", 2.0, (1, 2))]:
        n = 6
        p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n),
                         k=None if nm else 2, nm=nm, box_factor=c)
        opt, _ = brute_force_boxed(p)
        r = fn(p, time_limit=60)
        check_contract(p, r, opt, rtol=1e-5)
        assert _agree(r.objective, opt, p.norm, 1e-5)
        # a backend's own tolerances may leave a recomputed gap a little above 1e-6
        assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)
        if kind != "ill":  # eigenvalues down to 1e-8: beyond the backends' 1e-6 tolerances
            assert r.gap < 1e-4


def _cases():
    """Gurobi on every case; SCIP (slow here, tens of seconds) on the first only by default."""
    out = []
    for b in BACKENDS:
        if b.id == "highs":
            continue
        for i, case in enumerate([(16, 0.25, "corr"), (16, 0.5, "well"), (24, 0.25, "well")]):
            marks = [pytest.mark.slow] if (b.id == "scip" and i > 0) else []
            out.append(pytest.param(b.values[0], *case, id=f"{b.id}-{case[0]}-{case[1]}-"
                                    f"{case[2]}", marks=marks))
    return out


@pytest.mark.parametrize("fn,n,density,kind", _cases())
def test_agrees_with_exact_on_boxed(fn, n, density, kind):
    rng = np.random.default_rng(n + int(100 * density))
    p = PruneProblem.from_density(random_hessian(rng, n, kind), rng.standard_normal(n),
                                  density, box_factor=2.0)
    ours = solve_exact(p)
    theirs = fn(p, time_limit=120)
    assert ours.status is Status.OPTIMAL
    if theirs.status is Status.OPTIMAL:
        assert _agree(ours.objective, theirs.objective, p.norm)
    # whatever they proved, their bound may not exceed our optimum, nor ours their solution
    if theirs.lower_bound is not None:
        assert theirs.lower_bound <= ours.objective * (1 + 1e-6) + 1e-12 * p.norm
    assert ours.lower_bound <= theirs.objective


@pytest.mark.parametrize("fn", BACKENDS)
def test_unboxed_problem_solves_boxed_variant_and_proves_nothing(fn):
    rng = np.random.default_rng(2)
    p = PruneProblem(random_hessian(rng, 6, "well"), rng.standard_normal(6), k=2)
    r = fn(p, time_limit=60)
    assert r.lower_bound is None and r.status is Status.HEURISTIC
    assert "boxed variant" in r.info["note"] and r.info["boxed_lower_bound"] is not None
    assert r.objective >= solve_exact(p).lower_bound


@pytest.mark.parametrize("fn", [b for b in BACKENDS if b.id != "highs"])
def test_nm_agrees(fn):
    rng = np.random.default_rng(9)
    p = PruneProblem(random_hessian(rng, 16, "corr"), rng.standard_normal(16), nm=(2, 4),
                     box_factor=2.0)
    ours, theirs = solve_exact(p), fn(p, time_limit=120)
    assert np.all(theirs.mask.reshape(-1, 4).sum(axis=1) <= 2)
    assert _agree(ours.objective, theirs.objective, p.norm)


@pytest.mark.slow
@pytest.mark.parametrize("fn", [b for b in BACKENDS if b.id != "highs"])
def test_agrees_on_n32(fn):
    rng = np.random.default_rng(32)
    for density in (0.5, 0.25, 0.125):
        p = PruneProblem.from_density(random_hessian(rng, 32, "corr"), rng.standard_normal(32),
                                      density, box_factor=2.0)
        ours, theirs = solve_exact(p), fn(p, time_limit=300)
        assert ours.status is Status.OPTIMAL
        if theirs.status is Status.OPTIMAL:
            assert _agree(ours.objective, theirs.objective, p.norm)


@pytest.mark.slow
@pytest.mark.mobilenet
def test_mobilenet_chunks_agree_with_gurobi():
    """Real MobileNetV2 chunks (n = 32, boxed as the paper): same optimum as Gurobi."""
    if not importable("gurobipy"):
        pytest.skip("gurobipy not installed")
    from bounds.export import export_model
    from solvers.backends.gurobi_prune import solve_gurobi

    probs = export_model("mobilenet_v2", layers=["features.6.conv.2"], opt_dim=32, samples=8)
    lp = probs["features.6.conv.2"][0]
    for c in range(0, lp.channels, max(1, lp.channels // 4)):
        for density in (0.5, 0.25, 0.125):
            p = lp.prune(c, density=density, box_factor=2.0)
            ours, theirs = solve_exact(p), solve_gurobi(p, time_limit=300)
            assert ours.status is Status.OPTIMAL
            if theirs.status is Status.OPTIMAL:
                assert _agree(ours.objective, theirs.objective, p.norm)
