"""``hf:PATH``: local Hugging Face checkpoint folders, offline, exported like any other model."""

import json
import socket

import numpy as np
import pytest
import torch
from optional_models import needs_minilm, needs_transformers
from tiny_models import save_tiny_gpt2

from bounds.export import export_model, list_layers
from layers.errors import ModelLoadError
from layers.models import resolve_model
from solvers.problem import ProblemError

pytestmark = needs_transformers


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2-tiny"))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (nothing may be downloaded)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_tiny_causal_lm_conv1d_layers_export_as_out_by_in(gpt2_dir, no_network):
    model = resolve_model(f"hf:{gpt2_dir}")
    assert model.modality == "text" and model.name == f"hf:{gpt2_dir.resolve()}"
    assert type(model.module).__name__ == "GPT2LMHeadModel"
    infos = {i.name: i for i in list_layers(f"hf:{gpt2_dir}")}
    # layer names are the checkpoint's own module names; Conv1D weights are stored (in, out)
    assert infos["transformer.h.0.attn.c_attn"][1:] == ("Conv1D", (16, 48), 16, 48, 1)
    assert infos["transformer.h.1.mlp.c_proj"].n == 64 and "lm_head" in infos
    layer = "transformer.h.0.attn.c_attn"
    p = export_model(f"hf:{gpt2_dir}", layers=[layer], samples=6, batch_size=3, max_length=12,
                     full_precision=True, scale_bits=[4])[layer][0]
    conv = model.module.transformer.h[0].attn.c_attn
    assert p.meta["kind"] == "transformer_conv1d" and p.W0.shape == (48, 16)
    np.testing.assert_array_equal(p.W0, conv.weight.detach().double().numpy().T)  # (out, in)
    # H is XᵀX over the real tokens only (the end-of-text padding is masked out)
    from layers.calibration import builtin_sentences

    enc = model.tokenizer(builtin_sentences()[:6], padding=True, truncation=True,
                          max_length=12, return_tensors="pt")
    seen = []
    h = conv.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        model.module(**enc)
    h.remove()
    X = seen[0][enc["attention_mask"].bool()].double()
    assert p.meta["rows"] == int(enc["attention_mask"].sum()) == X.shape[0]
    np.testing.assert_allclose(p.H, (X.T @ X).numpy(), rtol=1e-9, atol=1e-9 * float(p.H.max()))
    # the quadratic form is the layer's output error: y = x W + b with W = W0ᵀ
    w = p.W0[3] + np.random.default_rng(0).normal(0, 0.01, 16)
    err = (X.numpy() @ (w - p.W0[3])) ** 2
    assert np.isclose((w - p.W0[3]) @ p.H @ (w - p.W0[3]), err.sum(), rtol=1e-9)


def test_text_file_and_max_length(gpt2_dir, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("one two three four five six seven eight nine ten\n# skipped\nthe cat\n")
    layer = "transformer.h.1.mlp.c_fc"
    p = export_model(f"hf:{gpt2_dir}", layers=[layer], text=text, max_length=4,
                     scale_bits=[4])[layer][0]
    assert p.meta["rows"] == 4 + 2 and p.meta["calibration_source"] == f"text:{text.resolve()}"
    with pytest.raises(ProblemError, match="max_length .* must be a positive integer"):
        export_model(f"hf:{gpt2_dir}", layers=[layer], max_length=0)
    with pytest.raises(ProblemError, match="takes text; use text=FILE"):
        export_model(f"hf:{gpt2_dir}", layers=[layer], images=tmp_path)


@pytest.mark.minilm
@needs_minilm
def test_minilm_folder_by_path_is_the_builtin_model(no_network):
    from layers.models.minilm import model_dir

    layer = "encoder.layer.0.attention.self.query"
    by_path = export_model(f"hf:{model_dir()}", layers=[layer], samples=4, batch_size=2,
                           scale_bits=[4])[layer][0]
    builtin = export_model("minilm", layers=[layer], samples=4, batch_size=2,
                           scale_bits=[4])[layer][0]
    assert by_path.meta["model"] == f"hf:{model_dir()}" and builtin.meta["model"] == "minilm"
    assert by_path.meta["calibration"] == builtin.meta["calibration"]
    np.testing.assert_array_equal(by_path.H, builtin.H)
    np.testing.assert_array_equal(by_path.W0, builtin.W0)


def test_folder_without_a_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="no such folder"):
        resolve_model(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ModelLoadError, match="has no config.json"):
        resolve_model(f"hf:{tmp_path}")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="config.json but no weights"):
        resolve_model(f"hf:{tmp_path}")
    with pytest.raises(ProblemError, match="config.json but no weights"):
        export_model(f"hf:{tmp_path}")


def _copy(src, dst, **config):
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(config)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_architecture_that_cannot_be_built(gpt2_dir, tmp_path):
    bad = _copy(gpt2_dir, tmp_path / "a", architectures=["NoSuchModelForAnything"])
    with pytest.raises(ModelLoadError, match="'NoSuchModelForAnything' is not a class of "
                                             "transformers"):
        resolve_model(f"hf:{bad}")
    bad = _copy(gpt2_dir, tmp_path / "b", architectures=[], model_type="nonsense")
    with pytest.raises(ModelLoadError, match="AutoModel cannot be built from this checkpoint"):
        resolve_model(f"hf:{bad}")


def test_weights_that_do_not_match(gpt2_dir, tmp_path):
    bad = _copy(gpt2_dir, tmp_path / "deeper", n_layer=3)
    with pytest.raises(ModelLoadError, match=r"12 missing keys \(first: transformer.h.2.attn"):
        resolve_model(f"hf:{bad}")
    bad = _copy(gpt2_dir, tmp_path / "shallower", n_layer=1)
    with pytest.raises(ModelLoadError, match=r"unexpected keys \(first: transformer.h.1"):
        resolve_model(f"hf:{bad}")
    bad = _copy(gpt2_dir, tmp_path / "wider", n_embd=32)
    with pytest.raises(ModelLoadError, match=r"mis-shaped keys \(first: .* in the file vs"):
        resolve_model(f"hf:{bad}")


def test_folder_without_tokenizer_needs_inputs(gpt2_dir, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(gpt2_dir / f, bare / f)
    model = resolve_model(f"hf:{bare}")
    assert model.modality is None and model.tokenizer is None
    layer = "transformer.h.0.mlp.c_fc"
    with pytest.raises(ProblemError, match="give its calibration data"):
        export_model(f"hf:{bare}", layers=[layer])
    ids = torch.randint(0, 20, (4, 7))
    p = export_model(f"hf:{bare}", layers=[layer], inputs={"input_ids": ids}, batch_size=2,
                     scale_bits=[4])[layer][0]
    assert p.meta["rows"] == 4 * 7 and p.meta["samples"] == 4


def test_vision_folder_takes_images_with_its_own_normalisation(tmp_path):
    from layers.models.huggingface import transformers_offline

    tf = transformers_offline()
    torch.manual_seed(0)
    cfg = tf.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)
    tf.ViTModel(cfg).save_pretrained(str(tmp_path))
    tf.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5, 0.4, 0.3],
                         image_std=[0.2, 0.25, 0.3]).save_pretrained(str(tmp_path))
    model = resolve_model(f"hf:{tmp_path}")
    assert model.modality == "image" and model.tokenizer is None
    assert (model.image.size, model.image.mean, model.image.std) == (32, (0.5, 0.4, 0.3),
                                                                     (0.2, 0.25, 0.3))
    probs = export_model(f"hf:{tmp_path}", samples=3, scale_bits=[4],
                         layers=["embeddings.patch_embeddings.projection",
                                 "layers.0.attention.q_proj"])
    patch = probs["embeddings.patch_embeddings.projection"][0]
    assert patch.meta["kind"] == "conv" and patch.meta["rows"] == 3 * 16  # 4×4 patches
    assert probs["layers.0.attention.q_proj"][0].meta["rows"] == 3 * 17
    # the photos were normalised with the folder's mean/std: the same data as these inputs
    from layers.calibration import ImageCalibration

    x = torch.cat(list(ImageCalibration(3, preprocessing=model.image)))
    assert patch.meta["calibration"] == export_model(
        f"hf:{tmp_path}", inputs=x, layers=["embeddings.patch_embeddings.projection"],
        scale_bits=[4])["embeddings.patch_embeddings.projection"][0].meta["calibration"]
