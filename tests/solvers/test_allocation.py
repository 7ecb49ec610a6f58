"""The cross-layer allocation (multiple-choice knapsack): DP and MILP against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers.allocation import (
    LayerCurve,
    LayerOption,
    allocate,
    hessian_trace_proxy,
    uniform_choice,
)
from solvers.problem import ProblemError


def _brute(curves, budget, key):
    best = None
    for choice in itertools.product(*(range(len(c.options)) for c in curves)):
        opts = [c.options[i] for c, i in zip(curves, choice, strict=True)]
        if sum(o.size_bits for o in opts) <= budget:
            v = math.fsum(key(o) for o in opts)
            best = v if best is None else min(best, v)
    return best


@st.composite
def _cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_layers = draw(st.integers(1, 5))
    curves = []
    for li in range(n_layers):
        n_opt = draw(st.integers(1, 4))
        weights = int(rng.integers(1, 50))
        opts = []
        for oi in range(n_opt):
            bits = int(rng.integers(1, 9))
            err = float(rng.exponential()) * (0 if rng.random() < 0.1 else 1)
            bound = None if rng.random() < 0.2 else err * float(rng.random())
            opts.append(LayerOption(f"o{oi}", weights * bits + int(rng.integers(0, 3)),
                                    err, bound))
        curves.append(LayerCurve(f"l{li}", tuple(opts)))
    lo = sum(min(o.size_bits for o in c.options) for c in curves)
    hi = sum(max(o.size_bits for o in c.options) for c in curves)
    budget = int(rng.integers(lo, hi + 5))
    return curves, budget


@settings(max_examples=150, deadline=None)
@given(_cases(), st.sampled_from(["dp", "milp"]))
def test_matches_brute_force(case, method):
    curves, budget = case
    r = allocate(curves, budget, method=method)
    assert r.method == method
    assert r.size_bits <= budget
    want = _brute(curves, budget, lambda o: o.error)
    assert r.objective == pytest.approx(want, rel=1e-9, abs=1e-12)
    low = _brute(curves, budget, lambda o: o.certified)
    assert r.lower_bound == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert r.lower_bound <= r.objective * (1 + 1e-12) + 1e-15
    rb = allocate(curves, budget, method=method, target="bound")
    assert rb.size_bits <= budget
    assert rb.bound_sum == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert rb.objective >= r.objective * (1 - 1e-12) - 1e-15


def test_example_and_uniform():
    a = LayerCurve("a", (LayerOption("2", 20, 0.5, 0.4), LayerOption("4", 40, 0.1, 0.1)))
    b = LayerCurve("b", (LayerOption("2", 20, 0.2, 0.1), LayerOption("4", 40, 0.05, None)))
    r = allocate([a, b], 60)
    assert r.labels == ("4", "2") and r.size_bits == 60
    assert r.objective == pytest.approx(0.3) and r.lower_bound == pytest.approx(0.2)
    assert r.gap == pytest.approx(1 / 3)
    assert uniform_choice([a, b], "4") == (1, 1)
    with pytest.raises(ProblemError, match="no option '8'"):
        uniform_choice([a, b], "8")
    assert allocate([a, b], 10**6).labels == ("4", "4")


def test_large_sizes_use_the_gcd():
    # sizes of real layers (millions of bits) with a common factor: the DP table stays small
    curves = [LayerCurve(f"l{i}", tuple(LayerOption(f"{b}", n * b, 1.0 / 4**b)
                                        for b in (2, 3, 4, 8)))
              for i, n in enumerate([864 * 1000, 288 * 5000, 512 * 3000])]
    budget = sum(n * 4 for n in [864 * 1000, 288 * 5000, 512 * 3000])
    r = allocate(curves, budget, method="dp")
    m = allocate(curves, budget, method="milp")
    assert r.objective == pytest.approx(m.objective, rel=1e-12)
    assert r.objective == pytest.approx(_brute(curves, budget, lambda o: o.error), rel=1e-12)


def test_bad_input():
    a = LayerCurve("a", (LayerOption("2", 20, 0.5), LayerOption("4", 40, 0.1)))
    with pytest.raises(ProblemError, match="infeasible.*20 bits"):
        allocate([a], 19)
    with pytest.raises(ProblemError, match="no layers"):
        allocate([], 10)
    with pytest.raises(ProblemError, match="target"):
        allocate([a], 40, target="sqnr")
    with pytest.raises(ProblemError, match="method"):
        allocate([a], 40, method="greedy")
    with pytest.raises(ProblemError, match="max_cells"):
        allocate([a], 40, method="dp", max_cells=1)
    assert allocate([a], 40, max_cells=1).method == "milp"
    with pytest.raises(ProblemError, match="integer"):
        LayerOption("x", 1.5, 0.1)
    with pytest.raises(ProblemError, match="finite"):
        LayerOption("x", 1, float("nan"))
    with pytest.raises(ProblemError, match="above the achieved"):
        LayerOption("x", 1, 0.1, 0.2)
    with pytest.raises(ProblemError, match="no options"):
        LayerCurve("x", ())


def test_hessian_trace_proxy_exact_for_scaled_identity():
    rng = np.random.default_rng(0)
    W0 = rng.normal(size=(3, 5))
    W = W0 + rng.normal(scale=0.1, size=W0.shape)
    H = 2.5 * np.eye(5)
    norm = float(np.einsum("ci,ij,cj->", W0, H, W0))
    err = float(np.einsum("ci,ij,cj->", W - W0, H, W - W0))
    assert hessian_trace_proxy(np.diag(H), W0, W, norm) == pytest.approx(err / norm)
    with pytest.raises(ProblemError, match="norm"):
        hessian_trace_proxy(np.diag(H), W0, W, 0.0)
    with pytest.raises(ProblemError, match="h_diag"):
        hessian_trace_proxy(np.ones(4), W0, W, 1.0)
