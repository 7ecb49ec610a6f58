"""The exporter's compiled scale tables agree with solvers.scales."""

import numpy as np
import pytest

from bounds.export_scales import mse_scales, scale_tables
from solvers.scales import minmax_scale, mse_scale, quantization_mse


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 6, 8, 12, 16])
def test_mse_scales_match_solvers_scales(bits):
    rng = np.random.default_rng(bits)
    W = (rng.standard_normal((6, 70)) * rng.uniform(0.01, 3, (6, 1))).astype(np.float16)
    W = W.astype(np.float64)
    W[2] = 0.0
    W[4, :] = np.abs(W[4])  # one-sided row
    fast = mse_scales(W, bits, per_channel=True)
    ref = mse_scale(W, bits, per_channel=True)
    for w, a, b in zip(W, fast, ref, strict=True):
        ea, eb = quantization_mse(w, a, bits), quantization_mse(w, b, bits)
        assert ea <= eb * (1 + 1e-9) + 1e-300
        assert a == pytest.approx(b, rel=1e-6)
    t, r = mse_scales(W, bits, per_channel=False), mse_scale(W, bits)
    assert quantization_mse(W, t, bits) <= quantization_mse(W, r, bits) * (1 + 1e-9)


def test_tables_shapes_and_minmax():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 9))
    T = scale_tables(W)
    assert T["scales_mse_tensor"].shape == (16,) and T["scales_minmax_tensor"].shape == (16,)
    assert T["scales_mse_channel"].shape == (16, 5)
    for b in (1, 4, 16):
        assert T["scales_minmax_tensor"][b - 1] == minmax_scale(W, b)
        np.testing.assert_array_equal(T["scales_minmax_channel"][b - 1],
                                      minmax_scale(W, b, per_channel=True))
