"""Pruning heuristics (magnitude, magnitude + refit, OBS greedy, SparseGPT) against brute force
and hand-worked cases."""

import zlib

import numpy as np
import pytest
from problem_instances import (
    KINDS,
    brute_force_prune,
    random_hessian,
    random_prune_problem,
    refit_error,
    rounding_tol,
)

from solvers import PruneProblem, Status, solve
from solvers.heuristics import (
    magnitude,
    magnitude_layer,
    magnitude_refit,
    obs_greedy,
    obs_layer,
    sparsegpt,
    sparsegpt_layer,
)
from solvers.problem import ProblemError

METHODS = ["magnitude", "magnitude-refit", "obs", "sparsegpt"]
H22 = np.array([[2.0, 1.0], [1.0, 2.0]])


def _check_feasible(p, r):
    mask = p.check_mask(r.mask)  # at most k, N:M respected
    assert int(mask.sum()) == p.k  # and exactly k kept
    assert np.all(r.weights[~mask] == 0.0)
    if p.box is not None:
        assert np.all(np.abs(r.weights) <= p.box * (1 + 1e-12))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_objective_at_least_brute_force_and_pattern_kept(method, kind):
    rng = np.random.default_rng(zlib.crc32(f"{method}-{kind}".encode()))
    for k in (1, 3, 5):
        p = random_prune_problem(rng, 7, k, kind)
        best, _ = brute_force_prune(p)
        r = solve(p, method)
        assert r.status is Status.HEURISTIC and r.lower_bound is None and r.method == method
        _check_feasible(p, r)
        # two summation orders of the same quadratic form: agree to rounding of its scale
        tol = rounding_tol(p.H, p.w0, r.weights)
        assert r.objective == pytest.approx(p.error(r.weights), rel=1e-12, abs=tol)
        assert r.objective >= best - 1e-9 * max(1.0, best)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nm", [(2, 4), (1, 2), (3, 4)])
def test_nm_pattern(method, nm):
    rng = np.random.default_rng(zlib.crc32(f"{method}-{nm}".encode()))
    for kind in ("well", "corr", "rankdef"):
        p = random_prune_problem(rng, 8, None, kind, nm=nm)
        best, _ = brute_force_prune(p)
        r = solve(p, method, **({"block_size": 4} if method == "sparsegpt" else {}))
        _check_feasible(p, r)
        assert r.objective >= best - 1e-9 * max(1.0, best)


def test_obs_hand_case_2x2():
    # H = [[2, 1], [1, 2]], w0 = (1, 0.5), k = 1. H⁻¹ = (1/3)[[2, −1], [−1, 2]], [H⁻¹]_ii = 2/3.
    # Costs w_i²/[H⁻¹]_ii: 1/(2/3) = 1.5 and 0.25/(2/3) = 0.375: remove w2.
    # Update w −= w2/[H⁻¹]_22 · H⁻¹[:, 2] = 0.75·(−1/3, 2/3) → w = (1.25, 0), error 0.375:
    # d = (0.25, −0.5), dᵀHd = 0.125 − 0.25 + 0.5 = 0.375. Magnitude (no refit) keeps w1 = 1:
    # d = (0, −0.5), error 0.5.
    p = PruneProblem(H22, np.array([1.0, 0.5]), k=1)
    r = obs_greedy(p, refit=False)
    np.testing.assert_allclose(r.weights, [1.25, 0.0], atol=1e-14)
    assert r.objective == pytest.approx(0.375, abs=1e-14)
    assert magnitude(p).objective == pytest.approx(0.5, abs=1e-14)


def test_obs_hand_case_3x3_beats_magnitude():
    # H = [[1, .9, 0], [.9, 1, 0], [0, 0, 1]], w0 = (1, 1.1, 0.8), k = 2.
    # H⁻¹ of the coupled block is (1/0.19)[[1, −.9], [−.9, 1]], so [H⁻¹]_11 = [H⁻¹]_22 = 1/0.19;
    # [H⁻¹]_33 = 1. Costs: 1·0.19 = 0.19, 1.21·0.19 = 0.2299, 0.64: OBS removes w1 and moves
    # w2 to 1.1 + 0.9·1 = 2.0 (error 0.19: d = (−1, 0.9, 0), 1 − 1.62 + 0.81).
    # Magnitude keeps the two largest (w2 = 1.1, w1 = 1) and removes w3: error 0.8² = 0.64, and
    # a refit cannot help (w3 is uncoupled).
    H = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    p = PruneProblem(H, np.array([1.0, 1.1, 0.8]), k=2)
    r = obs_greedy(p)
    assert r.mask.tolist() == [False, True, True]
    np.testing.assert_allclose(r.weights, [0.0, 2.0, 0.8], atol=1e-12)
    assert r.objective == pytest.approx(0.19, abs=1e-12)
    assert magnitude(p).objective == pytest.approx(0.64, abs=1e-12)
    assert magnitude_refit(p).objective == pytest.approx(0.64, abs=1e-12)


def test_sparsegpt_hand_case_2x2():
    # H = [[2, 1], [1, 2]], w0 = (0.5, 1.0), k = 1, damp 0. U (upper Cholesky of H⁻¹):
    # U11² = 2/3, U22² = 1/2. Saliencies w²/U_qq²: 0.25/(2/3) = 0.375 and 1/(1/2) = 2: prune w1;
    # err = 0.5/U11, w2 ← 1 − err·U12 = 1 + 0.5·(1/2) = 1.25 (the OBS update w2 + H21/H22·w1).
    # d = (−0.5, 0.25): error 0.5 − 0.25 + 0.125 = 0.375.
    p = PruneProblem(H22, np.array([0.5, 1.0]), k=1)
    r = sparsegpt(p, damp=0.0)
    assert r.mask.tolist() == [False, True]
    np.testing.assert_allclose(r.weights, [0.0, 1.25], atol=1e-14)
    assert r.objective == pytest.approx(0.375, abs=1e-14)
    # SparseGPT never revisits earlier columns: with w0 = (1, 0.5) it prunes w2 and keeps w1 = 1
    # (error 0.5) where OBS moves w1 to 1.25 (error 0.375).
    q = PruneProblem(H22, np.array([1.0, 0.5]), k=1)
    assert sparsegpt(q, damp=0.0).objective == pytest.approx(0.5, abs=1e-14)


def test_refit_is_exact_for_rank_deficient_hessians():
    rng = np.random.default_rng(1)
    for _ in range(5):
        p = random_prune_problem(rng, 10, 6, "rankdef")
        r = magnitude_refit(p)
        want, _ = refit_error(p.H, p.w0, r.mask)
        assert r.objective == pytest.approx(want, rel=1e-8, abs=1e-10 * p.norm)


def test_obs_never_worse_than_magnitude_refit_on_average():
    rng = np.random.default_rng(2)
    obs, mag = [], []
    for kind in ("well", "corr", "ill", "rankdef"):
        H = random_hessian(rng, 24, kind)
        W0 = rng.standard_normal((24, 24))
        for k in (6, 12, 18):
            obs.append(obs_layer(H, W0, k).objectives)
            mag.append(magnitude_layer(H, W0, k, refit=True).objectives)
    obs, mag = np.concatenate(obs), np.concatenate(mag)
    assert obs.mean() <= mag.mean()
    assert np.mean(obs <= mag * (1 + 1e-9)) > 0.8  # and per channel in the large majority


def test_sparsegpt_between_magnitude_and_better_with_refit():
    rng = np.random.default_rng(3)
    H = random_hessian(rng, 40, "corr")
    W0 = rng.standard_normal((32, 40))
    mag = magnitude_layer(H, W0, density=0.5).objective
    sg = sparsegpt_layer(H, W0, density=0.5, block_size=16)
    sgr = sparsegpt_layer(H, W0, density=0.5, block_size=16, refit=True)
    assert sg.objective < mag
    assert np.all(sgr.objectives <= sg.objectives * (1 + 1e-9))


def test_sparsegpt_keeps_exactly_k_with_uneven_blocks():
    rng = np.random.default_rng(4)
    H = random_hessian(rng, 10, "well")
    W0 = rng.standard_normal((5, 10))
    for k in range(11):
        for bs in (1, 3, 4, 128):
            run = sparsegpt_layer(H, W0, k, block_size=bs)
            assert np.all(run.masks.sum(axis=1) == k)
            assert np.all(run.weights[~run.masks] == 0.0)


def test_sparsegpt_nm_rounds_block_size_to_groups():
    rng = np.random.default_rng(5)
    H = random_hessian(rng, 16, "corr")
    run = sparsegpt_layer(H, rng.standard_normal((3, 16)), nm=(2, 4), block_size=6)
    assert run.info["block_size"] == 4
    assert np.all(run.masks.reshape(3, 4, 4).sum(axis=2) == 2)


def test_box_is_respected_by_clipping():
    rng = np.random.default_rng(6)
    for method in METHODS:
        p = random_prune_problem(rng, 8, 3, "corr", box_factor=0.5)
        r = solve(p, method)
        _check_feasible(p, r)
        assert "box" in r.message
        assert r.objective == pytest.approx(p.error(r.weights), rel=1e-12)


def test_dead_inputs_are_pruned_first_by_obs():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 6))
    X[:, [1, 4]] = 0.0
    w0 = rng.standard_normal(6)
    w0[[1, 4]] = 5.0  # large but useless
    p = PruneProblem(X.T @ X, w0, k=4)
    for method in ("obs", "sparsegpt"):
        r = solve(p, method)
        assert not r.mask[1] and not r.mask[4]
        assert r.info["dead_inputs"] == 2
    # magnitude keeps them (it ignores H) and pays for the inputs it had to drop instead
    assert magnitude(p).mask[[1, 4]].all()


def test_obs_singular_hessian_uses_tiny_damping_and_exact_objective():
    rng = np.random.default_rng(8)
    p = random_prune_problem(rng, 12, 5, "rankdef")
    r = obs_greedy(p)
    assert 0.0 < r.info["damp_used"] < 1e-3
    want, _ = refit_error(p.H, p.w0, r.mask)
    assert r.objective == pytest.approx(want, rel=1e-8, abs=1e-10 * p.norm)


def test_layer_budget_errors():
    H = np.eye(4)
    with pytest.raises(ProblemError, match="k or density"):
        magnitude_layer(H, np.ones(4), 2, density=0.5)
    with pytest.raises(ProblemError, match="N:M"):
        sparsegpt_layer(H, np.ones(4), nm=(2, 3))
    with pytest.raises(ProblemError, match="needs k"):
        obs_layer(H, np.ones(4))
