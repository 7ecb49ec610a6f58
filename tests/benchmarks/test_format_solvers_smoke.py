"""The format benchmark script runs end to end (synthetic problems, ours only, tiny counts)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "format_solvers.py"


@pytest.mark.slow  # ~20 s here: five cases, two parts, the sparse ones run to their limit
def test_format_benchmark_smoke(tmp_path, capsys):
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("format_solvers_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "report.txt"
    assert mod.main(["--synthetic", "--no-cplex", "--n", "16", "--count", "1", "--limit", "1",
                     "--count-64", "1", "--limit-64", "1", "--out", str(out)]) == 0
    text = out.read_text()
    for label in ("int4-asym", "fp4-e2m1", "nf4", "int4 50% nz", "int4 25% nz"):
        assert f"{label:<12} median ours" in text
    assert "Part 2: n = 64" in text and "proved" in text
