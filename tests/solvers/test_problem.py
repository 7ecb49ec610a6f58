"""The problem types: validation gives clear errors; the math is DESIGN.md's."""

import numpy as np
import pytest
from problem_instances import random_hessian

from solvers.problem import (
    LayerProblem,
    ProblemError,
    PruneProblem,
    QuantProblem,
    density_to_k,
    grid_limits,
)


def test_grid_limits():
    assert grid_limits(1) == (-1, 0)
    assert grid_limits(4) == (-8, 7)
    assert grid_limits(8) == (-128, 127)


@pytest.mark.parametrize("bits", [0, 17, 2.5, "x"])
def test_bad_bits(bits):
    with pytest.raises(ProblemError, match="bits"):
        QuantProblem(np.eye(2), np.zeros(2), scale=1.0, bits=bits)


@pytest.mark.parametrize("scale", [0.0, -1.0, np.nan, np.inf])
def test_bad_scale(scale):
    with pytest.raises(ProblemError, match="scale"):
        QuantProblem(np.eye(2), np.zeros(2), scale=scale, bits=4)


@pytest.mark.parametrize(
    "H, match",
    [
        (np.ones((2, 3)), "square"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), "symmetric"),
        (np.array([[1.0, 0.0], [0.0, -1.0]]), "semidefinite"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "semidefinite"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), "NaN"),
    ],
)
def test_bad_hessian(H, match):
    with pytest.raises(ProblemError, match=match):
        QuantProblem(H, np.zeros(H.shape[0] if H.shape[0] == H.shape[1] else 2), bits=4)


def test_rank_deficient_hessian_is_accepted():
    rng = np.random.default_rng(0)
    H = random_hessian(rng, 8, "rankdef")
    p = PruneProblem(H, rng.standard_normal(8), k=3)
    assert p.k == 3 and p.n == 8


def test_w0_shape_and_values():
    with pytest.raises(ProblemError, match="w0"):
        QuantProblem(np.eye(3), np.zeros(2), bits=4)
    with pytest.raises(ProblemError, match="NaN"):
        QuantProblem(np.eye(2), np.array([0.0, np.inf]), bits=4)


def test_error_and_norm():
    rng = np.random.default_rng(1)
    H = random_hessian(rng, 5)
    w0 = rng.standard_normal(5)
    p = QuantProblem(H, w0, scale=0.3, bits=3)
    w = rng.standard_normal(5)
    assert np.isclose(p.error(w), (w - w0) @ H @ (w - w0))
    assert np.isclose(p.norm, w0 @ H @ w0)
    assert p.error(w0) == 0.0


def test_prune_k_density_nm():
    H, w0 = np.eye(8), np.arange(8.0)
    assert PruneProblem.from_density(H, w0, 0.25).k == 2
    assert density_to_k(0.5, 7) == 4  # halves round up
    p = PruneProblem(H, w0, nm=(2, 4))
    assert p.k == 4 and p.nm == (2, 4)
    with pytest.raises(ProblemError, match="divide"):
        PruneProblem(H, w0, nm=(2, 3))
    with pytest.raises(ProblemError, match="k must"):
        PruneProblem(H, w0, k=9)
    with pytest.raises(ProblemError, match="k must"):
        PruneProblem(H, w0, k=-1)
    with pytest.raises(ProblemError, match="density"):
        PruneProblem.from_density(H, w0, 1.5)
    with pytest.raises(ProblemError, match="contradicts"):
        PruneProblem(H, w0, k=3, nm=(2, 4))


def test_prune_mask_check_and_box():
    p = PruneProblem(np.eye(8), np.arange(8.0) - 4, nm=(1, 4), box_factor=2.0)
    assert p.box == 8.0
    m = np.zeros(8, bool)
    m[[0, 4]] = True
    assert p.check_mask(m).sum() == 2
    m[1] = True
    with pytest.raises(ProblemError):
        p.check_mask(m)


def test_quant_codes_checked():
    p = QuantProblem(np.eye(2), np.zeros(2), scale=0.5, bits=2)
    assert np.allclose(p.weights([1, -2]), [0.5, -1.0])
    with pytest.raises(ProblemError, match="integers"):
        p.weights([2, 0])


def test_layer_problem_shared_and_per_channel():
    rng = np.random.default_rng(2)
    H = random_hessian(rng, 4)
    W0 = rng.standard_normal((3, 4))
    lp = LayerProblem(H, W0, {"layer": "x"})
    assert lp.channels == 3 and lp.shared_hessian
    assert np.allclose(lp.norms(), [w @ H @ w for w in W0])
    q = lp.quant(1, scale=0.2, bits=4)
    assert np.array_equal(q.w0, W0[1])
    Hs = np.stack([random_hessian(rng, 4) for _ in range(3)])
    lp2 = LayerProblem(Hs, W0)
    assert np.allclose(lp2.norms(), [W0[c] @ Hs[c] @ W0[c] for c in range(3)])
    assert lp2.prune(2, density=0.5).k == 2
    with pytest.raises(ProblemError, match="out of range"):
        lp.quant(3, scale=0.2, bits=4)
    with pytest.raises(ProblemError, match="W0"):
        LayerProblem(Hs, W0[:2])
