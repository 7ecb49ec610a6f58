"""Quantization heuristics (RTN, GPTQ, OBQ, AdaRound) against brute force and hand-worked cases."""

import zlib

import numpy as np
import pytest
from problem_instances import (
    KINDS,
    brute_force_quant,
    random_hessian,
    random_quant_problem,
    rounding_tol,
)

from solvers import QuantProblem, Status, solve
from solvers.heuristics import adaround, gptq, gptq_layer, obq, obq_layer, rtn, rtn_layer
from solvers.problem import ProblemError

METHODS = ["rtn", "gptq", "obq", "adaround"]
FAST = {"adaround": {"iters": 300}}

# The 2×2 case worked by hand (scale 1, 4 bits, grid −8..7):
#   H = [[2, 1], [1, 2]], w0 = (0.3, 0.4).
#   H⁻¹ = (1/3)[[2, −1], [−1, 2]]; its upper Cholesky factor U has U11 = √(2/3),
#   U12 = −1/√6, U22 = √(1/2).
#   GPTQ (damp 0): z1 = rint(0.3) = 0, err = 0.3/U11, w2 ← 0.4 − err·U12 = 0.4 + 0.3/2 = 0.55
#   (the OBS update w2 + (H12/H22)(w1 − q1)), z2 = rint(0.55) = 1.
#   Errors d = s·z − w0: z = (0, 1) gives d = (−0.3, 0.6), dᵀHd = 0.18 − 0.36 + 0.72 = 0.54;
#   RTN z = (0, 0) gives d = (−0.3, −0.4), dᵀHd = 0.18 + 0.24 + 0.32 = 0.74.
#   The other neighbours: (1, 0) → 0.74, (1, 1) → 2.54, so 0.54 is the optimum.
H22 = np.array([[2.0, 1.0], [1.0, 2.0]])
W22 = np.array([0.3, 0.4])


def _hand_problem():
    return QuantProblem(H22, W22, scale=1.0, bits=4)


@pytest.mark.parametrize("damp", [0.0, 1e-12, 1e-8, 1e-4])
def test_gptq_hand_case_as_damping_vanishes(damp):
    r = gptq(_hand_problem(), damp=damp)
    assert r.codes.tolist() == [0, 1]
    assert r.objective == pytest.approx(0.54, abs=1e-12)


def test_gptq_damped_feedback_matches_hand_value():
    # damp = 0.01 of mean diag 2 adds 0.02: w2 ← 0.4 + 0.3·1/2.02 = 0.54851 → still rounds to 1;
    # the objective is computed on the *undamped* H, so it is 0.54 exactly, not a damped value.
    r = gptq(_hand_problem(), damp=0.01)
    assert r.codes.tolist() == [0, 1]
    assert r.objective == pytest.approx(0.54, abs=1e-12)
    assert r.info["damp_used"] == 0.01


def test_rtn_hand_case():
    r = rtn(_hand_problem())
    assert r.codes.tolist() == [0, 0]
    assert r.objective == pytest.approx(0.74, abs=1e-12)


def test_obq_hand_case():
    # Costs (Q(w) − w)²/[H⁻¹]_ii: 0.09/(2/3) = 0.135 for w1, 0.16/(2/3) = 0.24 for w2: OBQ
    # takes w1 first (→ 0), then w2 = 0.4 − (−1/3)(0.3)/(2/3) = 0.55 → 1.
    r = obq(_hand_problem())
    assert r.codes.tolist() == [0, 1]
    assert r.objective == pytest.approx(0.54, abs=1e-12)


def test_obq_order_differs_from_gptq():
    # w0 = (0.45, 0.2). GPTQ rounds w1 first (→ 0), w2 ← 0.2 + 0.45/2 = 0.425 → 0: z = (0, 0),
    # d = (−0.45, −0.2), error 2·0.2025 + 2·0.09 + 2·0.04 = 0.665.
    # OBQ: costs 0.2025·1.5 = 0.30375 (w1) and 0.04·1.5 = 0.06 (w2): w2 first (→ 0), then
    # w1 ← 0.45 + 0.2/2 = 0.55 → 1: z = (1, 0), d = (0.55, −0.2),
    # error 2·0.3025 − 2·0.11 + 2·0.04 = 0.465.
    p = QuantProblem(H22, np.array([0.45, 0.2]), scale=1.0, bits=4)
    g, o = gptq(p, damp=0.0), obq(p)
    assert g.codes.tolist() == [0, 0] and g.objective == pytest.approx(0.665, abs=1e-12)
    assert o.codes.tolist() == [1, 0] and o.objective == pytest.approx(0.465, abs=1e-12)


def test_obq_quantizes_outliers_first():
    # w0 = (5.0, 0.2) on a 2-bit grid (−2..1, scale 1): w1 lies 4 steps outside the grid, so
    # OBQ quantizes it first (to 1) whatever the costs, and feeds its error 4.0 into w2:
    # w2 ← 0.2 − (H⁻¹)_21·4/(H⁻¹)_11 = 0.2 + (1/3)·4/(2/3) = 2.2 → clipped to 1: z = (1, 1),
    # d = (−4, 0.8), error 32 − 6.4 + 1.28 = 26.88.
    # Without the outlier rule the costs 16/(2/3) = 24 and 0.04/(2/3) = 0.06 take w2 first
    # (→ 0), then w1 ← 5 + (1/3)·0.2/(2/3) = 5.1 → 1: z = (1, 0), d = (−4, −0.2),
    # error 32 + 1.6 + 0.08 = 33.68.
    p = QuantProblem(H22, np.array([5.0, 0.2]), scale=1.0, bits=2)
    r = obq(p)
    assert r.codes.tolist() == [1, 1]
    assert r.objective == pytest.approx(26.88, abs=1e-10)
    r2 = obq(p, outlier=False)
    assert r2.codes.tolist() == [1, 0]
    assert r2.objective == pytest.approx(33.68, abs=1e-10)
    assert r.info["outlier"] and not r2.info["outlier"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_objective_at_least_brute_force_and_on_grid(method, kind):
    rng = np.random.default_rng(zlib.crc32(f"{method}-{kind}".encode()))
    for trial in range(4):
        bits = 2 if trial % 2 else 3
        p = random_quant_problem(rng, 5, bits, kind, outside=trial == 3)
        best, _ = brute_force_quant(p)
        r = solve(p, method, **FAST.get(method, {}))
        assert r.status is Status.HEURISTIC and r.lower_bound is None
        assert r.method == method
        codes = np.asarray(r.codes)
        assert codes.dtype.kind == "i"
        assert np.all(codes >= p.zmin) and np.all(codes <= p.zmax)
        np.testing.assert_array_equal(r.weights, p.scale * codes)
        # objective = exact error on the undamped H of the returned weights
        tol = rounding_tol(p.H, p.w0, r.weights)  # two summation orders of one quadratic form
        assert r.objective == pytest.approx(p.error(r.weights), rel=1e-12, abs=tol)
        assert r.objective >= best - 1e-9 * max(1.0, best)
        assert r.norm == pytest.approx(p.norm)


def test_diagonal_hessian_makes_gptq_and_obq_equal_rtn():
    rng = np.random.default_rng(3)
    for _ in range(5):
        p = random_quant_problem(rng, 8, 3, "diag", outside=True)
        z = rtn(p).codes
        np.testing.assert_array_equal(gptq(p).codes, z)
        np.testing.assert_array_equal(obq(p).codes, z)


@pytest.mark.parametrize("block_size", [1, 3, 7, 128])
def test_gptq_block_size_does_not_change_the_result(block_size):
    rng = np.random.default_rng(5)
    H = random_hessian(rng, 20, "corr")
    W0 = rng.standard_normal((6, 20))
    ref = gptq_layer(H, W0, 0.4, 3, block_size=20)
    run = gptq_layer(H, W0, 0.4, 3, block_size=block_size)
    np.testing.assert_array_equal(run.codes, ref.codes)
    assert run.info["block_size"] == block_size


def test_gptq_act_order_is_natural_order_on_the_permuted_problem():
    rng = np.random.default_rng(6)
    H = random_hessian(rng, 12, "well")
    W0 = rng.standard_normal((4, 12))
    perm = np.argsort(-np.diag(H), kind="stable")
    ao = gptq_layer(H, W0, 0.5, 3, act_order=True)
    nat = gptq_layer(H[np.ix_(perm, perm)], W0[:, perm], 0.5, 3)
    np.testing.assert_array_equal(ao.codes[:, perm], nat.codes)
    np.testing.assert_allclose(ao.objectives, nat.objectives, rtol=1e-10)


def test_dead_inputs_get_zero_and_do_not_count():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((30, 6))
    X[:, 2] = 0.0  # input 2 never fires: H row/column 2 is zero
    H = X.T @ X
    w0 = rng.standard_normal(6)
    w0[2] = 3.0
    p = QuantProblem(H, w0, scale=0.5, bits=3)
    for method in ("gptq", "obq"):
        r = solve(p, method)
        assert r.codes[2] == 0
        assert r.info["dead_inputs"] == 1
        assert r.objective == pytest.approx(p.error(r.weights), rel=1e-12)


def test_singular_hessian_without_damping_is_damped_just_enough():
    rng = np.random.default_rng(8)
    H = random_hessian(rng, 10, "rankdef")
    p = QuantProblem(H, rng.standard_normal(10), scale=0.4, bits=3)
    r = gptq(p, damp=0.0)
    assert 0.0 < r.info["damp_used"] <= 1e-3
    assert r.objective == pytest.approx(p.error(r.weights), rel=1e-12)
    r = obq(p)
    assert r.info["damp_used"] >= 0.0
    assert r.objective == pytest.approx(p.error(r.weights), rel=1e-12)


def test_gptq_beats_rtn_and_obq_beats_gptq_on_average_on_correlated_inputs():
    rng = np.random.default_rng(9)
    H = random_hessian(rng, 32, "corr")
    W0 = rng.standard_normal((64, 32))
    r = rtn_layer(H, W0, "mse", 3)
    g = gptq_layer(H, W0, r.scales, 3)
    o = obq_layer(H, W0, r.scales, 3)
    assert g.objective < r.objective
    assert o.objective < g.objective * 1.05


def test_adaround_time_limit_and_options():
    rng = np.random.default_rng(10)
    p = random_quant_problem(rng, 16, 3, "corr")
    r = adaround(p, time_limit=0.0, iters=1000)
    assert "time limit" in r.message and r.info["iters_done"] == 0
    # with no iterations AdaRound rounds its start h = w0/s − ⌊w0/s⌋ at ½: round to nearest
    np.testing.assert_array_equal(r.codes, rtn(p).codes)
    full = adaround(p, iters=500)
    assert full.info["iters_done"] == 500 and full.info["undecided_fraction"] < 0.5
    with pytest.raises(ProblemError, match="beta"):
        adaround(p, beta=(2, 20))
    with pytest.raises(ProblemError, match="warmup"):
        adaround(p, warmup=1.0)


def test_adaround_beats_rtn_on_average():
    rng = np.random.default_rng(11)
    H = random_hessian(rng, 24, "corr")
    W0 = rng.standard_normal((32, 24))
    from solvers.heuristics import adaround_layer

    r = rtn_layer(H, W0, "mse", 3)
    a = adaround_layer(H, W0, r.scales, 3, iters=800)
    assert a.objective < r.objective


def test_rtn_scale_choices():
    rng = np.random.default_rng(12)
    H = random_hessian(rng, 8, "well")
    W0 = rng.standard_normal((3, 8))
    mm = rtn_layer(H, W0, "minmax", 4)
    assert np.max(np.abs(mm.codes)) == 7  # the largest magnitude lands on the last level
    pc = rtn_layer(H, W0, "mse", 4, per_channel=True)
    assert len(set(pc.scales.tolist())) == 3
    with pytest.raises(ProblemError, match="scale"):
        rtn_layer(H, W0, "max", 4)


def test_bad_inputs_are_clear_errors():
    H = np.eye(3)
    with pytest.raises(ProblemError, match="damp"):
        gptq_layer(H, np.ones(3), 1.0, 4, damp=-1)
    with pytest.raises(ProblemError, match="block_size"):
        gptq_layer(H, np.ones(3), 1.0, 4, block_size=0)
    with pytest.raises(ProblemError, match="shared H"):
        gptq_layer(np.stack([H, H]), np.ones((2, 3)), 1.0, 4)
    with pytest.raises(ProblemError, match="scale"):
        gptq_layer(H, np.ones((2, 3)), [1.0, 2.0, 3.0], 4)
    with pytest.raises(ProblemError, match="symmetric"):
        gptq_layer(np.triu(np.ones((3, 3))), np.ones(3), 1.0, 4)


def test_obq_out_of_time_finishes_in_natural_order_like_undamped_gptq():
    # With no time at all every step takes the lowest remaining input: the natural order with
    # exact OBS updates, which is GPTQ without damping (same codes up to rounding).
    rng = np.random.default_rng(13)
    for kind in ("well", "corr"):
        p = random_quant_problem(rng, 12, 3, kind)
        r = obq(p, time_limit=0.0)
        assert r.info["time_limited"] and "time limit" in r.message
        np.testing.assert_array_equal(r.codes, gptq(p, damp=0.0).codes)
        assert not obq(p).info["time_limited"]


def test_adaround_fused_kernels_and_numpy_path_agree(monkeypatch):
    import importlib

    ada = importlib.import_module("solvers.heuristics.adaround")  # the module, not the function

    rng = np.random.default_rng(14)
    H = random_hessian(rng, 16, "corr")
    W0 = rng.standard_normal((6, 16))
    fused = ada.adaround_layer(H, W0, 0.4, 3, iters=400)
    monkeypatch.setattr(ada, "FUSED_MAX_ENTRIES", 0)
    plain = ada.adaround_layer(H, W0, 0.4, 3, iters=400)
    np.testing.assert_array_equal(fused.codes, plain.codes)
    np.testing.assert_allclose(fused.objectives, plain.objectives, rtol=1e-12)
