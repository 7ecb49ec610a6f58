"""The box-screen benchmark runs end to end on synthetic families and finds the two ways
agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "prune_box_screen.py"


def test_prune_box_screen_smoke(capsys):
    spec = importlib.util.spec_from_file_location("prune_box_screen_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--synthetic", "1", "--rows", "3", "--bits", "2"]) == 0
    out = capsys.readouterr().out
    assert "| synthetic0 | 4 | 3 |" in out and "objectives agree on every row" in out
