"""`pqbound network` on the tiny user module: the saved network loads strictly and reproduces
its figures, quantized layers hold grid values, pruned layers their budget, a killed run
resumes to the same network, and bad input exits 2 writing nothing."""

import json

import numpy as np
import pytest
import torch
from tiny_models import write_user_module

import bounds.network.run as run_module
from bounds.cli import main
from bounds.network.layer_solve import layer_scales
from bounds.network.run import prepare
from bounds.network.settings import NetworkConfig
from layers.models import resolve_model
from layers.network.evaluate import compare_outputs, model_outputs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    src, weights = write_user_module(folder)
    torch.manual_seed(1)
    inputs = folder / "x.pt"
    torch.save(torch.randn(40, 3, 8, 8), inputs)
    return {"model": f"{src}:build", "weights": str(weights), "inputs": str(inputs)}


def _run(tiny, out, *extra):
    argv = ["network", "--model", tiny["model"], "--weights", tiny["weights"], "--inputs",
            tiny["inputs"], "--resamples", "100", "--out", str(out), *map(str, extra)]
    return main(argv)


def _fresh(tiny, state=None):
    m = resolve_model(tiny["model"], weights=tiny["weights"]).module
    if state is not None:
        m.load_state_dict(state, strict=True)
    return m


def test_quantized_network_loads_strictly_and_reproduces_its_figures(tiny, tmp_path):
    assert _run(tiny, tmp_path, "--method", "gptq", "--bits", 3) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["weights"] == tiny["weights"] and s["layer_count"] == 2
    state = torch.load(tmp_path / "state_dict.pt", weights_only=True)
    original = _fresh(tiny)
    assert set(state) == set(original.state_dict())
    net = _fresh(tiny, state)
    # every quantized row is on its 3-bit grid (scales from the float16-rounded weights)
    for name in ("conv", "fc"):
        W0 = getattr(original, name).weight.detach().reshape(
            getattr(original, name).weight.shape[0], -1).half().double().numpy()
        W = getattr(net, name).weight.detach().reshape(W0.shape).double().numpy()
        s_c = layer_scales(W0, 3, "channel")[:, None]
        codes = W / s_c
        assert np.allclose(codes, np.round(codes), atol=1e-5)
        assert codes.min() >= -4 - 1e-5 and codes.max() <= 3 + 1e-5
    # untouched tensors are unchanged
    assert torch.equal(state["bn.weight"], original.state_dict()["bn.weight"])
    # the figures, recomputed from the saved state dict
    cfg = NetworkConfig(model=tiny["model"], weights=tiny["weights"], inputs=tiny["inputs"],
                        method="gptq", bits=3, resamples=100).checked()
    _, split, _ = prepare(cfg)
    kind, ref = model_outputs(original, split.heldout)
    _, out = model_outputs(net, split.heldout)
    again = compare_outputs(kind, ref, out, resamples=100, seed=0)
    for key in ("top1_agreement", "kl", "logit_sqnr_db"):
        assert np.isclose(again[key]["value"], s["metrics"][key]["value"], rtol=1e-9)
        assert np.allclose(again[key]["ci95"], s["metrics"][key]["ci95"], rtol=1e-9)
    # per-layer figures: error on the captured H, SQNR from the sums
    for rec in s["layers"]:
        assert rec["error"] > 0 and np.isclose(
            rec["sqnr_db"], 10 * np.log10(rec["norm"] / rec["error"]))


@pytest.mark.parametrize("extra,kept", [(("--bits", 4), {"conv": 7, "fc": 1}),
                                        (("--density", 0.5), {"conv": 14, "fc": 2})])
def test_pruned_layers_keep_at_most_their_budget(tiny, tmp_path, extra, kept):
    assert _run(tiny, tmp_path, "--method", "sparsegpt", *extra) == 0
    state = torch.load(tmp_path / "state_dict.pt", weights_only=True)
    for name, k in kept.items():
        W = state[f"{name}.weight"].reshape(state[f"{name}.weight"].shape[0], -1)
        assert int((W != 0).sum(1).max()) <= k  # round(d·n): n = 27 and 4
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["kind"] == "prune"


def test_parallel_mode_and_layer_choice(tiny, tmp_path):
    assert _run(tiny, tmp_path, "--method", "rtn", "--bits", 4, "--mode", "parallel",
                "--layer", "fc") == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert [r["layer"] for r in s["layers"]] == ["fc"]
    state = torch.load(tmp_path / "state_dict.pt", weights_only=True)
    assert torch.equal(state["conv.weight"], _fresh(tiny).state_dict()["conv.weight"])


def test_killed_run_resumes_to_the_same_network(tiny, tmp_path, monkeypatch):
    assert _run(tiny, tmp_path / "whole", "--method", "obs", "--bits", 4) == 0
    real = run_module.solve_layer
    calls = []

    def dies_on_second(cfg, export, **kw):
        calls.append(export.spec.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, export, **kw)

    monkeypatch.setattr(run_module, "solve_layer", dies_on_second)
    assert _run(tiny, tmp_path / "part", "--method", "obs", "--bits", 4) == 130
    assert not (tmp_path / "part" / "state_dict.pt").exists()
    monkeypatch.setattr(run_module, "solve_layer", real)
    assert _run(tiny, tmp_path / "part", "--method", "obs", "--bits", 4) == 0
    s = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert s["resumed_layers"] == ["conv"]
    a = torch.load(tmp_path / "whole" / "state_dict.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "state_dict.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("extra,message", [
    (("--method", "nope"), "unknown method 'nope'"),
    (("--method", "exact"), "say quant:exact or prune:exact"),
    (("--method", "magnitude", "--density", 1.5), "density must lie in [0, 1]"),
    (("--method", "rtn", "--bits", 0), "bits must be an integer in 1..16"),
    (("--method", "rtn", "--bits", 17), "bits must be an integer in 1..16"),
    (("--method", "rtn", "--layer", "bn"), "BatchNorm2d, which cannot be exported"),
    (("--method", "rtn", "--layer", "nothere"), "unknown layer 'nothere'"),
    (("--method", "rtn", "--density", 0.5), "--density and --nm are for pruning"),
    (("--method", "magnitude", "--nm", "2:4"), "--skip them"),
])
def test_bad_input_exits_2_and_writes_nothing(tiny, tmp_path, capsys, extra, message):
    out = tmp_path / "o"
    assert _run(tiny, out, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (out / "state_dict.pt").exists() and not (out / "summary.json").exists()


def test_unwritable_output_folder(tiny, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _run(tiny, blocker, "--method", "rtn") == 2
    assert "cannot write to output folder" in capsys.readouterr().err
