"""Every model reference from the command line: `layers`, `export`, `compare`, `tensors`."""

import json

import numpy as np
import pytest
import torch
from optional_models import needs_efficientnet, needs_transformers
from tiny_models import save_tiny_gpt2, write_user_module

from bounds.cli import main
from bounds.problem_file import load_problem


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture
def user(tmp_path):
    src, weights = write_user_module(tmp_path / "user")
    x = tmp_path / "x.pt"
    torch.save(torch.randn(4, 3, 6, 6), x)
    return src, weights, x


@pytest.mark.efficientnet
@needs_efficientnet
def test_efficientnet_layers_and_export(tmp_path, capsys):
    assert main(["layers", "--model", "efficientnet_lite0"]) == 0
    out = capsys.readouterr().out
    assert "_blocks.3._depthwise_conv" in out and "50 exportable layers" in out
    rc = main(["export", "--model", "efficientnet_lite0", "--layer", "_conv_stem",
               "--samples", "2", "--out", str(tmp_path / "p"), "--quiet"])
    assert rc == 0
    p = load_problem(tmp_path / "p" / "_conv_stem__chunk0.npz")
    assert p.W0.shape == (32, 27) and p.meta["rows"] == 2 * 112 * 112
    assert p.meta["model"] == "efficientnet_lite0"


@pytest.mark.efficientnet
@pytest.mark.slow
@needs_efficientnet
def test_efficientnet_export_classifier(tmp_path, capsys):
    rc = main(["export", "--model", "efficientnet_lite0", "--layer", "_fc", "--samples", "2",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    p = load_problem(tmp_path / "_fc__chunk0.npz")
    assert p.W0.shape == (1000, 1280) and p.meta["rows"] == 2


@needs_transformers
def test_hf_layers_and_export(gpt2_dir, tmp_path, capsys):
    assert main(["layers", "--model", f"hf:{gpt2_dir}", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["transformer.h.0.attn.c_attn"]["type"] == "Conv1D"
    text = tmp_path / "t.txt"
    text.write_text("a first sentence that is long enough to be cut\nand a second one\n")
    out = tmp_path / "probs"
    rc = main(["export", "--model", f"hf:{gpt2_dir}", "--layer", "transformer.h.0.attn.c_attn",
               "--text", str(text), "--max-length", "5", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    p = load_problem(out / "transformer.h.0.attn.c_attn__chunk0.npz")
    assert p.W0.shape == (48, 16) and p.meta["rows"] == 5 + 4
    assert p.meta["model"] == f"hf:{gpt2_dir.resolve()}"
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["calibration_source"] == f"text:{text.resolve()}"


def test_user_module_export_with_weights_and_inputs(user, tmp_path, capsys):
    src, weights, x = user
    out = tmp_path / "probs"
    rc = main(["export", "--model", f"{src}:build", "--weights", str(weights), "--inputs",
               str(x), "--all-layers", "--full-precision", "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    p = load_problem(out / "fc__chunk0.npz")
    sd = torch.load(weights, weights_only=True)
    np.testing.assert_array_equal(p.W0, sd["fc.weight"].double().numpy())
    assert p.meta["rows"] == 4 and json.loads((out / "export.json").read_text())[
        "weights"] == str(weights)
    assert main(["layers", "--model", f"{src}:build"]) == 0
    assert "2 exportable layers" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet50"], "unknown model 'resnet50'; valid models: mobilenet_v2, "
                              "efficientnet_lite0, minilm, or hf:PATH"),
    (["--model", "hf:/no/such/folder"], "no such folder"),
    (["--model", "USER:broken"], "the factory cannot build the module"),
    (["--model", "USER:build", "--weights", "BAD"], "1 missing key (first: fc.bias)"),
    (["--model", "USER:build", "--weights", "WEIGHTS", "--inputs", "X", "--layer", "bn"],
     "layer 'bn' is a BatchNorm2d, which cannot be exported"),
    (["--model", "USER:build", "--weights", "WEIGHTS"], "is a user module: give its "
                                                        "calibration data"),
    (["--model", "USER:build", "--inputs", "X", "--layer", "conv", "--text", "X"],
     "not allowed with argument"),
])
def test_bad_input_is_a_clear_error_and_nothing_is_written(user, tmp_path, capsys, args,
                                                           message):
    src, weights, x = user
    sd = torch.load(weights, weights_only=True)
    sd.pop("fc.bias")
    torch.save(sd, tmp_path / "bad.pt")
    subs = {"USER": str(src), "BAD": str(tmp_path / "bad.pt"), "WEIGHTS": str(weights),
            "X": str(x)}
    args = [subs.get(a, a) if ":" not in a else a.replace("USER", str(src)) for a in args]
    out = tmp_path / "out"
    if "--layer" not in args:
        args += ["--all-layers"]
    try:
        rc = main(["export", *args, "--out", str(out), "--quiet"])
    except SystemExit as exc:  # argparse refuses conflicting options itself
        rc = exc.code
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not list(out.glob("*.npz")) and not (out / "export.json").exists()


@needs_transformers
def test_tensors_accepts_every_reference(user, gpt2_dir, tmp_path, capsys):
    src, weights, _ = user
    js = tmp_path / "t.json"
    assert main(["tensors", "--model", f"{src}:build", "--weights", str(weights), "--bits", "4",
                 "--json", str(js), "--quiet"]) == 0
    assert set(json.loads(js.read_text())) == {"conv", "fc"}
    assert main(["tensors", "--model", f"hf:{gpt2_dir}", "--bits", "4", "--json", str(js),
                 "--quiet"]) == 0
    assert "transformer.h.1.mlp.c_proj" in json.loads(js.read_text())
    assert main(["tensors", "--model", f"{src}:nope"]) == 2
    assert "has no attribute 'nope'" in capsys.readouterr().err


def test_compare_a_user_module(user, tmp_path, capsys):
    src, weights, x = user
    db = tmp_path / "r.sqlite"
    rc = main(["compare", "--model", f"{src}:build", "--weights", str(weights), "--inputs",
               str(x), "--layer", "fc", "--bits", "4", "--channels", "1", "--chunks", "1",
               "--workers", "1", "--no-whole-layer", "--no-direct", "--methods", "rtn",
               "magnitude", "--db", str(db), "--json"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["settings"]["model"] == f"{src}:build"
    assert summary["settings"]["layers"] == ["fc"] and summary["errors"] == 0
    rc = main(["compare", "--model", f"{src}:build", "--weights", str(weights), "--inputs",
               str(x), "--db", str(db), "--quiet"])
    assert rc == 2 and "no default layer set" in capsys.readouterr().err
