"""`pqbound network --sweep` on the tiny user module: the plan, the report, the verdicts and
resume."""

import json

import numpy as np
import pytest
import torch
from tiny_models import write_user_module

import bounds.network.sweep as sweep_module
from bounds.cli import main
from bounds.network.run import read_outputs
from bounds.network.settings import NetworkConfig
from bounds.network.sweep import sweep_plan
from layers.network.evaluate import statistics
from solvers.problem import ProblemError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    src, weights = write_user_module(folder)
    torch.manual_seed(2)
    inputs = folder / "x.pt"
    torch.save(torch.randn(40, 3, 8, 8), inputs)
    return ["--model", f"{src}:build", "--weights", str(weights), "--inputs", str(inputs)]


def test_plan_pairs_every_method_with_every_size():
    plan = sweep_plan(NetworkConfig(mode=None), methods="rtn,sparsegpt", bits="2,8")
    assert [(c.method, c.compression, c.mode) for c in plan] == [
        ("quant:rtn", "int2", "parallel"), ("prune:sparsegpt", "d0.125", "parallel"),
        ("quant:rtn", "int8", "parallel"), ("prune:sparsegpt", "d0.5", "parallel")]
    with pytest.raises(ProblemError, match="unknown method"):
        sweep_plan(NetworkConfig(), methods="rtn,nope")
    with pytest.raises(ProblemError, match="bits must be an integer in 1..16"):
        sweep_plan(NetworkConfig(), bits="0")


def test_sweep_report_verdicts_and_resume(tiny, tmp_path, monkeypatch):
    argv = ["network", *tiny, "--sweep", "--sweep-methods", "rtn,magnitude", "--sweep-bits",
            "2", "--resamples", "200", "--out", str(tmp_path)]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["mode"] == "parallel" and len(doc["runs"]) == 2
    assert (tmp_path / "network.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "## Verdict per size" in report and "network.png" in report
    # each verdict: the paired difference recomputed from the runs' saved outputs
    for row in doc["verdicts"]:
        fig = row["figures"]["top1_agreement"]
        q = tmp_path / "runs" / f"quant-rtn_int{row['bits']}" / "outputs.npz"
        p = tmp_path / "runs" / f"prune-magnitude_d{row['density']:g}" / "outputs.npz"
        kind, ref, outq, _ = read_outputs(q)
        _, _, outp, _ = read_outputs(p)
        idx = np.arange(ref.shape[0])
        want = statistics(kind, ref, outq)["top1_agreement"](idx) - \
            statistics(kind, ref, outp)["top1_agreement"](idx)
        a = fig["advantage_of_quantization"]
        assert np.isclose(a["value"], want)
        lo, hi = a["ci95"]
        assert fig["verdict"] == ("quantization" if lo > 0 else "pruning" if hi < 0
                                  else "not resolved")
    # a second sweep finds every run finished and solves nothing
    monkeypatch.setattr(sweep_module, "run_network",
                        lambda *a, **k: pytest.fail("a finished run was solved again"))
    assert main(argv) == 0
