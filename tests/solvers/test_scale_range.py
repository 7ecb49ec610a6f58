"""The scale-range bound: never above the exact optimum at any scale of a fine grid (brute force
on small n), feasible solutions at a scale inside the range, exact for a one-point range."""

import itertools

import numpy as np
import pytest

from solvers.problem import ProblemError, QuantProblem, grid_limits, quadratic_error
from solvers.quant.exact import solve_exact
from solvers.scale_range import interval_bound, per_channel_bound, scale_range_bound
from tests.problem_instances import random_hessian


def _codes(n: int, bits: int) -> np.ndarray:
    zmin, zmax = grid_limits(bits)
    return np.array(list(itertools.product(range(zmin, zmax + 1), repeat=n)), dtype=float)


def _grid_optima(problems, bits, scales):
    """Brute-force ``Σ_p E*_p(s)`` for every ``s`` of ``scales``."""
    out = np.zeros(len(scales))
    for H, w0 in problems:
        Z = _codes(w0.size, bits)
        for i, s in enumerate(scales):
            D = s * Z - w0
            out[i] += max(float(np.min(np.einsum("ij,jk,ik->i", D, H, D))), 0.0)
    return out


def _problems(seed, count, n, kind):
    rng = np.random.default_rng(seed)
    return [(random_hessian(rng, n, kind), rng.standard_normal(n)) for _ in range(count)]


@pytest.mark.parametrize("kind", ["well", "ill", "rankdef", "corr"])
@pytest.mark.parametrize("bits", [1, 2, 3])
def test_never_above_a_fine_grid_of_exact_optima(kind, bits):
    probs = _problems(10 * bits + len(kind), 2, 3 if bits < 3 else 2, kind)
    s_lo, s_hi = 0.15, 2.5
    grid = np.geomspace(s_lo, s_hi, 1500)
    best = float(np.min(_grid_optima(probs, bits, grid)))
    scale_tol = 1e-12 * sum(float(np.abs(w) @ np.abs(H) @ np.abs(w)) for H, w in probs)
    for max_intervals in (1, 7, 4000):
        res = scale_range_bound(probs, bits, s_lo, s_hi, rtol=1e-2,
                                max_intervals=max_intervals)
        assert res.lower_bound <= best + scale_tol
        assert res.lower_bound <= res.objective
        assert s_lo <= res.best_scale <= s_hi
        # The solutions are on the grid of best_scale and their errors add up to objective.
        zmin, zmax = grid_limits(bits)
        total = 0.0
        for (H, w0), w in zip(probs, res.weights, strict=True):
            z = w / res.best_scale
            assert np.allclose(z, np.round(z)) and z.min() >= zmin and z.max() <= zmax
            total += quadratic_error(H, w0, w)
        assert total == pytest.approx(res.objective, rel=1e-9, abs=scale_tol)
    # With enough intervals the bound closes on the minimum.
    assert res.status == "converged"
    assert res.lower_bound >= (1 - 1e-2) * res.objective - scale_tol


def test_bound_is_exact_for_a_one_point_range():
    (H, w0), = _problems(3, 1, 6, "well")
    s = 0.37
    res = scale_range_bound([(H, w0)], 3, s, s)
    exact = solve_exact(QuantProblem(H, w0, scale=s, bits=3))
    assert res.lower_bound == pytest.approx(exact.lower_bound, rel=1e-9)
    assert res.objective == pytest.approx(exact.objective, rel=1e-12)
    assert interval_bound(4.0, 0.5, 0.5, 10.0) == pytest.approx(4.0)


def test_the_interval_bound_shrinks_with_the_interval():
    # Wider intervals lose r·‖w0‖_H; a bound from lower = 0 is 0.
    assert interval_bound(1.0, 0.9, 1.1, 1.0) < interval_bound(1.0, 0.99, 1.01, 1.0) <= 1.0
    assert interval_bound(0.0, 0.9, 1.1, 1.0) == 0.0


def test_per_channel_is_at_most_per_tensor_and_sums_channels():
    probs = _problems(5, 3, 3, "well")
    s_lo, s_hi = 0.2, 2.0
    shared = scale_range_bound(probs, 2, s_lo, s_hi, rtol=1e-3, max_intervals=400)
    per = per_channel_bound([[p] for p in probs], 2, [(s_lo, s_hi)] * 3, rtol=1e-3,
                            max_intervals=400)
    grid = np.geomspace(s_lo, s_hi, 800)
    per_grid = sum(float(np.min(_grid_optima([p], 2, grid))) for p in probs)
    assert per.lower_bound <= per_grid * (1 + 1e-12)
    assert per.lower_bound <= shared.objective
    assert per.objective <= shared.objective * (1 + 1e-9)
    assert len(per.best_scales) == 3 and len(per.weights) == 3


def test_target_stops_early_either_way():
    probs = _problems(7, 1, 4, "well")
    full = scale_range_bound(probs, 2, 0.2, 2.0, rtol=1e-4, max_intervals=500)
    low = scale_range_bound(probs, 2, 0.2, 2.0, rtol=1e-4, target=0.5 * full.lower_bound)
    assert low.status == "above_target" and low.lower_bound >= 0.5 * full.lower_bound
    high = scale_range_bound(probs, 2, 0.2, 2.0, rtol=1e-4, target=2 * full.objective)
    assert high.status == "below_target" and high.objective < 2 * full.objective
    assert low.intervals <= full.intervals and high.intervals <= full.intervals


def test_zero_weights_and_bad_input():
    H = np.eye(3)
    res = scale_range_bound([(H, np.zeros(3))], 4, 0.1, 1.0)
    assert res.lower_bound == 0.0 and res.objective == 0.0
    for lo, hi in ((0.0, 1.0), (2.0, 1.0), (0.1, np.inf)):
        with pytest.raises(ProblemError, match="scale range"):
            scale_range_bound([(H, np.ones(3))], 4, lo, hi)
    with pytest.raises(ProblemError, match="no problems"):
        scale_range_bound([], 4, 0.1, 1.0)


@pytest.mark.parametrize("kind", ["well", "ill", "rankdef"])
def test_box_bound_is_below_the_box_minimum_and_close_to_it(kind):
    from scipy.optimize import minimize

    from solvers.scale_range import box_bound

    rng = np.random.default_rng(len(kind))
    H, w0 = random_hessian(rng, 6, kind), rng.standard_normal(6)
    lo, hi = -0.3, 0.2
    b = box_bound(H, w0, lo, hi)
    f = lambda x: float((x - w0) @ H @ (x - w0))  # noqa: E731
    ref = minimize(f, np.zeros(6), jac=lambda x: 2 * H @ (x - w0), bounds=[(lo, hi)] * 6,
                   method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
    assert b <= ref.fun * (1 + 1e-9) + 1e-12
    for x in rng.uniform(lo, hi, size=(200, 6)):
        assert b <= f(x) * (1 + 1e-12)
    if kind == "well":
        assert b >= 0.99 * ref.fun  # the certificate is tight for a well-conditioned H
