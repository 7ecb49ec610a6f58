"""`pqbound layers` and `pqbound export` end to end."""

import json

import numpy as np
import pytest

from bounds.cli import main
from bounds.problem_file import load_problem


@pytest.mark.mobilenet
def test_layers_command(capsys):
    assert main(["layers", "--model", "mobilenet_v2"]) == 0
    out = capsys.readouterr().out
    assert "features.8.conv.0.0" in out and "53 exportable layers" in out
    assert main(["layers", "--model", "mobilenet_v2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {"name": "features.0.0", "type": "Conv2d", "weight_shape": [32, 3, 3, 3],
                       "n": 27, "channels": 32, "groups": 1}


@pytest.mark.mobilenet
def test_export_command(tmp_path, capsys):
    out = tmp_path / "probs"
    rc = main(["export", "--model", "mobilenet_v2", "--layer", "features.8.conv.0.0",
               "--opt-dim", "32", "--samples", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "2 problem file(s)" in text
    p = load_problem(out / "features.8.conv.0.0__chunk1.npz")
    assert p.H.shape == (32, 32) and p.W0.shape == (384, 32)
    assert (p.meta["input_start"], p.meta["input_stop"], p.meta["rows"]) == (32, 64, 2 * 196)
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["samples"] == 2 and manifest["layers"]["features.8.conv.0.0"]["chunks"] == 2
    assert manifest["versions"]["torch"].startswith("2.") and manifest["seed"] == 0
    assert np.isfinite(p.meta["scales_mse_tensor"]).all()


def test_export_command_errors(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    rc = main(["export", "--model", "mobilenet_v2", "--layer", "features.0.0",
               "--out", str(blocker), "--quiet"])
    assert rc == 2 and "cannot write to output folder" in capsys.readouterr().err
    rc = main(["export", "--model", "resnet", "--layer", "x", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown model 'resnet'; valid models: mobilenet_v2, efficientnet_lite0" \
        in err and not (tmp_path / "o" / "export.json").exists()


@pytest.mark.mobilenet
def test_export_unknown_layer(tmp_path, capsys):
    rc = main(["export", "--model", "mobilenet_v2", "--layer", "features.99", "--out",
               str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown layer 'features.99'" in err and "features.8.conv.0.0" in err
