"""The layer scan runs end to end: one real MobileNetV2 layer, n = 8, a node limit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from benchmark_scripts import load_benchmark


def _module():
    return load_benchmark("prune_scan")


def test_prune_scan_smoke(tmp_path, capsys):
    pytest.importorskip("torch")
    mod = _module()
    out, rep = tmp_path / "rows.json", tmp_path / "scan.md"
    assert mod.main(["--layers", "features.2.conv.0.0", "--n", "8", "--samples", "2",
                     "--channels", "1", "--densities", "0.25", "0.5", "--node-limit", "500",
                     "--cpu-limit", "20", "--no-cache", "--json", str(out),
                     "--report", str(rep)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["layer"], r["n"], r["density"]) for r in rows] == [
        ("features.2.conv.0.0", 8, 0.25), ("features.2.conv.0.0", 8, 0.5)]
    for r in rows:
        assert r["lower_bound"] <= r["objective"] * (1 + 1e-12)
        assert len(r["weights"]) == 8 and np.count_nonzero(r["weights"]) <= r["k"]
        assert 0 < r["share_jacobi"] <= 1 and 0 < r["share_logdet"] <= 1
        assert r["cpu"] >= 0 and r["nodes"] <= 500 + 64
        assert sum(r["depth_hist"]) == r["nodes"]  # every node attributed to one depth
    text = rep.read_text()
    assert "| features.2.conv.0.0 | 8 |" in text and "thread CPU" in text
    # the report can be rebuilt from the rows alone
    assert mod.main(["--summarize", str(out)]) == 0
    assert "| features.2.conv.0.0 | 8 |" in capsys.readouterr().out


def test_cpu_clock_limits_the_solve():
    """Under :func:`cpu_clock` the solver's time limit counts thread CPU seconds, and the
    solver's clock is restored afterwards."""
    mod = _module()
    import time

    from solvers import PruneProblem, solve
    from solvers.prune import exact, search

    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 48)) + 2.0 * rng.standard_normal((200, 1))
    p = PruneProblem(X.T @ X, rng.standard_normal(48), k=12)
    solve(p, "exact", node_limit=10)  # warm
    with mod.cpu_clock():
        assert search.time.perf_counter is time.thread_time
        t0 = time.thread_time()
        r = solve(p, "exact", time_limit=0.05)
        used = time.thread_time() - t0
    assert exact.Stopwatch.__module__ == "solvers.stopwatch" and search.time is time
    assert r.lower_bound <= r.objective
    assert used <= 0.05 + 1.0  # CPU seconds: never depends on the load
    assert r.seconds <= used + 1e-3  # the result's seconds are the CPU clock's


def test_stalled_layers_and_proved():
    mod = _module()
    rows = [{"layer": "a", "status": "optimal", "cpu": 1.0},
            {"layer": "b", "status": "time_limit", "cpu": 10.0},
            {"layer": "b", "status": "optimal", "cpu": 70.0},
            {"layer": "c", "status": "node_limit", "cpu": 1.0}]
    assert mod.stalled_layers(rows) == ["b", "c"]
    assert [mod.proved(r, 60.0) for r in rows] == [True, False, False, False]


def test_prune_scan_baseline_side_by_side(tmp_path):
    """``--baseline`` solves every instance twice (baseline first) and the report compares
    them; options are checked by name before any work."""
    pytest.importorskip("torch")
    mod = _module()
    out, rep = tmp_path / "rows.json", tmp_path / "scan.md"
    assert mod.main(["--layers", "features.2.conv.0.0", "--n", "8", "--samples", "2",
                     "--channels", "1", "--densities", "0.25", "--node-limit", "500",
                     "--no-cache", "--options", '{"resplit": 1}', "--baseline", "{}",
                     "--json", str(out), "--report", str(rep)]) == 0
    data = json.loads(out.read_text())
    assert data["settings"]["options"] == {"resplit": 1} and data["settings"]["baseline"] == {}
    (row,) = data["rows"]
    assert row["base"]["status"] == row["status"] == "optimal"
    assert abs(row["base"]["objective"] - row["objective"]) <= 1e-9 * row["norm"]
    assert len(row["base"]["weights"]) == 8
    text = rep.read_text()
    assert 'Baseline {} vs {"resplit": 1}' in text and "proved: baseline 1/1, new 1/1" in text
    for bad in ('{"nope": 1}', "[1]", '{"node_limit": 3}'):
        with pytest.raises(SystemExit):
            mod.main(["--layers", "features.2.conv.0.0", "--options", bad])


def test_under_calibrated_layers_are_named():
    """Layers whose ``H`` came from fewer than 4·n rows are listed apart in the report."""
    mod = _module()
    base = {"type": "Linear", "depthwise": False, "layer_n": 64, "n": 64, "density": 0.25,
            "status": "optimal", "cpu": 1.0, "wall": 1.0, "nodes": 10, "gap": 0.0,
            "root_share": 0.5}
    rows = [dict(base, layer="classifier.1", rows=64),
            dict(base, layer="features.8.conv.0.0", rows=12544),
            dict(base, layer="old", rows=None)]
    assert mod.under_calibrated(rows) == ["classifier.1"]
    settings = {"model": "m", "n": 64, "channels": 1, "argv": ["x"], "commit": "c",
                "numpy": "2", "start": "now", "load_start": (1.0, 1.0, 1.0), "cpu_limit": 60,
                "clock": "thread CPU", "node_limit": None, "samples": 64, "seed": 0}
    assert "under-calibrated" in mod.report(rows, settings)
    assert "under-calibrated" not in mod.report(rows[1:], settings)


def test_threads_need_the_wall_clock(capsys):
    """The CPU-time limit counts the calling thread only: ``threads`` without
    ``--wall-clock`` is refused before any work."""
    mod = _module()
    with pytest.raises(SystemExit) as exc:
        mod.main(["--layers", "features.2.conv.0.0", "--options", '{"threads": 2}'])
    assert exc.value.code == 2
    assert "--wall-clock" in capsys.readouterr().err


def test_wall_clock_rows_are_judged_on_the_wall_clock():
    mod = _module()
    row = {"status": "optimal", "cpu": 1.0, "wall": 50.0, "clock": "wall"}
    assert not mod.proved(row, 10.0) and mod.proved(dict(row, clock="cpu"), 10.0)
    assert mod.proved({"status": "optimal", "cpu": 1.0, "wall": 50.0}, 10.0)  # older rows
