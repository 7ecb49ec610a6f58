"""Smoke test of the solver comparison suite, and unit tests of its checks and statistics."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.suite import families as fam  # noqa: E402
from benchmarks.suite.methods import resolve  # noqa: E402
from benchmarks.suite.runner import compare_with_ours, feasible  # noqa: E402
from benchmarks.suite.stats import summarize  # noqa: E402
from solvers.problem import PruneProblem, QuantProblem  # noqa: E402
from solvers.result import SolveResult, Status  # noqa: E402


def _general_solver(kind: str) -> str | None:
    for name in ("highs", "cplex", "scip"):
        if resolve(kind, [name], []):
            return name
    return None


def test_smoke_run_writes_report(tmp_path: Path) -> None:
    """Two tiny synthetic instances, our exact solver and one general solver, both kinds."""
    if not resolve("quant", ["exact"], []) or not resolve("prune", ["exact"], []):
        pytest.skip("the exact solvers are not importable in this tree")
    general = _general_solver("quant")
    if general is None or _general_solver("prune") is None:
        pytest.skip("no general solver (HiGHS, CPLEX, SCIP) importable")
    from benchmarks.solver_comparison import main

    out = tmp_path / "report"
    rc = main([
        "--families", "synth-cond1e2", "--sizes", "8", "--count", "2", "--time-limit", "10",
        "--solvers", "exact", general, "--no-scaling", "--no-anytime", "--no-throughput",
        "--out", str(out),
    ])
    assert rc == 0
    for name in ("report.md", "rows.csv", "summary.json", "time_vs_n_quant.png",
                 "time_vs_n_prune.png"):
        assert (out / name).is_file(), name
    text = (out / "report.md").read_text()
    assert "**Machine**" in text and "**Command**" in text and "**Seeds**" in text
    with open(out / "rows.csv") as fh:
        rows = list(csv.DictReader(fh))
    # 2 instances × 2 methods × 2 kinds, every one of them answered
    assert len(rows) == 8
    ours = [r for r in rows if r["method"] == "exact"]
    assert all(r["status"] == "optimal" for r in ours)
    assert {r["method"] for r in rows} == {"exact", general}
    # the cache is reused: a second build finds the same files with the same content
    insts = fam.build_instances(["synth-cond1e2"], ["8"], 2, 0, out / "instances")
    assert all(i.path.exists() for i in insts)


def test_synthetic_families_are_seeded_and_controlled(tmp_path: Path) -> None:
    a = fam.synthetic_instance("synth-cond1e4", 12, 0, 7, tmp_path / "a")
    b = fam.synthetic_instance("synth-cond1e4", 12, 0, 7, tmp_path / "b")
    c = fam.synthetic_instance("synth-cond1e4", 12, 1, 7, tmp_path / "a")
    pa, pb, pc = a.layer_problem(), b.layer_problem(), c.layer_problem()
    assert np.array_equal(pa.H, pb.H) and np.array_equal(pa.W0, pb.W0)
    assert not np.array_equal(pa.H, pc.H)
    lam = np.linalg.eigvalsh(pa.H)
    assert lam[-1] / lam[0] == pytest.approx(1e4, rel=1e-6)
    r = fam.synthetic_instance("synth-rank50", 12, 0, 7, tmp_path).layer_problem()
    assert np.linalg.matrix_rank(r.H) == 6


def _res(p, w, status=Status.OPTIMAL, lb=None, msg="", method="x") -> SolveResult:
    obj = p.error(w)
    return SolveResult(status, np.asarray(w, float), obj, lb, p.norm, method=method, message=msg)


def test_feasibility_checks() -> None:
    H = np.eye(3)
    q = QuantProblem(H, np.array([0.1, 0.5, -0.4]), scale=0.25, bits=2)
    assert feasible(q, _res(q, [0.0, 0.25, -0.5]))[0]
    assert not feasible(q, _res(q, [0.0, 0.3, -0.5]))[0]  # off the grid
    assert not feasible(q, _res(q, [0.0, 0.5, -0.5]))[0]  # code 2 > zmax = 1
    p = PruneProblem(H, np.array([1.0, -2.0, 0.5]), k=1, box_factor=1.0)
    assert feasible(p, _res(p, [0.0, -2.0, 0.0]))[0]
    assert not feasible(p, _res(p, [1.0, -2.0, 0.0]))[0]  # 2 nonzeros > k
    assert not feasible(p, _res(p, [0.0, -2.5, 0.0]))[0]  # outside the box


def _row(method, obj, *, status="optimal", lb=None, claimed=None, certified=True, secs=1.0):
    return {"method": method, "objective": obj, "lower_bound": lb, "status": status,
            "claimed_optimal": status == "optimal" if claimed is None else claimed,
            "feasible": True, "issue": "", "certified": certified, "seconds": secs,
            "instance": "i0", "kind": "quant", "family": "f", "size": "8", "n": 8, "gap": 0.0}


def test_disagreements_are_flagged_not_hidden() -> None:
    rows = [
        _row("exact", 1.0, lb=1.0 - 1e-12),
        _row("good", 1.0 + 1e-12),
        _row("xpress", 1.09, status="gap_limit", claimed=True, lb=1.0),  # 9 % worse, "optimal"
        _row("badbound", 1.0, lb=1.2),  # bound above our optimum
        _row("heur", 0.9, status="heuristic", certified=False),  # below our proved bound
    ]
    compare_with_ours(rows)
    by = {r["method"]: r for r in rows}
    assert by["good"]["agree"] is True and by["good"]["issue"] == ""
    assert by["xpress"]["agree"] is False
    assert "claimed optimal" in by["xpress"]["issue"]
    assert by["xpress"]["rel_diff"] == pytest.approx(0.09)
    assert "lower bound above" in by["badbound"]["issue"]
    assert "below OUR proved lower bound" in by["heur"]["issue"]


def test_ratio_is_per_instance_and_flags_censoring() -> None:
    rows = []
    for i, (t_ours, t_other, st) in enumerate([(0.01, 1.0, "optimal"), (0.02, 1.0, "optimal"),
                                               (0.01, 5.0, "time_limit")]):
        for m, t, s in (("exact", t_ours, "optimal"), ("scip", t_other, st)):
            r = _row(m, 1.0, status=s, secs=t)
            r["instance"] = f"i{i}"
            rows.append(r)
    s = {x["method"]: x for x in summarize(rows)}
    assert s["exact"]["ratio"] == 1.0
    assert s["scip"]["ratio"] == pytest.approx(100.0)  # median of 100, 50, 500
    assert s["scip"]["ratio_flag"] == "≥"  # one instance stopped at the limit
    assert s["scip"]["optimal_share"] == pytest.approx(2 / 3)


@pytest.mark.skipif(importlib.util.find_spec("cplex") is None, reason="cplex not installed")
def test_cplex_adapter_matches_brute_force() -> None:
    from problem_instances import (
        brute_force_prune,
        brute_force_quant,
        random_prune_problem,
        random_quant_problem,
    )

    from benchmarks.suite.extra_solvers import cplex_prune, cplex_quant

    rng = np.random.default_rng(3)
    for kind in ("well", "ill", "rankdef"):
        p = random_quant_problem(rng, 5, 3, kind)
        ref, _ = brute_force_quant(p)
        r = cplex_quant(p, time_limit=20)
        assert r.lower_bound <= ref * (1 + 1e-6) + 1e-12
        assert r.objective <= ref * (1 + 1e-5) + 1e-12
        q = random_prune_problem(rng, 7, 2, "well", box_factor=50.0)
        ref, _ = brute_force_prune(PruneProblem(q.H, q.w0, k=q.k))
        r = cplex_prune(q, time_limit=20)
        assert r.objective == pytest.approx(ref, rel=1e-5, abs=1e-12)


@pytest.mark.mobilenet
def test_real_chunk_equals_exporter_chunk(tmp_path: Path) -> None:
    """A suite instance is exactly the exporter's opt_dim = n chunk (block of the full H)."""
    if not fam.mobilenet_available():
        pytest.skip("MobileNetV2 checkpoint not installed")
    from bounds.export import export_model

    table = [t for t in fam.mobilenet_layer_table() if t.name == "features.3.conv.0.0"]
    assert table and table[0].n == 24 and table[0].family == "mbv2-expand"
    insts = fam.real_instances("mobilenet_v2", ["mbv2-expand"], [8], 2, 5, tmp_path,
                               samples=4, table=table)
    chunked = export_model("mobilenet_v2", layers=["features.3.conv.0.0"], samples=4,
                           opt_dim=8, seed=5)["features.3.conv.0.0"]
    for inst in insts:
        lp = inst.layer_problem()
        ref = chunked[lp.meta["chunk"]]
        c = lp.meta["channel"]
        np.testing.assert_allclose(lp.H, ref.hessian(c), rtol=1e-12, atol=0)
        np.testing.assert_array_equal(lp.W0[0], ref.W0[c])
        assert inst.quant(4).scale == pytest.approx(
            float(ref.meta["scales_mse_tensor"][3]), rel=1e-12)
