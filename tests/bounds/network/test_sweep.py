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


def test_sweep_caches_give_the_standalone_runs(tiny, tmp_path):
    """The sweep's shortcuts (the model, split and original outputs prepared once, one capture
    of the original network for every run, each layer's scales searched once per bit width)
    change nothing: every run equals the same configuration run on its own, from scratch."""
    from bounds.network.run import run_network
    from bounds.network.sweep import run_sweep

    base = NetworkConfig(model=tiny[1], weights=tiny[3], inputs=tiny[5], resamples=50,
                         mode=None)
    plan = sweep_plan(base, methods="rtn,gptq,sparsegpt", bits="3,4")
    calls = []
    real = sweep_module.run_network

    def spy(cfg, folder, **kw):
        calls.append((kw["captured"] is not None, len(kw["scale_cache"])))
        return real(cfg, folder, **kw)

    sweep_module.run_network = spy
    try:
        run_sweep(plan, tmp_path / "sweep")
    finally:
        sweep_module.run_network = real
    assert all(captured for captured, _ in calls)  # one capture served every run
    # gptq at 3 bits found the scales rtn at 3 bits had searched: the cache did not grow
    assert calls[1][1] == calls[0][1] + 2 and calls[2][1] == calls[1][1]
    for cfg in plan:
        folder = tmp_path / "sweep" / "runs" / f"{cfg.method.replace(':', '-')}_{cfg.compression}"
        swept = json.loads((folder / "summary.json").read_text())
        alone = run_network(cfg, tmp_path / "alone" / folder.name, db=tmp_path / "alone.sqlite")
        assert [r["layer"] for r in swept["layers"]] == [r["layer"] for r in alone["layers"]]
        for a, b in zip(swept["layers"], alone["layers"], strict=True):
            for key in ("error", "norm", "nonzeros"):
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12 * b["norm"]), key
        for name, fig in alone["metrics"].items():
            if isinstance(fig, dict):
                assert swept["metrics"][name]["value"] == pytest.approx(fig["value"],
                                                                          rel=1e-9), name
        _, _, out_a, _ = read_outputs(folder / "outputs.npz")
        _, _, out_b, _ = read_outputs(tmp_path / "alone" / folder.name / "outputs.npz")
        np.testing.assert_allclose(out_a, out_b, rtol=1e-9, atol=1e-12)


def test_limit_threads_restores_and_checks():
    from bounds.network.run import limit_threads

    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ProblemError, match="--threads must be a positive integer"):
        with limit_threads(0):
            pass
    with limit_threads(None):
        assert torch.get_num_threads() == before


def test_limit_threads_holds_inside_a_solve(tiny, tmp_path):
    """The limit survives the numba kernels and the BLAS pools a run starts."""
    from bounds.network.run import limit_threads, run_network

    cfg = NetworkConfig(model=tiny[1], weights=tiny[3], inputs=tiny[5], resamples=20,
                        method="gptq", bits=3)
    seen = []
    import bounds.network.run as run_module

    real = run_module.solve_layer

    def spy(cfg, export, **kw):
        out = real(cfg, export, **kw)
        seen.append(torch.get_num_threads())
        return out

    run_module.solve_layer = spy
    try:
        with limit_threads(1):
            run_network(cfg, tmp_path / "one")
    finally:
        run_module.solve_layer = real
    assert seen and set(seen) == {1}
