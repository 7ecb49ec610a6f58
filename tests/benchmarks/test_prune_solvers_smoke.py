"""The pruning benchmark script runs end to end (synthetic problems, ours only, tiny counts)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "prune_solvers.py"


def test_prune_benchmark_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("prune_solvers_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "rows.json"
    assert mod.run(["--synthetic", "--no-scip", "--no-gurobi", "--count-32", "2",
                    "--count-64", "1", "--limit-64", "5", "--densities", "0.25",
                    "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "n=32 density 0.250" in text and "n=64 density 0.250" in text
    rows = json.loads(out.read_text())["rows"]
    assert {r["solver"] for r in rows} == {"ours_boxed", "ours_unboxed"}
    assert all(r["lower_bound"] <= r["objective"] for r in rows)
