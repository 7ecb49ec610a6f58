"""``pqbound compare --all-layers``: every exportable layer of the model, exclusive of --layer."""

from __future__ import annotations

import pytest

import bounds.compare.run as run_module
from bounds.cli import main


class _Stop(Exception):
    pass


def test_all_layers_lists_every_exportable_layer(tmp_path, monkeypatch):
    seen = {}

    def fake_run(model, *, config, **kw):
        seen["layers"] = list(config.layers)
        raise _Stop

    monkeypatch.setattr(run_module, "run_compare", fake_run)
    with pytest.raises(_Stop):
        main(["compare", "--all-layers", "--protocol", "paper", "--db",
              str(tmp_path / "r.sqlite"), "--quiet"])
    layers = seen["layers"]
    assert len(layers) == 53 and len(set(layers)) == 53  # MobileNetV2: 52 convolutions + fc
    assert layers[0] == "features.0.0" and layers[-1] == "classifier.1"


def test_all_layers_and_layer_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--all-layers", "--layer", "features.0.0", "--db",
              str(tmp_path / "r.sqlite")])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
