"""The quantization tail benchmark runs end to end on a tiny synthetic set (both arms)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "quant_tail.py"


def _set(path: Path) -> None:
    from solvers import QuantProblem
    from solvers.quant.incumbents import rtn

    rng = np.random.default_rng(0)
    data, meta = {}, []
    for i in range(3):
        X = rng.standard_normal((40, 12))
        w = rng.standard_normal(12)
        s = float(np.max(np.abs(w))) / 160.0  # clips at 8 bits: the box binds
        p = QuantProblem(X.T @ X, w, scale=s, bits=8)
        obj = p.error(p.weights(rtn(w / s, p.zmin, p.zmax)))
        data[f"H{i}"], data[f"w{i}"] = X.T @ X, w
        meta.append({"layer": "x", "chunk": 0, "channel": i, "bits": 8, "scale": s,
                     "objective": obj, "lower_bound": 0.0, "seconds": 10.0,
                     "nodes": 1, "status": "time_limit"})
    np.savez(path, meta=json.dumps(meta), **data)


def test_quant_tail_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("quant_tail_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _set(tmp_path / "t.npz")
    assert mod.main([str(tmp_path / "t.npz"), "--ordinary", str(tmp_path / "t.npz"),
                     "--time-limit", "1", "--before-sample", "2"]) == 0
    text = capsys.readouterr().out
    assert "after  (recentre) : proved " in text  # how many: timing, not asserted
    assert "before, 2 problems" in text and "CPU median after/before" in text
