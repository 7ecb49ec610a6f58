"""The study-slice benchmark: a tiny slice of a hand-made layer solved through the study's
path (plan, batches, run_batch), and the answer comparison (no model, no subprocess)."""

from __future__ import annotations

import pickle

import numpy as np
from benchmark_scripts import load_benchmark

from solvers.problem import LayerProblem


def _module():
    return load_benchmark("study_slice")


def test_a_tiny_slice_is_solved_and_certified(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((48, 40))
    cache = tmp_path / "export.pkl"
    with open(cache, "wb") as f:
        pickle.dump({"toy": LayerProblem(X.T @ X, rng.standard_normal((3, 40)))}, f)
    out = _module().solve_slice(str(cache), ["toy"], 2, 1, [2, 4], 5.0)
    rows = out["rows"]
    assert len(rows) == 2 * 2 * 2  # channels x bits x kinds, one chunk
    assert {r["kind"] for r in rows} == {"quant", "prune"}
    for r in rows:
        assert r["status"] == "optimal"
        assert r["lower_bound"] <= r["objective"] * (1 + 1e-9)
        assert r["cpu"] >= 0.0


def test_compare_answers_flags_changed_answers_only():
    mod = _module()
    row = {"layer": "a", "chunk": 0, "channel": 1, "kind": "prune", "bits": 4,
           "status": "optimal", "objective": 1.0, "lower_bound": 1.0}
    same = dict(row, objective=1.0 + 1e-12)
    assert mod.compare_answers([row], [same]) == []
    worse = dict(row, objective=1.5, lower_bound=1.2)
    bad = mod.compare_answers([row], [worse])
    assert any("-> optimal 1.5" in b for b in bad)
    assert any("lower bound above" in b for b in bad)
