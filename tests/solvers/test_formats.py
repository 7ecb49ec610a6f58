"""Format presets: codebooks, scale rules, bit counts and errors."""

from __future__ import annotations

import numpy as np
import pytest

from solvers import LevelProblem, ProblemError
from solvers.formats import (
    EXAMPLES,
    build_levels,
    minifloat_values,
    nf4_values,
    parse_format,
    round_to_e4m3,
)
from solvers.scales import mse_scale

RNG = np.random.default_rng(0)
W = RNG.standard_normal((3, 64)) * np.array([[0.05], [0.2], [1.0]])


def test_nf4_matches_published_values():
    # a few entries of QLoRA's published NF4 table (bitsandbytes' create_normal_map); that table
    # took the quantile levels from a float32 linspace, so it differs from ours by ~2e-7
    v = nf4_values()
    for x in (0.7229568362236023, 0.07958029955625534, -0.09105003625154495,
              -0.6961928009986877, 0.33791524171829224):
        assert np.min(np.abs(v - x)) < 5e-7
    assert v.size == 16 and 0.0 in v and v[0] == -1 and v[-1] == 1


@pytest.mark.parametrize("e,m,vmax,count", [(4, 3, 448.0, 253), (5, 2, 57344.0, 247),
                                            (2, 3, 7.5, 63), (3, 2, 28.0, 63), (2, 1, 6.0, 15)])
def test_minifloats(e, m, vmax, count):
    v = minifloat_values(e, m)
    assert v.max() == vmax and -v.min() == vmax and v.size == count
    assert np.all(np.diff(v) > 0) and 0.0 in v


def test_names_round_trip_and_errors():
    for name in EXAMPLES:
        spec = parse_format(name)
        assert parse_format(spec.name) == spec
    with pytest.raises(ProblemError, match="unknown format 'int4-sym'.*valid.*fp4-e2m1"):
        parse_format("int4-sym")
    with pytest.raises(ProblemError, match="b = 1 \\+ E \\+ M"):
        parse_format("fp8-e4m2")
    with pytest.raises(ProblemError, match="names group size 64"):
        parse_format("int4-g64", group_size=128)
    with pytest.raises(ProblemError, match="for fp formats"):
        parse_format("int4-mx")
    with pytest.raises(ProblemError, match="does not divide the n = 64 inputs.*last group"):
        build_levels(W, "int4-asym", group_size=48)
    with pytest.raises(ProblemError, match="scale method"):
        build_levels(W, "int4", scale_method="best")


def test_bits_per_weight():
    assert parse_format("int4-g128").bits_per_weight(256) == 4.125
    assert parse_format("int4-asym-g128").bits_per_weight(256) == 4 + 20 / 128
    assert parse_format("nf4").bits_per_weight(64) == 4.5
    assert parse_format("int8").bits_per_weight(100, 10) == 8 + 16 / 1000
    assert parse_format("fp4-e2m1-nv").bits_per_weight(16, 2) == 4.5 + 1.0


def test_int_presets_are_todays_grid():
    f = build_levels(W, "int4")
    np.testing.assert_allclose(f.levels(2), mse_scale(W, 4) * np.arange(-8, 8))
    fc = build_levels(W, "int4-ch", scale_method="minmax")
    np.testing.assert_allclose(fc.scales[:, 0], np.max(np.abs(W), axis=1) / 7)


def _sse(f, W):
    return np.sum((f.nearest(W) - W) ** 2, axis=1)


@pytest.mark.parametrize("name", ["int4", "int3-ch", "int4-asym", "int4-asym-g16", "int8-g32",
                                  "fp8-e4m3", "fp4-e2m1", "fp4-e2m1-nv", "nf4", "nf4-g16",
                                  "fp6-e3m2-g16"])
def test_levels_and_scale_rules(name):
    mse, mm = build_levels(W, name), build_levels(W, name, scale_method="minmax")
    for f in (mse, mm):
        assert f.levels(0).shape[-1] == f.codebook.size
        for c in range(3):
            lv = f.levels(c)
            table = np.broadcast_to(lv, (64, lv.shape[-1]))
            assert np.all(np.diff(table, axis=1) > 0)
            assert np.all(np.any(table == 0.0, axis=1))  # zero is a level of every format
            p = f.problem(c, np.eye(64), W[c])
            assert isinstance(p, LevelProblem)
            p.check_weights(f.nearest(W[c:c + 1], channels=[c])[0])
    # MSE scales are no worse than min-max on the weights they were chosen for (per group)
    G = mse.group
    e_mse = np.sum(((mse.nearest(W) - W) ** 2).reshape(3, -1, G), axis=2)
    e_mm = np.sum(((mm.nearest(W) - W) ** 2).reshape(3, -1, G), axis=2)
    if mse.spec.granularity == "tensor":
        e_mse, e_mm = e_mse.sum(), e_mm.sum()
    assert np.all(e_mse <= e_mm * (1 + 1e-12) + 1e-300)
    if mse.group < 64:
        assert mse.levels(0).shape == (64, mse.codebook.size)


def test_minmax_covers_the_range():
    f = build_levels(W, "int4-asym-g16", scale_method="minmax")
    for c in range(3):
        g = f.group_levels(c)
        rows = W[c].reshape(-1, 16)
        tol = 1e-12 * np.abs(rows).max()
        assert np.all(g[:, 0] <= np.minimum(rows.min(axis=1), 0) + tol + f.scales[c] / 2)
        assert np.all(g[:, -1] >= np.maximum(rows.max(axis=1), 0) - tol - f.scales[c] / 2)
    mx = build_levels(W, "fp4-e2m1")
    assert np.all(np.exp2(np.round(np.log2(mx.scales))) == mx.scales)  # E8M0: powers of two
    nv = build_levels(W, "fp4-e2m1-nv")
    t = np.max(np.abs(W)) / (448 * 6)
    np.testing.assert_allclose(round_to_e4m3(nv.scales / t), nv.scales / t, rtol=1e-12)


def test_sparse_format_and_zero_rows():
    f = build_levels(W, "int4-asym+2:4")
    assert f.problem(0, np.eye(64), W[0]).nm == (2, 4)
    Z = np.zeros((2, 32))
    for name in ("int4", "int4-asym-g8", "fp4-e2m1", "fp4-e2m1-nv", "nf4-g8"):
        for method in ("mse", "minmax"):
            g = build_levels(Z, name, scale_method=method)
            assert np.all(np.isfinite(g.scales)) and np.all(g.scales > 0)
            np.testing.assert_array_equal(g.nearest(Z), Z)
