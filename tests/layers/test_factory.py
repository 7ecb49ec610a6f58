"""Your own module (``module:factory``, ``file.py:factory``), its weights and saved inputs."""

import numpy as np
import pytest
import torch
from tiny_models import write_user_module

from bounds.export import export_model, list_layers
from layers.calibration import InputBatches, read_inputs
from layers.errors import CalibrationError, ModelLoadError
from layers.models import resolve_model
from solvers.problem import ProblemError


@pytest.fixture
def user(tmp_path):
    return write_user_module(tmp_path / "user")


def test_file_factory_with_weights_and_saved_inputs(user, tmp_path):
    src, weights = user
    x = torch.randn(6, 3, 5, 5)
    np.save(tmp_path / "x.npy", x.numpy())
    probs = export_model(f"{src}:build", state_dict=weights, inputs=tmp_path / "x.npy",
                         batch_size=4, full_precision=True, scale_bits=[4])
    assert list(probs) == ["conv", "fc"]
    saved = torch.load(weights, weights_only=True)
    np.testing.assert_array_equal(probs["conv"][0].W0,
                                  saved["conv.weight"].reshape(4, -1).double().numpy())
    p = probs["fc"][0]
    assert p.meta["rows"] == 6 and p.meta["samples"] == 6 and p.meta["model"] == f"{src}:build"
    assert p.meta["calibration_source"] == f"inputs:{(tmp_path / 'x.npy').resolve()}"
    # the same inputs as a tensor give the same H (the fingerprint is of the data)
    again = export_model(f"{src}:build", state_dict=weights, inputs=x, scale_bits=[4])["fc"][0]
    np.testing.assert_allclose(again.H, p.H, rtol=1e-12)
    assert again.meta["calibration"] == p.meta["calibration"]


def test_importable_module_factory(user, monkeypatch):
    src, _ = user
    monkeypatch.syspath_prepend(str(src.parent))
    m = resolve_model("nets:build")
    assert m.name == "nets:build" and m.modality is None and not m.module.training
    assert [i.name for i in list_layers("nets:build")] == ["conv", "fc"]


def test_user_module_takes_image_folders(user, tmp_path):
    from PIL import Image

    src, weights = user
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    p = export_model(f"{src}:build", state_dict=weights, layers=["conv"], images=folder,
                     samples=3, scale_bits=[4])["conv"][0]
    assert p.meta["rows"] == 3 * 224 * 224 and p.meta["calibration_source"].startswith("images:")


def test_factory_errors(user, tmp_path):
    src, _ = user
    with pytest.raises(ModelLoadError, match="no such Python file"):
        resolve_model(f"{tmp_path / 'nope.py'}:build")
    with pytest.raises(ModelLoadError, match=r"has no attribute 'nope' \(it has: .*build"):
        resolve_model(f"{src}:nope")
    with pytest.raises(ModelLoadError, match="the factory cannot build the module: RuntimeError: "
                                             "this factory cannot build anything"):
        resolve_model(f"{src}:broken")
    with pytest.raises(ModelLoadError, match="returned a int, not a torch.nn.Module"):
        resolve_model(f"{src}:not_a_module")
    with pytest.raises(ModelLoadError, match="cannot import module 'no_such_module_xyz'"):
        resolve_model("no_such_module_xyz:build")
    bad = tmp_path / "bad.py"
    bad.write_text("raise ValueError('broken at import')\n")
    with pytest.raises(ModelLoadError, match="importing it failed: ValueError: broken at import"):
        resolve_model(f"{bad}:build")
    with pytest.raises(ProblemError, match="is a user module: give its calibration data"):
        export_model(f"{src}:build")


def test_weights_that_do_not_match_name_the_first_keys(user, tmp_path):
    src, weights = user
    sd = torch.load(weights, weights_only=True)
    sd.pop("fc.bias")
    sd["head.weight"] = torch.zeros(2, 2)
    sd["conv.weight"] = torch.zeros(4, 3, 5, 5)
    torch.save({"state_dict": sd}, tmp_path / "bad.pt")
    with pytest.raises(ModelLoadError, match=r"1 missing key \(first: fc.bias\); 1 unexpected "
                                             r"key \(first: head.weight\); 1 shape mismatch "
                                             r"\(first file vs module: conv.weight "
                                             r"\(4, 3, 5, 5\) vs \(4, 3, 3, 3\)\)"):
        resolve_model(f"{src}:build", weights=tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ModelLoadError, match="cannot read weights .* as a state dict"):
        resolve_model(f"{src}:build", weights=tmp_path / "junk.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ModelLoadError, match="hold a list, not a state dict"):
        resolve_model(f"{src}:build", weights=tmp_path / "list.pt")
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model(f"{src}:build", weights=tmp_path / "missing.pt")


def test_safetensors_weights(user, tmp_path):
    from safetensors.torch import save_file

    src, weights = user
    sd = torch.load(weights, weights_only=True)
    save_file(sd, tmp_path / "w.safetensors")
    m = resolve_model(f"{src}:build", weights=tmp_path / "w.safetensors")
    assert torch.equal(m.module.fc.weight, sd["fc.weight"]) and m.weights.endswith("safetensors")


def test_layer_that_cannot_be_exported(user):
    src, weights = user
    with pytest.raises(ProblemError, match="layer 'bn' is a BatchNorm2d, which cannot be "
                                           "exported"):
        export_model(f"{src}:build", state_dict=weights, layers=["bn"],
                     inputs=torch.randn(2, 3, 4, 4))


# ---------------------------------------------------------------------------- saved inputs


def test_read_inputs_formats(tmp_path):
    x, m = torch.randn(5, 3), torch.ones(5, 3, dtype=torch.long)
    torch.save(x, tmp_path / "t.pt")
    torch.save((x, m), tmp_path / "tuple.pt")
    torch.save({"input_ids": m, "attention_mask": m}, tmp_path / "d.pt")
    np.save(tmp_path / "a.npy", x.numpy())
    np.savez(tmp_path / "z.npz", input_ids=m.numpy(), attention_mask=m.numpy())
    assert torch.equal(read_inputs(tmp_path / "t.pt"), x)
    assert isinstance(read_inputs(tmp_path / "tuple.pt"), tuple)
    assert set(read_inputs(tmp_path / "d.pt")) == {"input_ids", "attention_mask"}
    assert torch.equal(read_inputs(tmp_path / "a.npy"), x)
    assert set(read_inputs(tmp_path / "z.npz")) == {"input_ids", "attention_mask"}
    batches = list(InputBatches(read_inputs(tmp_path / "tuple.pt"), 2))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1] and isinstance(batches[0], tuple)
    assert [b["input_ids"].shape[0] for b in InputBatches(read_inputs(tmp_path / "z.npz"), 4)
            ] == [4, 1]


def test_read_inputs_errors(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        read_inputs(tmp_path / "missing.pt")
    torch.save({"a": torch.zeros(3, 2), "b": torch.zeros(4, 2)}, tmp_path / "ragged.pt")
    with pytest.raises(CalibrationError, match=r"one common, non-zero first \(sample\) "
                                               r"dimension, got \[3, 4\]"):
        read_inputs(tmp_path / "ragged.pt")
    (tmp_path / "junk.npy").write_text("junk")
    with pytest.raises(CalibrationError, match="cannot read inputs"):
        read_inputs(tmp_path / "junk.npy")
    torch.save("text", tmp_path / "str.pt")
    with pytest.raises(CalibrationError, match="expected a tensor, a tuple of tensors or a dict "
                                               "of tensors, got str"):
        read_inputs(tmp_path / "str.pt")
