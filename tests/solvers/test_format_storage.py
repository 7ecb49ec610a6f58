"""Equal-size accounting of formats (solvers.formats.storage_bits): hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers.formats import SPARSE_ACCOUNTINGS, build_levels, parse_format, storage_bits
from solvers.problem import ProblemError


@pytest.mark.parametrize("name, n, C, total", [
    ("int4", 64, 10, 4 + 16 / 640),                 # one FP16 scale for the tensor
    ("int4-ch", 64, 10, 4 + 16 / 64),
    ("int4-g128", 1024, 1, 4.125),                  # the example: +0.125 bit
    ("int4-asym-g128", 1024, 1, 4 + 16 / 128 + 4 / 128),
    ("int8-asym-ch", 32, 3, 8 + (16 + 8) / 32),
    ("fp8-e4m3", 64, 2, 8 + 32 / 128),
    ("fp4-e2m1", 64, 2, 4 + 8 / 32),                # MX: E8M0 per 32
    ("fp4-e2m1-nv", 64, 2, 4 + 8 / 16 + 32 / 128),  # NV: E4M3 per 16 + FP32 per tensor
    ("nf4", 128, 1, 4 + 32 / 64),
    ("nf4-g32", 128, 1, 4 + 1.0),
])
def test_dense(name, n, C, total):
    b = storage_bits(name, n, C)
    assert b.total == pytest.approx(total, rel=1e-15)
    assert b.positions == 0.0
    # the same as the format's own bits per weight
    assert parse_format(name).bits_per_weight(n, C) == pytest.approx(total, rel=1e-15)


def test_nm_under_every_accounting():
    # INT4 per channel (FP16 scale per 64 inputs) with 2:4: values 4·2/4 = 2, scale 0.25
    want = {"hardware": 2 * 2 / 4, "bitmask": 1.0, "entropy": math.log2(6) / 4, "paper": 0.0}
    for acc in SPARSE_ACCOUNTINGS:
        b = storage_bits("int4-ch+2:4", 64, accounting=acc)
        assert (b.values, b.scales, b.zero_points) == (2.0, 0.25, 0.0)
        assert b.positions == pytest.approx(want[acc], rel=1e-15)
        assert b.total == pytest.approx(2.25 + want[acc], rel=1e-15)
    # 1:8: a 3-bit index per kept value (hardware), 3/8 bit per weight
    assert storage_bits("int8-asym-ch+1:8", 64).to_dict() == {
        "values": 1.0, "scales": 0.25, "zero_points": 0.125, "positions": 3 / 8,
        "total": 1.75, "accounting": "hardware"}


def test_unstructured():
    # at most 16 of 64 nonzero, INT8 per channel: 8·16/64 + 16/64 + mask
    assert storage_bits("int8-ch", 64, k=16).total == pytest.approx(2.0 + 0.25 + 1.0)
    e = storage_bits("int8-ch", 64, k=16, accounting="entropy")
    assert e.positions == pytest.approx(math.log2(math.comb(64, 16)) / 64)
    assert storage_bits("int8-ch", 64, k=16, accounting="paper").total == 2.25
    assert storage_bits("int8-ch", 64, k=64, accounting="entropy").positions == 0.0


def test_format_levels_storage():
    f = build_levels(np.ones((4, 64)), "int4-asym-g32+2:4")
    assert f.storage().total == pytest.approx(2 + 20 / 32 + 1)
    assert f.bits_per_weight == pytest.approx(4 + 20 / 32)   # dense, metadata only


def test_bad_input():
    with pytest.raises(ProblemError, match="valid: hardware, bitmask, entropy, paper"):
        storage_bits("int4", 64, accounting="csr")
    with pytest.raises(ProblemError, match="N:M pattern"):
        storage_bits("int4+2:4", 64, k=3)
    with pytest.raises(ProblemError, match="0..64"):
        storage_bits("int4", 64, k=65)
    with pytest.raises(ProblemError, match="unknown format"):
        storage_bits("int4-foo", 64)
