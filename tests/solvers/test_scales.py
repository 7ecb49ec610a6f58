"""Scale choice: the MSE scale is optimal on a fine grid; min-max maps max|w| to zmax."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.grid import round_to_grid
from solvers.scales import minmax_scale, mse_scale, quantization_mse


def test_minmax():
    w = np.array([-3.0, 1.0, 2.0])
    assert minmax_scale(w, 4) == 3.0 / 7
    assert np.allclose(minmax_scale(np.array([[1.0, -2.0], [0.0, 0.0]]), 2, per_channel=True),
                       [2.0, 1.0])


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_mse_scale_beats_a_fine_grid(bits):
    rng = np.random.default_rng(bits)
    w = rng.standard_t(4, size=2000)
    s = mse_scale(w, bits)
    base = minmax_scale(w, bits)
    fine = np.linspace(1e-3, 1.0, 20000) * base
    best_grid = min(quantization_mse(w, c, bits) for c in fine[::10])
    assert quantization_mse(w, s, bits) <= best_grid * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=50),
       st.integers(1, 8))
def test_mse_never_worse_than_minmax(values, bits):
    w = np.array(values)
    s = mse_scale(w, bits, candidates=100)
    assert s > 0
    assert quantization_mse(w, s, bits) <= quantization_mse(w, minmax_scale(w, bits), bits) + 1e-9


def test_zero_tensor_and_per_channel():
    assert mse_scale(np.zeros(5), 4) == 1.0
    W = np.random.default_rng(0).standard_normal((3, 50))
    s = mse_scale(W, 4, per_channel=True)
    assert s.shape == (3,)
    assert np.isclose(s[1], mse_scale(W[1], 4))


def test_round_to_grid_clips():
    z = round_to_grid(np.array([-10.0, 0.26, 10.0]), 0.5, 3)
    assert z.tolist() == [-4, 1, 3]


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 12, 16])
def test_both_kernels_agree_with_numpy(bits):
    from solvers import scale_kernels
    from solvers.scales import _Evaluator

    rng = np.random.default_rng(bits)
    w = (rng.standard_t(3, 3000) * 0.05).astype(np.float16).astype(float)
    ev = _Evaluator(w, *__import__("solvers").grid_limits(bits))
    for s in rng.uniform(1e-4, 0.5, 15):
        ref = quantization_mse(w, s, bits)
        direct = scale_kernels.sse_direct(ev.v, ev.c, s, ev.zmin, ev.zmax)
        prefix = scale_kernels.sse_prefix(ev.v, ev.p0, ev.p1, ev.p2, s, ev.zmin, ev.zmax)
        assert direct == pytest.approx(ref, rel=1e-9, abs=1e-15)
        assert prefix == pytest.approx(ref, rel=1e-7, abs=1e-12)


def test_optimum_above_minmax_is_found():
    # few distinct values: the best scale lies above max|w|/zmax
    w = np.array([0.63, 0.58, 1.29, -0.75, 1.69])
    s = mse_scale(w, 3)  # grid {-4..3}: min-max puts 1.69 on level 3; the optimum is coarser
    assert s > 1.69 / 3
    assert quantization_mse(w, s, 3) < 0.8 * quantization_mse(w, mse_scale(w, 3, max_ratio=1), 3)


def test_scale_tables_shapes():
    from solvers.scales import scale_tables

    W = np.random.default_rng(0).standard_normal((5, 9))
    T = scale_tables(W)
    assert T["scales_mse_tensor"].shape == (16,) and T["scales_mse_channel"].shape == (16, 5)
    for b in (1, 4, 16):
        assert T["scales_minmax_tensor"][b - 1] == minmax_scale(W, b)
        assert np.isclose(T["scales_mse_channel"][b - 1][2], mse_scale(W[2], b))
    part = scale_tables(W, bits=[3])
    assert np.isnan(part["scales_mse_tensor"][[0, 1, 3]]).all()
    assert part["scales_mse_tensor"][2] == T["scales_mse_tensor"][2]
