"""`pqbound distribution` and `pqbound tensors` end to end; the sweep; the PNG figures."""

import json
import math

import numpy as np
import pytest

from bounds.cli import main
from bounds.distribution.kurtosis_sweep import kurtosis_sweep


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    return data


def test_distribution_json(capsys):
    assert main(["distribution", "--dist", "normal", "--bits", "2", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dist"] == "normal" and doc["kurtosis"] == pytest.approx(0, abs=1e-12)
    assert set(doc["bits"]) == {"2", "4"}
    b4 = doc["bits"]["4"]
    assert {"quant_sqnr_db", "prune_sqnr_db", "scale"} <= set(b4)
    assert b4["quant_sqnr_db"] > b4["prune_sqnr_db"]
    assert 0.2 < b4["scale"] < 0.5  # in units of σ


def test_distribution_table_and_heavy_tails(capsys):
    assert main(["distribution", "--dist", "t", "--df", "3", "--truncate", "20", "--bits",
                 "2"]) == 0
    out = capsys.readouterr().out
    assert "t(df=3) truncated to ±20" in out and "quant SNR dB" in out
    assert main(["distribution", "--dist", "t", "--df", "4", "--bits", "2"]) == 0
    assert "inf (infinite" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["--dist", "t", "--df", "2"], "infinite variance"),
    (["--dist", "t"], "degrees of freedom"),
    (["--dist", "normal", "--bits", "1"], "bits"),
    (["--sweep", "--dist", "normal"], "exactly one"),
    ([], "exactly one"),
    (["--sweep", "--df", "3"], "--dist only"),
    (["--dist", "normal", "--quick"], "apply to --sweep"),
])
def test_distribution_errors_exit_cleanly(capsys, argv, msg):
    assert main(["distribution", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pqbound: error:") and msg in err


def test_sweep_crossover_and_plot(tmp_path, capsys):
    fams = {"student-t": [("normal", None, None), ("t", 6, None), ("t", 4.2, None)],
            "truncated-t3": [("t", 3.0, 5), ("t", 3.0, 30), ("t", 3.0, 300)]}
    sweep = kurtosis_sweep([2, 6], fams)
    # pruning's SNR rises and quantization's falls with kurtosis in each family
    for fam in fams:
        pts = sweep.family(fam)
        assert [p.kurtosis for p in pts] == sorted(p.kurtosis for p in pts)
        gaps = [p.gap_db(2) for p in pts]
        assert gaps == sorted(gaps, reverse=True)
    # at 2 bits pruning wins on the bounded-outlier family, at a kurtosis inside it
    k = sweep.crossover("truncated-t3", 2)
    pts = sweep.family("truncated-t3")
    assert k is not None and pts[0].kurtosis <= k <= pts[-1].kurtosis
    assert sweep.crossover("student-t", 6) is None
    doc = sweep.to_dict()
    assert len(doc["points"]) == 6 and doc["crossovers"]["student-t"]["6"] is None
    json.dumps(doc, allow_nan=False)
    assert "crossover kurtosis" in sweep.table()
    from bounds.distribution.figures import plot_kurtosis_sweep

    _png(plot_kurtosis_sweep(sweep, tmp_path / "sweep.png"))


def test_cli_sweep_quick_with_plot(tmp_path, capsys):
    assert main(["distribution", "--sweep", "--quick", "--bits", "2", "--plot",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "crossover kurtosis" in out and "t(df=4.1)" in out
    _png(tmp_path / "kurtosis_sweep.png")


def test_cli_figures(tmp_path, capsys):
    assert main(["distribution", "--figures", str(tmp_path), "--quick", "--bits", "2",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {p["family"] for p in doc["points"]} == {"student-t", "truncated-t3"}
    _png(tmp_path / "figure1_normal.png")
    _png(tmp_path / "kurtosis_sweep.png")


torch = pytest.importorskip("torch")


def _checkpoint(tmp_path):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 16, 1), torch.nn.Flatten(),
                              torch.nn.Linear(64, 10))
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    return path


def test_tensors_cli_json_plot_and_resume(tmp_path, capsys):
    path = _checkpoint(tmp_path)
    js, png = tmp_path / "out.json", tmp_path / "out.png"
    assert main(["tensors", "--model", str(path), "--bits", "2", "4", "--json", str(js),
                 "--plot", str(png), "--table", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 bits: quantization wins in" in out and "4 bits:" in out
    assert "Q/P/Pc" in out
    doc = json.loads(js.read_text())
    assert list(doc) == ["0", "2", "4"]
    for entry in doc.values():
        assert math.isfinite(entry["kurtosis"])
        assert set(entry["bits"]) == {"2", "4"}
        for r in entry["bits"].values():
            assert {"quant_sqnr_db", "quant_zero_fraction", "prune_sqnr_db",
                    "prune_sqnr_corrected_db"} <= set(r)
    _png(png)
    # resume: tensors already in the file are reused, not recomputed
    doc["0"]["bits"]["2"]["quant_sqnr_db"] = 123.0
    js.write_text(json.dumps(doc))
    assert main(["tensors", "--model", str(path), "--bits", "2", "--json", str(js),
                 "--resume", "--quiet"]) == 0
    assert json.loads(js.read_text())["0"]["bits"]["2"]["quant_sqnr_db"] == 123.0


def test_tensors_cli_errors(tmp_path, capsys):
    assert main(["tensors", "--model", "nope"]) == 2
    assert "valid models: mobilenet_v2, efficientnet_lite0" in capsys.readouterr().err
    assert main(["tensors", "--model", str(_checkpoint(tmp_path)), "--resume"]) == 2
    assert "--resume needs --json" in capsys.readouterr().err


def test_tensor_plot_many_bit_widths(tmp_path):
    from bounds.distribution.figures import plot_tensor_study
    from bounds.distribution.weight_tensors import ModelStudy, analyse_tensor

    rng = np.random.default_rng(0)
    study = ModelStudy()
    for i, df in enumerate((3, 5, 30)):
        study.tensors[f"t{i}"] = analyse_tensor(rng.standard_t(df, 2000), [2, 3, 4, 6, 8])
    _png(plot_tensor_study(study, tmp_path / "zoo.png", title="random"))
