"""The exported problem reproduces the real layer's output error exactly.

For random weights ``W``: ``Σ_c (w_c − w0_c)ᵀ H_c (w_c − w0_c) = ‖layer_W(x) − layer_W0(x)‖²``
(torch, float64) to 1e-9 relative, for every supported layer type, and per chunk when only the
chunk's inputs change.
"""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from bounds.export import export_model


class TinyConv1D(nn.Module):
    """A GPT-2 style Conv1D (weight (in, out), y = x W + b) without transformers."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.randn(nf))

    def forward(self, x):
        shape = x.shape[:-1] + (self.nf,)
        return (self.bias + x.reshape(-1, x.shape[-1]) @ self.weight).view(shape)


TinyConv1D.__name__ = "Conv1D"


def _hf_conv1d(nf, nx):
    tf = pytest.importorskip("transformers.pytorch_utils")
    return tf.Conv1D(nf, nx)


CASES = {
    "linear": (lambda: nn.Linear(7, 5), (4, 3, 7)),
    "conv_strided_padded": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 9, 8)),
    "conv_dilated_asym": (
        lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(2, 1), dilation=2),
        (2, 3, 11, 10),
    ),
    "conv_reflect": (lambda: nn.Conv2d(3, 4, 3, padding=2, padding_mode="reflect"), (2, 3, 7, 7)),
    "conv_replicate": (
        lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, padding_mode="replicate"), (2, 2, 8, 7)
    ),
    "conv_circular": (lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
                      (2, 2, 6, 6)),
    "conv_same_even": (lambda: nn.Conv2d(2, 3, 4, padding="same", dilation=2), (2, 2, 9, 9)),
    "grouped": (lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1, stride=2), (2, 4, 8, 8)),
    "depthwise": (lambda: nn.Conv2d(4, 4, 3, groups=4, padding=1, stride=2), (2, 4, 9, 9)),
    "depthwise_multiplier": (lambda: nn.Conv2d(3, 6, 3, groups=3, padding=1), (2, 3, 6, 6)),
    "conv1d": (lambda: nn.Conv1d(3, 5, 3, stride=2, padding=2, dilation=2), (3, 3, 17)),
    "conv1d_grouped_circular": (
        lambda: nn.Conv1d(4, 6, 3, groups=2, padding=1, padding_mode="circular"), (2, 4, 9)
    ),
    "transformer_conv1d_tiny": (lambda: TinyConv1D(5, 6), (3, 4, 6)),
    "transformer_conv1d_hf": (lambda: _hf_conv1d(5, 6), (3, 4, 6)),
}


def _with_weight(layer, W):
    """A float64 copy of ``layer`` whose weight rows are ``W`` (channels, n)."""
    out = copy.deepcopy(layer)
    w = torch.as_tensor(W, dtype=torch.float64)
    if type(layer).__name__ == "Conv1D" and not isinstance(layer, nn.Conv1d):
        w = w.t().contiguous()
    else:
        w = w.reshape(layer.weight.shape)
    with torch.no_grad():
        out.weight.copy_(w)
    return out


def _true_error(layer, x, W, W0):
    with torch.no_grad():
        y = _with_weight(layer, W)(x)
        y0 = _with_weight(layer, W0)(x)
    return float(((y - y0) ** 2).sum())


def _problem_error(problems, W):
    total = 0.0
    for p in problems:
        a, b = p.meta["input_start"], p.meta["input_stop"]
        for c in range(p.channels):
            d = W[c, a:b] - p.W0[c]
            total += float(d @ p.hessian(c) @ d)
    return total


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("full_precision", [False, True])
def test_quadratic_form_equals_output_error(case, full_precision):
    make, shape = CASES[case]
    torch.manual_seed(0)
    layer = make().double()
    x = torch.randn(*shape, dtype=torch.float64)
    probs = export_model(layer, inputs=x, batch_size=1, full_precision=full_precision)[""]
    assert len(probs) == 1
    p = probs[0]
    rng = np.random.default_rng(1)
    for _ in range(3):
        W = p.W0 + rng.standard_normal(p.W0.shape)
        got, want = _problem_error(probs, W), _true_error(layer, x, W, p.W0)
        assert got == pytest.approx(want, rel=1e-9)
    norms = p.norms()
    zero = np.zeros_like(p.W0)
    assert norms.sum() == pytest.approx(_true_error(layer, x, zero, p.W0), rel=1e-9)


@pytest.mark.parametrize("case", ["conv_dilated_asym", "grouped", "linear", "conv1d"])
def test_chunk_problem_is_exact_for_changes_inside_the_chunk(case):
    make, shape = CASES[case]
    torch.manual_seed(2)
    layer = make().double()
    x = torch.randn(*shape, dtype=torch.float64)
    probs = export_model(layer, inputs=x, opt_dim=4)[""]
    n = probs[-1].meta["input_stop"]
    assert [p.meta["input_start"] for p in probs] == list(range(0, n, 4))
    W0 = np.concatenate([p.W0 for p in probs], axis=1)
    rng = np.random.default_rng(3)
    for p in probs:
        a, b = p.meta["input_start"], p.meta["input_stop"]
        W = W0.copy()
        W[:, a:b] += rng.standard_normal((W.shape[0], b - a))
        assert _problem_error([p], W) == pytest.approx(_true_error(layer, x, W, W0), rel=1e-9)


def test_chunks_are_sub_blocks_of_the_full_problem():
    torch.manual_seed(4)
    layer = nn.Conv2d(5, 3, 3, padding=1, groups=1).double()
    x = torch.randn(3, 5, 6, 6, dtype=torch.float64)
    full = export_model(layer, inputs=x)[""][0]
    chunks = export_model(layer, inputs=x, opt_dim=10)[""]
    assert [(p.meta["input_start"], p.meta["input_stop"]) for p in chunks] == [
        (0, 10), (10, 20), (20, 30), (30, 40), (40, 45)]
    for p in chunks:
        a, b = p.meta["input_start"], p.meta["input_stop"]
        np.testing.assert_allclose(p.H, full.H[a:b, a:b], rtol=1e-12, atol=1e-12 * full.H.max())
        np.testing.assert_array_equal(p.W0, full.W0[:, a:b])
        assert p.meta["rows"] == full.meta["rows"] == 3 * 36
        assert p.meta["scales_mse_channel"].shape == (16, 3)
        np.testing.assert_array_equal(p.meta["scales_mse_tensor"], full.meta["scales_mse_tensor"])


def test_grouped_conv_exports_per_channel_hessians():
    layer = nn.Conv2d(4, 6, 3, groups=2, padding=1).double()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    p = export_model(layer, inputs=x)[""][0]
    assert p.H.shape == (6, 18, 18) and p.W0.shape == (6, 18)
    # channels 0-2 see input channels 0-1, channels 3-5 input channels 2-3
    assert np.array_equal(p.H[0], p.H[2]) and not np.allclose(p.H[0], p.H[3])
    assert p.meta["kind"] == "grouped_conv" and p.meta["dead_inputs"].shape == (6, 18)
    d = export_model(nn.Conv2d(4, 4, 3, groups=4).double(), inputs=x)[""][0]
    assert d.H.shape == (4, 9, 9) and d.meta["kind"] == "depthwise"
