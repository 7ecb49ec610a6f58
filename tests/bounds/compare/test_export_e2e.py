"""End to end through the real layer exporter: a toy torch module, then (marked) MobileNetV2."""

from __future__ import annotations

import numpy as np
import pytest

from bounds.compare import ResultStore, run_compare

torch = pytest.importorskip("torch")


class Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(3 * 4 * 4, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_toy_module_through_the_exporter(tmp_path):
    model = Toy()
    x = torch.randn(24, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    s = run_compare(model, layers=["conv", "fc"], inputs=x, db=tmp_path / "r.sqlite",
                    workers=1, bits=(2, 4), opt_dim=9, channels=2, time_limit=1.0,
                    quant_methods=("exact", "rtn", "gptq"),
                    prune_methods=("exact", "magnitude", "sparsegpt"),
                    report=tmp_path / "rep")
    assert s.errors == 0
    assert [e["layer"] for e in s.layers] == ["conv", "fc"]
    conv, fc = s.layers
    assert conv["n"] == 18 and conv["chunks"] == 2 and conv["whole"]
    assert fc["n"] == 48 and fc["chunks"] == 6 and not fc["whole"]  # 3 of 6 chunks by default
    with ResultStore(tmp_path / "r.sqlite", readonly=True) as st:
        rows = st.rows(s.run_id, solutions=True)
    # Quantized solutions lie on the grid of the run's scale; pruned ones keep at most k.
    for r in rows:
        if r["scope"] == "chunk" and r["kind"] == "quant":
            z = np.asarray(r["weights"]) / r["scale"]
            np.testing.assert_allclose(z, np.round(z), atol=1e-6)
            z = np.round(z)
            assert z.min() >= -(2 ** (r["bits"] - 1)) and z.max() <= 2 ** (r["bits"] - 1) - 1
        if r["scope"] == "chunk" and r["kind"] == "prune":
            assert np.count_nonzero(r["weights"]) <= r["k"]
    for ln in conv["scopes"]["whole"]:
        for f in (ln["quant"], ln["prune"]):
            assert f["lower_bound"] <= f["best_error"] * (1 + 1e-9)
    assert (tmp_path / "rep" / "layer-conv.png").exists()


@pytest.mark.mobilenet
@pytest.mark.slow
def test_mobilenet_stem_conv(tmp_path):
    s = run_compare("mobilenet_v2", layers=["features.0.0"], samples=4, bits=(2, 4),
                    channels=1, db=tmp_path / "m.sqlite", workers=1, time_limit=5.0)
    assert s.errors == 0
    (e,) = s.layers
    assert e["n"] == 27 and e["chunks"] == 1
    for ln in e["scopes"]["chunk"]:
        assert ln["quant"]["lower_bound"] <= ln["quant"]["methods"]["rtn"]["error"]
        assert ln["prune"]["lower_bound"] <= ln["prune"]["methods"]["magnitude"]["error"]


@pytest.mark.mobilenet
def test_cli_compare_json_on_a_depthwise_layer(tmp_path, capsys):
    import json

    from bounds.cli import main

    db = tmp_path / "c.sqlite"
    args = ["compare", "--layer", "features.2.conv.1.0", "--samples", "2", "--bits", "2", "4",
            "--channels", "1", "--workers", "1", "--time-limit", "5", "--db", str(db),
            "--methods", "exact", "rtn", "magnitude", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    (layer,) = doc["layers"]
    assert layer["layer"] == "features.2.conv.1.0" and layer["n"] == 9
    assert doc["settings"]["protocol"] == "exact" and doc["solved"] == doc["tasks"] > 0
    for ln in layer["scopes"]["chunk"]:
        assert ln["quant"]["lower_bound"] <= ln["quant"]["methods"]["rtn"]["error"]
    # Same command again: everything comes from the store.
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["solved"] == 0 and again["reused"] == doc["tasks"]
    assert main(["compare", "--layer", "nope", "--db", str(db), "--quiet"]) == 2
