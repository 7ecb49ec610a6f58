"""The paper-study benchmark's figures from rows: per-layer SQNR, verdicts, the projection and
the summary files (no model, no solving: hand-made rows)."""

from __future__ import annotations

import math

from benchmark_scripts import load_benchmark


def _module():
    return load_benchmark("paper_study")


def _row(layer, kind, norm, obj, lb, status="optimal", seconds=0.01):
    return {"layer": layer, "bits": 4, "kind": kind, "norm": norm, "objective": obj,
            "lower_bound": lb, "status": status, "seconds": seconds}


ROWS = [_row("a", "quant", 10.0, 0.1, 0.1), _row("a", "quant", 10.0, 0.1, 0.1),
        _row("a", "prune", 10.0, 1.0, 0.05, "time_limit"), _row("a", "prune", 10.0, 1.0, 1.0),
        _row("b", "quant", 4.0, 0.4, 0.4, seconds=0.03), _row("b", "prune", 4.0, 0.04, 0.04)]


def test_layer_figures_sum_like_the_paper_and_prove_only_when_bounds_separate():
    mod = _module()
    a, b = mod.layer_figures(ROWS, ["a", "b"], [4])
    assert math.isclose(a["quant_sqnr"], 10 * math.log10(20 / 0.2))
    assert math.isclose(a["prune_sqnr"], 10 * math.log10(20 / 2.0))
    assert math.isclose(a["prune_ceiling"], 10 * math.log10(20 / 1.05))
    assert a["winner"] == "quantization" and a["proved"]  # 0.2 < 1.05
    assert (a["quant_optimal"], a["prune_optimal"]) == (2, 1)
    assert b["winner"] == "pruning" and b["proved"]  # 0.04 < 0.4


def test_projection_weights_layers_by_their_size():
    mod = _module()
    records = {"a": {"channels_total": 100, "chunks": 2}, "b": {"channels_total": 1, "chunks": 1}}
    # worker CPU equals summed solve seconds (ratio 1); no client CPU
    total = mod.projection(ROWS, records, 1, 0.0, sum(r["seconds"] for r in ROWS))
    assert math.isclose(total, 0.01 * 200 * 2 + 0.03 * 1 + 0.01 * 1)


def test_summary_files(tmp_path):
    mod = _module()
    mod.write_summary(tmp_path, ROWS, ["a", "b"], [4],
                      {"problems": len(ROWS), "channels": "all", "proved": 5}, "run0")
    text = (tmp_path / "README.md").read_text()
    assert "| a | 4 | 2 |" in text and "study.png" in text
    assert (tmp_path / "study.png").stat().st_size > 0
    assert '"run_id": "run0"' in (tmp_path / "study.json").read_text()


def test_summary_marks_partial_layers_and_missing_ones(tmp_path):
    """A stopped run: layer ``a`` planned 3 problems per kind (2 stored) is partial, ``c``
    (planned, nothing stored) is listed as missing, ``b`` complete."""
    mod = _module()
    mod.write_summary(tmp_path, ROWS, ["a", "b", "c"], [4],
                      {"problems": len(ROWS), "planned": 10, "channels": "all", "proved": 5},
                      "run0", expected={"a": 3, "b": 1, "c": 2})
    text = (tmp_path / "README.md").read_text()
    assert "**Partial**: 6 of the run's 10 planned" in text
    assert "| a | 4 | 2 / 2 of 3 (*partial*) |" in text
    assert "| b | 4 | 1 |" in text
    assert "yet (1): c." in text
