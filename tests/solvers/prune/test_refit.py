"""The one refit (solvers/prune/refit.py): exact against a pseudo-inverse reference, invariant
under rescaling an input, shared by the heuristics and the exact solver."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, random_hessian, random_prune_problem, refit_error, rounding_tol

from solvers.heuristics import magnitude_refit, obs_greedy, sparsegpt
from solvers.problem import PruneProblem
from solvers.prune.refit import PIVOT_RTOL, refit, unboxed_refit, unboxed_refit_rows


@pytest.mark.parametrize("kind", KINDS)
def test_unboxed_refit_is_the_least_squares_optimum(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    n = 10
    H, w0 = random_hessian(rng, n, kind), rng.standard_normal(n)
    for k in (1, 4, 7, 10):
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, k, replace=False)] = True
        w = unboxed_refit(H, w0, mask)
        want, _ = refit_error(H, w0, mask)
        assert np.all(w[~mask] == 0.0)
        d = w - w0
        assert abs(float(d @ H @ d) - want) <= rounding_tol(H, w0, w, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["well", "corr", "ill"]),
       st.floats(1e-6, 1e6))
def test_rescaling_an_input_rescales_its_weight(seed, kind, a):
    """Input j's activations times ``a`` (``H → DHD``, ``w0_j → w0_j/a``): the refit weight of
    ``j`` divides by ``a``, the others do not move, the error does not change. The pivot test is
    relative to each input's own diagonal, so a small input is not mistaken for a dependent one."""
    rng = np.random.default_rng(seed)
    n = 8
    H, w0 = random_hessian(rng, n, kind), rng.standard_normal(n)
    mask = rng.random(n) < 0.5
    j = int(rng.integers(n))
    D = np.ones(n)
    D[j] = a
    w = unboxed_refit(H, w0, mask)
    ws = unboxed_refit(H * np.outer(D, D), w0 / D, mask)
    e, es = (w - w0) @ H @ (w - w0), (ws * D - w0) @ H @ (ws * D - w0)
    assert abs(es - e) <= rounding_tol(H, w0, w, rtol=1e-6)
    if kind == "well":  # a well-posed kept block: the weights themselves are unique
        np.testing.assert_allclose(ws * D, w, rtol=1e-7, atol=1e-9 * np.max(np.abs(w0)))


def test_dead_and_trivial_masks():
    H = np.diag([2.0, 0.0, 1.0])
    w0 = np.array([1.0, 3.0, -1.0])
    # a kept input that never fires keeps w0 (δ = 0), pruned ones are 0
    assert unboxed_refit(H, w0, np.array([True, True, False])).tolist() == [1.0, 3.0, 0.0]
    assert unboxed_refit(H, w0, np.ones(3, dtype=bool)).tolist() == w0.tolist()
    assert unboxed_refit(H, w0, np.zeros(3, dtype=bool)).tolist() == [0.0, 0.0, 0.0]
    W = unboxed_refit_rows(H, np.stack([w0, -w0]), np.array([[True, False, True]] * 2))
    assert W.tolist() == [[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]]


def test_nearly_dependent_inputs_take_the_least_squares_path():
    """Two inputs dependent to within PIVOT_RTOL: the refit is still the optimum."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 4))
    X[:, 3] = X[:, 2] * (1 + 1e-7) + 1e-9 * rng.standard_normal(30)
    H = X.T @ X
    w0 = rng.standard_normal(4)
    mask = np.array([True, False, True, True])
    K = [0, 2]  # the Schur pivot of input 3 given the others kept, relative to H_33
    piv = H[3, 3] - H[3, K] @ np.linalg.solve(H[np.ix_(K, K)], H[K, 3])
    assert piv <= PIVOT_RTOL * H[3, 3]
    w = unboxed_refit(H, w0, mask)
    want, _ = refit_error(H, w0, mask)
    assert abs((w - w0) @ H @ (w - w0) - want) <= rounding_tol(H, w0, w, rtol=1e-9)


def test_heuristics_and_exact_refit_are_the_same_implementation():
    rng = np.random.default_rng(4)
    for kind in ("well", "rankdef"):
        p = random_prune_problem(rng, 12, 5, kind)
        for r in (magnitude_refit(p), obs_greedy(p), sparsegpt(p, refit=True)):
            w, v, lo = refit(p, r.mask)
            np.testing.assert_array_equal(r.weights, w)
            assert v == lo and r.objective == pytest.approx(v, abs=rounding_tol(p.H, p.w0, w))


def test_boxed_refit_respects_the_box_and_bounds_its_value():
    rng = np.random.default_rng(5)
    p = PruneProblem(random_hessian(rng, 8, "corr"), rng.standard_normal(8), k=3,
                     box_factor=0.5)
    mask = np.zeros(8, dtype=bool)
    mask[[0, 3, 5]] = True
    w, v, lo = refit(p, mask)
    assert np.all(np.abs(w) <= p.box * (1 + 1e-12)) and np.all(w[~mask] == 0.0)
    assert lo <= v and v == pytest.approx(p.error(w), rel=1e-12)
    assert v >= refit_error(p.H, p.w0, mask)[0] - 1e-12 * p.norm  # the box only costs
