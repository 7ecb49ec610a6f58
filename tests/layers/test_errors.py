"""Bad input gets a clear error, never a silently wrong export."""

import numpy as np
import pytest
import torch
from torch import nn

from bounds.export import export_model, list_layers, write_problems
from layers.errors import LayerExportError, UnknownNameError
from layers.models import load_model
from solvers.problem import ProblemError


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.LazyLinear(2))


def test_unknown_layer_lists_the_valid_ones():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with pytest.raises(ProblemError, match=r"unknown layer 'nope'; exportable layers: 0, 2"):
        export_model(net, layers=["nope"], inputs=torch.randn(2, 3, 5, 5))


VALID = "valid models: mobilenet_v2, efficientnet_lite0, minilm, or hf:PATH, module:factory"


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match=VALID):
        load_model("resnet")
    with pytest.raises(ProblemError, match=VALID):
        export_model("resnet")
    with pytest.raises(ProblemError, match="valid models"):
        list_layers("resnet")


def test_errors_are_value_errors():
    assert issubclass(LayerExportError, ValueError) and issubclass(ProblemError, ValueError)


@pytest.mark.parametrize("module", [nn.BatchNorm2d(3), nn.ConvTranspose2d(3, 2, 3),
                                    nn.Conv3d(3, 2, 1), nn.Embedding(4, 3)])
def test_unsupported_layer_type(module):
    net = nn.Sequential(module)
    with pytest.raises(ProblemError, match=f"is a {type(module).__name__}, which cannot be"):
        export_model(net, layers=["0"], inputs=torch.randn(2, 3, 4, 4))


def test_nan_weights():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight[0, 1] = float("nan")
    with pytest.raises(ProblemError, match="weights contain NaN or inf"):
        export_model(layer, inputs=torch.randn(4, 3))


def test_float16_overflow():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight[0, 1] = 1e6
    with pytest.raises(ProblemError, match="overflow float16"):
        export_model(layer, inputs=torch.randn(4, 3))
    export_model(layer, inputs=torch.randn(4, 3), full_precision=True)  # fine


def test_nan_or_inf_activations():
    x = torch.randn(4, 3)
    x[2, 0] = float("inf")
    with pytest.raises(ProblemError, match="input activations contain NaN or inf"):
        export_model(nn.Linear(3, 2), inputs=x)


def test_wrong_shaped_calibration_data():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with pytest.raises(ProblemError, match=r"layer '0': input shape \(2, 5, 8, 8\) does not "
                                           r"fit Conv2d with 3 input channels"):
        export_model(net, inputs=torch.randn(2, 5, 8, 8))
    # the failure happens in a layer that is not exported: the forward pass reports it
    with pytest.raises(ProblemError, match=r"calibration batch 0 \(tensor \(2, 5, 8, 8\)\) "
                                           r"does not fit the model"):
        export_model(net, layers=["2"], inputs=torch.randn(2, 5, 8, 8))
    with pytest.raises(ProblemError, match=r"non-zero first \(sample\) dimension, got \[0\]"):
        export_model(net, inputs=torch.randn(0, 3, 8, 8))
    with pytest.raises(ProblemError, match="mobilenet_v2 takes images of shape"):
        export_model("mobilenet_v2", inputs=torch.randn(2, 1, 32, 32))


def test_user_module_needs_inputs():
    with pytest.raises(ProblemError, match="is a user module: give its calibration data"):
        export_model(nn.Linear(2, 2))


def test_layer_that_never_runs():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ProblemError, match="unused never ran"):
        export_model(Net(), layers=["used", "unused"], inputs=torch.randn(2, 3))


def test_bad_options():
    with pytest.raises(ProblemError, match="opt_dim must be a positive integer"):
        export_model(nn.Linear(2, 2), inputs=torch.randn(2, 2), opt_dim=0)
    with pytest.raises(ProblemError, match="unknown protocol"):
        export_model(nn.Linear(2, 2), inputs=torch.randn(2, 2), protocol="fast")
    with pytest.raises(ProblemError, match=r"takes images; use images=DIR \(--images\), not text"):
        export_model("mobilenet_v2", text="x.txt")


def test_unwritable_output_folder(tmp_path):
    probs = export_model(nn.Linear(2, 2), inputs=torch.randn(3, 2))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ProblemError, match="cannot write to output folder"):
        write_problems(probs, blocker)
    with pytest.raises(ProblemError, match="cannot write to output folder"):
        write_problems(probs, blocker / "sub")


def test_bad_calibration_folders(tmp_path):
    with pytest.raises(ProblemError, match="does not exist or is not a folder"):
        export_model("mobilenet_v2", images=tmp_path / "missing", layers=["features.0.0"])
    with pytest.raises(ProblemError, match="holds no images"):
        export_model("mobilenet_v2", images=tmp_path, layers=["features.0.0"])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ProblemError, match="cannot read image"):
        export_model("mobilenet_v2", images=tmp_path, layers=["features.0.0"], samples=1)


def test_written_files_round_trip(tmp_path):
    from bounds.problem_file import load_problem

    probs = export_model(nn.Conv2d(2, 3, 3, groups=1), inputs=torch.randn(2, 2, 5, 5), opt_dim=7)
    paths = write_problems(probs, tmp_path / "out")
    assert [p.name for p in paths] == ["model__chunk0.npz", "model__chunk1.npz",
                                       "model__chunk2.npz"]
    back = load_problem(paths[1])
    np.testing.assert_array_equal(back.H, probs[""][1].H)
    assert back.meta["input_start"] == 7 and back.meta["input_stop"] == 14
    assert back.meta["scales_mse_channel"].shape == (16, 3)
    assert back.meta["protocol"] == "exact" and back.meta["kind"] == "conv"


def test_all_layers_skips_modules_applied_through_their_weights():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.attn(x, x, x)[0])

    # out_proj is applied through F.multi_head_attention_forward, never called: skipped
    probs = export_model(Net(), inputs=torch.randn(2, 3, 4))
    assert list(probs) == ["head"]
    with pytest.raises(ProblemError, match="attn.out_proj never ran"):
        export_model(Net(), layers=["attn.out_proj"], inputs=torch.randn(2, 3, 4))


def test_state_dict_is_loaded_strictly(tmp_path):
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    p = export_model(dst, inputs=torch.randn(4, 3), state_dict=tmp_path / "w.pt",
                     full_precision=True)[""][0]
    np.testing.assert_array_equal(p.W0, src.weight.detach().double().numpy())
    with pytest.raises(ProblemError, match="1 entries are not tensors"):
        export_model(nn.Linear(3, 2), inputs=torch.randn(4, 3), state_dict={"weight": 1})
    with pytest.raises(ProblemError, match=r"do not match the module: 1 missing key \(first: "
                                           r"bias\)"):
        export_model(nn.Linear(3, 2), inputs=torch.randn(4, 3),
                     state_dict={"weight": torch.zeros(2, 3)})
