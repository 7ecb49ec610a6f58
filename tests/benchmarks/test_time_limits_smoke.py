"""The time-limit benchmark runs end to end (synthetic problems, tiny counts); it checks every
result's validity itself. Its wall-time verdict is not asserted (it depends on the load)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "time_limits.py"


def test_time_limits_benchmark_smoke(capsys):
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("time_limits_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.run(["--synthetic", "--n", "12", "--count", "2", "--limits", "0.001"]) in (0, 1)
    out = capsys.readouterr().out
    assert "quant    12    0.001" in out and "prune    12    0.001" in out
    assert "solves over limit" in out
