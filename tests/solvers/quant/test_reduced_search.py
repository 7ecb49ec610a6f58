"""The LLL-reduced search: exact against brute force, bound never above the optimum."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from problem_instances import brute_force_quant, random_quant_problem

from solvers.quant.incumbents import rtn
from solvers.quant.lattice_reduction import lll_basis, reduced_problem
from solvers.quant.reduced_search import ReducedSearch, reduced_search


def _correlated_hessian(rng, n):
    """Strongly correlated inputs (neighbouring pixels): the case reduction is for."""
    X = rng.standard_normal((3 * n, n)) @ np.triu(np.ones((n, n)))
    X += 1e-3 * rng.standard_normal(X.shape)
    return X.T @ X


@pytest.mark.parametrize("kind", ["corr", "ill", "well", "pixels"])
def test_reduced_search_matches_brute_force(kind):
    rng = np.random.default_rng({"corr": 1, "ill": 2, "well": 3, "pixels": 4}[kind])
    checked = 0
    for _ in range(40):
        n = int(rng.integers(2, 6))
        bits = int(rng.integers(2, 5))
        p = random_quant_problem(rng, n, bits, "corr" if kind == "pixels" else kind,
                                 outside=bool(rng.integers(2)))
        H = _correlated_hessian(rng, n) if kind == "pixels" else p.H
        c = p.w0 / p.scale
        from solvers.problem import QuantProblem

        q = QuantProblem(H, p.w0, scale=p.scale, bits=bits)
        opt, _ = brute_force_quant(q)
        # many lattice points outside the box can beat the boxed optimum (ill-conditioned H):
        # then the search is stopped and only its bound is checked
        rs = reduced_search(H, c, q.zmin, q.zmax, rtn(c, q.zmin, q.zmax), node_limit=200_000)
        if rs is None:
            continue
        checked += 1
        z = rs.codes
        assert np.all(z >= q.zmin) and np.all(z <= q.zmax)
        val = q.error(q.weights(z))
        assert val >= opt * (1 - 1e-9) - 1e-12
        if rs.done:
            assert val <= opt * (1 + 1e-9) + 1e-12
        assert q.scale ** 2 * rs.bound() <= opt * (1 + 1e-12) + 1e-300
    assert checked >= 10


def test_unimodular_basis_and_reduced_problem():
    rng = np.random.default_rng(5)
    for n in (3, 8, 20):
        H = _correlated_hessian(rng, n)
        R = np.linalg.cholesky(H).T
        Z, Zi = lll_basis(R)
        assert np.array_equal(Z @ Zi, np.eye(n, dtype=np.int64))
        c = rng.standard_normal(n) * 5
        Hp, cp, dH, dc = reduced_problem(H, c, Z, Zi)
        assert np.linalg.norm(Hp - Z.T @ H @ Z) <= 1e-10 * np.linalg.norm(Hp)
        np.testing.assert_allclose(Z @ cp, c, rtol=1e-9, atol=1e-9)
        assert dH >= 0 and np.all(dc >= 0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 7), bits=st.integers(2, 8))
def test_stopped_search_bound_is_valid(seed, n, bits):
    rng = np.random.default_rng(seed)
    from solvers.problem import QuantProblem

    H = _correlated_hessian(rng, n)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    c = rng.uniform(lo - 1, hi + 1, n)
    rs = ReducedSearch.build(H, c, lo, hi, rtn(c, lo, hi))
    if rs is None:
        return
    rs.step(int(rng.integers(1, 50)))
    z = rs.codes
    assert np.all(z >= lo) and np.all(z <= hi)
    if (2 ** bits) ** n <= 50_000:  # brute force only where the grid is small
        q = QuantProblem(H, c, scale=1.0, bits=bits)
        opt, _ = brute_force_quant(q)
        assert rs.bound() <= opt * (1 + 1e-12) + 1e-300
        assert (z - c) @ H @ (z - c) >= opt * (1 - 1e-9)


def _exact_error(p, z):
    """``(s·z − w0)ᵀH(s·z − w0)`` in rational arithmetic (the brute force's float value can sit
    below the true optimum by its own rounding, on ill-conditioned ``H``)."""
    s = Fraction(p.scale)
    d = [s * int(zi) - Fraction(w) for zi, w in zip(z, p.w0, strict=True)]
    return float(sum(d[i] * Fraction(p.H[i, j]) * d[j]
                     for i in range(p.n) for j in range(p.n)))


@pytest.mark.parametrize("kind", ["corr", "ill", "well", "rankdef"])
def test_exact_with_reduction_from_the_start_matches_brute_force(kind):
    """``solve_exact(reduction=True)``: both searches in slices, incumbents shared."""
    from solvers.quant.exact import solve_exact

    rng = np.random.default_rng(11)
    for _ in range(25):
        n = int(rng.integers(2, 6))
        p = random_quant_problem(rng, n, int(rng.integers(2, 5)), kind,
                                 outside=bool(rng.integers(2)))
        opt, zopt = brute_force_quant(p)
        r = solve_exact(p, reduction=True, slice_nodes=1000)
        assert r.lower_bound <= _exact_error(p, zopt)
        assert r.status.value == "optimal"
        assert r.objective <= opt + 1e-9 * opt + 1e-15 * p.norm


def _photo_patch_hessian():
    """``XᵀX`` of 3×3 RGB patches of a bundled photo (normalised as for ImageNet): the stem
    convolution's problem, condition number ~3e4, on which the original basis stalls."""
    from skimage import data

    img = data.astronaut().astype(float) / 255.0
    patches = np.lib.stride_tricks.sliding_window_view(img[::2, ::2], (3, 3, 3))[::3, ::3, 0]
    X = (patches.reshape(-1, 27) - 0.45) / 0.25
    return X.T @ X


@pytest.mark.parametrize("bits", [4, 8])
def test_photo_patch_problem_is_proved_by_the_reduced_search(bits):
    from solvers.problem import QuantProblem
    from solvers.quant.exact import solve_exact

    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(27) * 0.3
    p = QuantProblem(_photo_patch_hessian(), w0, scale=np.abs(w0).max() / (2 ** (bits - 1) - 1),
                     bits=bits)
    plain = solve_exact(p, reduction=False, node_limit=300_000)
    r = solve_exact(p, node_limit=300_000)
    assert plain.status.value == "node_limit"
    assert r.status.value == "optimal" and r.info.get("proved_by") == "reduced search"
    assert r.objective <= plain.objective * (1 + 1e-12)
    assert plain.lower_bound <= r.objective


@pytest.mark.parametrize("option", [{"reduction": "maybe"}, {"neighbourhood": 7},
                                    {"lagrangian": "yes"}, {"ordering": "zig"}])
def test_bad_option_values_are_problem_errors(option):
    from solvers.problem import ProblemError, QuantProblem
    from solvers.quant.exact import solve_exact

    with pytest.raises(ProblemError):
        solve_exact(QuantProblem(np.eye(2), np.array([0.3, -0.2]), scale=0.1, bits=3), **option)
