"""Streaming accumulation, the paper protocol, float16 weights and dead inputs/channels."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bounds.export import export_model
from layers.export import export_layers
from layers.hessian import HessianAccumulator, chunk_bounds


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 12),
    groups=st.integers(1, 3),
    opt_dim=st.one_of(st.none(), st.integers(1, 12)),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_streaming_equals_one_shot(n, groups, opt_dim, cuts, seed):
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(rng.standard_normal((groups, 40, n)))
    acc = HessianAccumulator(groups, n, opt_dim)
    edges = [0, *sorted(cuts), 40]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        acc.update(X[:, a:b].transpose(1, 2))
    full = X.transpose(1, 2) @ X
    assert acc.rows == 40
    bounds = chunk_bounds(n, opt_dim)
    for (a, b), H in zip(bounds, acc.blocks(), strict=True):
        np.testing.assert_allclose(H.numpy(), full[:, a:b, a:b].numpy(), rtol=1e-12, atol=1e-12)


def test_batch_size_does_not_change_the_export():
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 4, 3, stride=2, padding=1).double()
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64)
    one = export_model(layer, inputs=x, batch_size=6)[""][0]
    many = export_model(layer, inputs=x, batch_size=1)[""][0]
    np.testing.assert_allclose(one.H, many.H, rtol=1e-12)
    assert one.meta["calibration"] == many.meta["calibration"]
    assert one.meta["rows"] == many.meta["rows"] == 6 * 16


def test_bounded_memory_slices_match(monkeypatch):
    """A tiny patch budget (one sample per slice) gives the same H."""
    import layers.unfold as unfold

    torch.manual_seed(1)
    layer = nn.Conv2d(2, 3, 3, padding=1).double()
    x = torch.randn(5, 2, 7, 7, dtype=torch.float64)
    ref = export_layers(layer, [x]).layers[""].chunks[0].H
    monkeypatch.setattr(unfold, "PATCH_BUDGET", 1)
    small = export_layers(layer, [x]).layers[""].chunks[0].H
    np.testing.assert_allclose(small, ref, rtol=1e-12)


def test_paper_protocol_ignores_stride_padding_dilation():
    torch.manual_seed(2)
    layer = nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2).double()
    x = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    p = export_model(layer, inputs=x, protocol="paper")[""][0]
    U = F.unfold(x, 3).transpose(1, 2).reshape(-1, 18)
    np.testing.assert_allclose(p.H, (U.T @ U).numpy(), rtol=1e-12)
    assert p.meta["rows"] == 2 * 49 and p.meta["protocol"] == "paper"
    exact = export_model(layer, inputs=x)[""][0]
    assert exact.meta["rows"] == 2 * 16  # (9 + 2 - 4 - 1) // 2 + 1 = 4 per side


def test_weights_go_through_float16_unless_full_precision():
    torch.manual_seed(3)
    layer = nn.Linear(6, 4)
    x = torch.randn(5, 6)
    p16 = export_model(layer, inputs=x)[""][0]
    p32 = export_model(layer, inputs=x, full_precision=True)[""][0]
    w = layer.weight.detach()
    np.testing.assert_array_equal(p16.W0, w.half().double().numpy())
    np.testing.assert_array_equal(p32.W0, w.double().numpy())
    assert p16.meta["weight_dtype"] == "float16" and p32.meta["weight_dtype"] == "float32"
    assert not np.array_equal(p16.W0, p32.W0)


def test_dead_inputs_and_channels_are_kept_and_marked():
    torch.manual_seed(4)
    layer = nn.Linear(5, 3)
    with torch.no_grad():
        layer.weight[1] = 0.0  # dead channel: zero weights
        layer.weight[2, :2] = 0.0  # with opt_dim 2, channel 2 is dead in chunk 0 only
    x = torch.randn(8, 5)
    x[:, 3] = 0.0  # input 3 never fires
    probs = export_model(layer, inputs=x, opt_dim=2)[""]
    assert [p.n for p in probs] == [2, 2, 1]
    assert probs[1].meta["dead_inputs"].tolist() == [False, True]
    assert probs[0].meta["dead_inputs"].tolist() == [False, False]
    assert probs[0].meta["dead_channels"].tolist() == [False, True, True]
    assert probs[1].meta["dead_channels"].tolist() == [False, True, False]
    assert all(p.channels == 3 for p in probs)  # nothing dropped
    whole = export_model(layer, inputs=x)[""][0]
    assert whole.meta["dead_inputs"].tolist() == [False, False, False, True, False]
    assert whole.meta["dead_channels"].tolist() == [False, True, False]


def test_conv_dead_input_channel():
    layer = nn.Conv2d(3, 2, 3, padding=1)
    x = torch.randn(2, 3, 5, 5)
    x[:, 1] = 0.0
    p = export_model(layer, inputs=x)[""][0]
    assert p.meta["dead_inputs"].tolist() == [False] * 9 + [True] * 9 + [False] * 9


def test_text_row_mask_keeps_only_real_tokens():
    torch.manual_seed(5)

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.lin = nn.Linear(4, 3)

        def forward(self, input_ids, attention_mask):
            return self.lin(self.emb(input_ids))

    m = Enc()
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    p = export_model(m, inputs=[{"input_ids": ids, "attention_mask": mask}],
                     layers=["lin"])["lin"][0]
    assert p.meta["rows"] == 5
    E = m.emb(ids)[mask.bool()].detach().double()
    np.testing.assert_allclose(p.H, (E.T @ E).numpy(), rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    G=st.integers(1, 3), cg=st.integers(1, 2), kh=st.integers(1, 3), kw=st.integers(1, 3),
    sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
    H=st.integers(5, 9), W=st.integers(5, 9), b=st.integers(1, 2),
)
def test_im2col_matches_torch_unfold(G, cg, kh, kw, sh, sw, dh, dw, H, W, b):
    from layers.unfold import _im2col

    x = torch.randn(b, G * cg, H, W)
    got = _im2col(x, G, (kh, kw), (sh, sw), (dh, dw))
    U = F.unfold(x, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # (b, G·n, L)
    n, L = cg * kh * kw, U.shape[-1]
    want = U.view(b, G, n, L).permute(1, 2, 0, 3).reshape(G, n, b * L).double()
    assert torch.equal(got, want)
