"""Every installed backend on the same canonical problems: known optima, the contract, agreement.

One parametrised set, in the way cvxpy tests its solvers: the canonical problems are small
quantization problems (brute force over the whole grid) and small boxed pruning problems (brute
force over every mask, unstructured and N:M), then larger ones against our exact solvers. Every
backend the registry lists runs every case it can; a backend that is not installed is skipped
with its name. The interface itself (status maps complete, options refused by name, kinds, the
OR-Tools / HiGHS guard on both HiGHS paths) is tested without solving where it can be.

Time limits: each limit below is at least 20× the idle solve time of the slowest case it covers
(``benchmarks/backend_headroom.py`` measures the ratio); cases that take more than ~10 s idle,
or whose limit would not leave that headroom, are marked slow.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from problem_instances import brute_force_quant, random_hessian, random_quant_problem

from solvers import ProblemError, PruneProblem, QuantProblem, Status, solve
from solvers.backends import isolation
from solvers.backends.base import Backend
from solvers.prune.exact import solve_exact as solve_exact_prune
from solvers.quant.exact import solve_exact as solve_exact_quant
from solvers.registry import get_method, methods

from ..prune.prune_reference import brute_force_boxed, check_contract
from .canonical import (
    LARGE_LIMIT,
    PRUNE_CASES,
    PRUNE_EXACT_CASES,
    QUANT_CASES,
    SMALL_LIMIT,
    prune_case,
    prune_exact_case,
    prune_nm_case,
    prune_unboxed_case,
    quant_case,
    quant_exact_cases,
)


def backend_names(kind: str) -> list[str]:
    """Registry names of the methods of ``kind`` that a backend implements."""
    return [m.name for m in methods(kind) if m.target.startswith("solvers.backends.")]


def backend_of(kind: str, name: str) -> Backend:
    return get_method(kind, name).load().__self__


def _params(kind: str, names: list[str] | None = None, slow: tuple[str, ...] = ()):
    """One pytest param per backend of ``kind``: skipped when not installed, ``slow`` marked."""
    out = []
    for name in names or backend_names(kind):
        m = get_method(kind, name)
        marks = [pytest.mark.skipif(not m.available(), reason=f"{name} not installed")]
        if name in slow:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _agree(a: float, b: float, norm: float, rtol: float = 2e-6) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-12 * norm


def _with_cases(params, cases, only: dict[str, tuple[str, ...]] | None = None):
    """``params`` × ``cases`` (a backend in ``only`` runs only the cases listed for it)."""
    return [pytest.param(pp.values[0], case, marks=pp.marks, id=f"{pp.id}-{case}")
            for pp in params for case in cases
            if case in (only or {}).get(pp.values[0], cases)]


# --------------------------------------------------------------------------------------------
# Canonical problems with known optima
# --------------------------------------------------------------------------------------------


# cpsat may run in a spawned process (the HiGHS clash with highspy): one case, marked slow
@pytest.mark.parametrize("name,case", _with_cases(_params("quant", slow=("cpsat",)),
                                                  list(QUANT_CASES), {"cpsat": ("corr",)}))
def test_quant_matches_brute_force(name, case):
    p = quant_case(case, name)
    opt, _ = brute_force_quant(p)
    r = solve(p, name, time_limit=SMALL_LIMIT)
    assert r.method == name
    assert r.lower_bound is None or r.lower_bound <= r.objective
    np.testing.assert_array_equal(r.weights, p.scale * r.codes)
    assert r.objective == p.error(r.weights)
    rtol = 1e-4 if name == "cpsat" else 1e-6  # cpsat optimises a rounded model
    assert r.objective <= opt * (1 + rtol) + 1e-12 * p.norm
    if r.lower_bound is not None:
        assert r.lower_bound <= opt * (1 + 1e-6) + 1e-12 * p.norm


@pytest.mark.parametrize("name,case", _with_cases(_params("prune"), list(PRUNE_CASES)))
def test_prune_boxed_matches_enumeration(name, case):
    p = prune_case(case)
    opt, _ = brute_force_boxed(p)
    r = solve(p, name, time_limit=SMALL_LIMIT)
    assert r.method == name
    check_contract(p, r, opt, rtol=1e-5)
    assert _agree(r.objective, opt, p.norm, 1e-5)
    # a backend's own tolerances may leave a recomputed gap a little above 1e-6
    assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)
    if not case.startswith("ill"):  # eigenvalues down to 1e-8: beyond the backends' 1e-6
        assert r.gap < 1e-4


@pytest.mark.parametrize("name", _params("prune"))
def test_prune_unboxed_solves_boxed_variant_and_proves_nothing(name):
    p = prune_unboxed_case()
    r = solve(p, name, time_limit=SMALL_LIMIT)
    assert r.lower_bound is None and r.status is Status.HEURISTIC
    assert "boxed variant" in r.info["note"] and r.info["boxed_lower_bound"] is not None
    assert r.objective >= solve_exact_prune(p).lower_bound


# --------------------------------------------------------------------------------------------
# Larger problems: agreement with our exact solvers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _params("quant", ["gurobi", "scip"], slow=("scip",)))
def test_quant_cross_solver_agreement(name):
    for p in quant_exact_cases(name):
        e = solve_exact_quant(p)
        r = solve(p, name, time_limit=LARGE_LIMIT)
        assert e.status is Status.OPTIMAL
        assert r.status is Status.OPTIMAL
        assert r.objective == pytest.approx(e.objective, rel=1e-6)
        assert e.objective <= r.objective * (1 + 1e-9)
        assert e.lower_bound <= r.objective and r.lower_bound <= e.objective * (1 + 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("n", [24, 32])
def test_quant_cross_solver_agreement_gurobi_larger(n):
    if not get_method("quant", "gurobi").available():
        pytest.skip("gurobi not installed")
    rng = np.random.default_rng(n)
    for kind in ("well", "corr"):
        for bits in (3, 4, 8):
            p = random_quant_problem(rng, n, bits, kind)
            e = solve_exact_quant(p, time_limit=60)
            r = solve(p, "gurobi", time_limit=60)
            if e.status is Status.OPTIMAL and r.status is Status.OPTIMAL:
                assert e.objective <= r.objective * (1 + 1e-9)
            assert e.lower_bound <= r.objective
            assert r.lower_bound <= e.objective * (1 + 1e-6)


@pytest.mark.parametrize("n,density,kind", PRUNE_EXACT_CASES)
@pytest.mark.parametrize("name", _params("prune", ["gurobi", "scip"], slow=("scip",)))
def test_prune_agrees_with_exact_on_boxed(name, n, density, kind):
    p = prune_exact_case(n, density, kind)
    ours = solve_exact_prune(p)
    theirs = solve(p, name, time_limit=LARGE_LIMIT)
    assert ours.status is Status.OPTIMAL
    if theirs.status is Status.OPTIMAL:
        assert _agree(ours.objective, theirs.objective, p.norm)
    # whatever they proved, their bound may not exceed our optimum, nor ours their solution
    if theirs.lower_bound is not None:
        assert theirs.lower_bound <= ours.objective * (1 + 1e-6) + 1e-12 * p.norm
    assert ours.lower_bound <= theirs.objective


@pytest.mark.parametrize("name", _params("prune", ["gurobi", "scip"]))
def test_prune_nm_agrees_with_exact(name):
    p = prune_nm_case()
    ours, theirs = solve_exact_prune(p), solve(p, name, time_limit=LARGE_LIMIT)
    assert np.all(theirs.mask.reshape(-1, 4).sum(axis=1) <= 2)
    assert _agree(ours.objective, theirs.objective, p.norm)


@pytest.mark.slow
@pytest.mark.parametrize("name", _params("prune", ["gurobi", "scip"]))
def test_prune_agrees_on_n32(name):
    rng = np.random.default_rng(32)
    for density in (0.5, 0.25, 0.125):
        p = PruneProblem.from_density(random_hessian(rng, 32, "corr"), rng.standard_normal(32),
                                      density, box_factor=2.0)
        ours, theirs = solve_exact_prune(p), solve(p, name, time_limit=300)
        assert ours.status is Status.OPTIMAL
        if theirs.status is Status.OPTIMAL:
            assert _agree(ours.objective, theirs.objective, p.norm)


@pytest.mark.slow
@pytest.mark.mobilenet
def test_mobilenet_quant_chunks_exact_vs_gurobi_and_scip():
    pytest.importorskip("torch")
    from bounds.export import export_model
    from solvers.scales import mse_scale

    probs = export_model("mobilenet_v2", layers=["features.6.conv.2"], opt_dim=16, samples=8)
    lp = next(lp for lps in probs.values() for lp in lps if lp.n == 16)
    s = mse_scale(lp.W0, 4)
    for ch in range(3):
        p = lp.quant(ch, scale=s, bits=4)
        e = solve_exact_quant(p)
        assert e.status is Status.OPTIMAL
        for name in ("gurobi", "scip"):
            if not get_method("quant", name).available():
                continue
            r = solve(p, name, time_limit=300)
            # SCIP needs ~30-40 s of CPU here: on a busy machine it may reach the wall-clock
            # limit, and then only the bounds can be compared
            if r.status is Status.OPTIMAL:
                assert r.objective == pytest.approx(e.objective, rel=1e-6)
            assert e.objective <= r.objective * (1 + 1e-9)
            assert r.lower_bound is None or r.lower_bound <= e.objective * (1 + 1e-6)


@pytest.mark.slow
@pytest.mark.mobilenet
def test_mobilenet_prune_chunks_agree_with_gurobi():
    """Real MobileNetV2 chunks (n = 32, boxed as the paper): same optimum as Gurobi."""
    if not get_method("prune", "gurobi").available():
        pytest.skip("gurobipy not installed")
    from bounds.export import export_model

    probs = export_model("mobilenet_v2", layers=["features.6.conv.2"], opt_dim=32, samples=8)
    lp = probs["features.6.conv.2"][0]
    for c in range(0, lp.channels, max(1, lp.channels // 4)):
        for density in (0.5, 0.25, 0.125):
            p = lp.prune(c, density=density, box_factor=2.0)
            ours, theirs = solve_exact_prune(p), solve(p, "gurobi", time_limit=300)
            assert ours.status is Status.OPTIMAL
            if theirs.status is Status.OPTIMAL:
                assert _agree(ours.objective, theirs.objective, p.norm)


# --------------------------------------------------------------------------------------------
# The interface: registry entries, kinds, options, status maps, the HiGHS / OR-Tools guard
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["quant", "prune"])
def test_registry_entries_point_at_their_backend(kind):
    for name in backend_names(kind):
        m = get_method(kind, name)
        b = backend_of(kind, name)
        assert isinstance(b, Backend) and b.name == name
        assert kind in b.kinds()
        assert tuple(m.requires) == tuple(b.requires)
        assert m.certified


def test_a_backend_that_cannot_solve_a_kind_says_so():
    p = PruneProblem(np.eye(2), np.ones(2), k=1, box_factor=2.0)
    for name in ("cpsat", "scip-cvxpy"):
        b = backend_of("quant", name)
        assert b.kinds() == ("quant",)
        with pytest.raises(ProblemError, match=f"{name!r} does not solve pruning"):
            b.solve_prune(p)


@pytest.mark.parametrize("kind", ["quant", "prune"])
def test_unknown_options_are_refused_by_name(kind):
    p = (QuantProblem(np.eye(2), np.array([0.3, -0.2]), scale=0.5, bits=2) if kind == "quant"
         else PruneProblem(np.eye(2), np.ones(2), k=1, box_factor=2.0))
    for name in backend_names(kind):
        m = get_method(kind, name)
        assert m.options() is not None and "gap" in m.options()  # no silent **options
        with pytest.raises(ProblemError, match=r"has no option bogus; valid: gap"):
            solve(p, name, bogus=1)


def _status_codes(name: str) -> set:
    """Every status code the installed backend can report, as its STATUS_MAP keys them."""
    if name == "scip":
        from pyscipopt import SCIP_STATUS

        return {s.lower() for s in dir(SCIP_STATUS) if not s.startswith("_")}
    if name == "gurobi":
        import gurobipy as gp

        return {getattr(gp.GRB.Status, k) for k in dir(gp.GRB.Status) if k.isupper()}
    if name == "highs":
        import highspy

        return {s for s in dir(highspy.HighsModelStatus) if s.startswith("k")}
    if name == "scip-cvxpy":
        import cvxpy.settings as s

        return set(s.ERROR + s.INACCURATE + s.SOLUTION_PRESENT + s.INF_OR_UNB) | {s.USER_LIMIT}
    if name == "cpsat":  # in a child process: OR-Tools must not be loaded beside highspy
        code = ("from ortools.sat.python import cp_model as c; "
                "print(' '.join(type(c.OPTIMAL).__members__))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=300)
        return set(out.stdout.split())
    raise AssertionError(name)


@pytest.mark.parametrize("name", _params("quant"))
def test_status_map_is_complete(name):
    b = backend_of("quant", name)
    codes = _status_codes(name)
    assert codes, name
    assert codes <= set(b.STATUS_MAP), sorted(map(str, codes - set(b.STATUS_MAP)))
    assert b.status("no such status") is Status.ERROR


def test_both_highs_paths_are_guarded_against_ortools(monkeypatch):
    """With OR-Tools loaded and highspy not, both HiGHS solves go to a spawned process."""
    calls = []
    monkeypatch.setattr(isolation, "run_isolated",
                        lambda backend, method, problem, options: calls.append((method, options)))
    monkeypatch.setitem(sys.modules, "ortools", sys.modules.get("ortools") or object())
    monkeypatch.delitem(sys.modules, "highspy", raising=False)
    q = QuantProblem(np.eye(2), np.array([0.3, -0.2]), scale=0.5, bits=2)
    p = PruneProblem(np.eye(2), np.ones(2), k=1, box_factor=2.0)
    solve(q, "highs", time_limit=5.0)
    solve(p, "highs", gap=1e-3)
    assert calls == [("solve_quant", {"time_limit": 5.0}),
                     ("solve_prune", {"time_limit": None, "gap": 1e-3})]


@pytest.mark.skipif(not get_method("prune", "highs").available(), reason="highs not installed")
def test_isolated_solve_runs_in_a_spawned_process(monkeypatch):
    """The guard's fallback really solves: the pruning path, in a fresh process."""
    monkeypatch.setitem(sys.modules, "ortools", sys.modules.get("ortools") or object())
    monkeypatch.delitem(sys.modules, "highspy", raising=False)
    p = prune_case("well")
    opt, _ = brute_force_boxed(p)
    r = solve(p, "highs", time_limit=SMALL_LIMIT)
    check_contract(p, r, opt, rtol=1e-5)
    assert r.method == "highs" and r.info["backend"].startswith("HiGHS")
