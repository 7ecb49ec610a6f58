"""The whole-channel block split and the exact budget allocation, against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from problem_instances import brute_force_prune, brute_force_quant, random_hessian

from bounds.compare.whole_layer import (
    allocate_budget,
    block_split,
    chunk_bounds,
    monotone_table,
    stitched_error,
)
from solvers.problem import ProblemError, PruneProblem, QuantProblem


def _assemble(split, n):
    B = np.zeros((n, n))
    for (a, b), blk in zip(split.bounds, split.blocks, strict=True):
        B[a:b, a:b] = blk
    return B


def _check_split(H, split):
    """(1) blocks PSD, (2) H − B PSD, with an explicit numerical margin."""
    n = H.shape[0]
    lam_max = np.linalg.eigvalsh(H)[-1]
    tol = 1e-9 * lam_max
    for blk in split.blocks:
        np.testing.assert_allclose(blk, blk.T, atol=0)
        assert np.linalg.eigvalsh(blk)[0] >= -tol
    R = H - _assemble(split, n)
    assert np.linalg.eigvalsh(R)[0] >= -tol
    # Recomputed independently: a Cholesky of R + tol·I must succeed.
    np.linalg.cholesky(R + 2 * tol * np.eye(n))


@pytest.mark.parametrize("kind", ["well", "ill", "rankdef", "corr", "diag"])
@pytest.mark.parametrize("construction", ["auto", "scale", "schur"])
def test_split_is_valid(kind, construction):
    rng = np.random.default_rng(1)
    H = random_hessian(rng, 12, kind)
    split = block_split(H, chunk_bounds(12, 4), construction=construction)
    _check_split(H, split)
    if kind == "diag":
        assert split.construction == "exact"


def test_shift_construction_formula():
    # A well-conditioned H with weak off-block coupling: the shift is valid, t = −λ_min(O) + δ.
    rng = np.random.default_rng(2)
    H = np.diag(rng.uniform(5, 6, 6))
    H[0, 4] = H[4, 0] = 0.5
    H[1, 3] = H[3, 1] = -0.3
    bounds = [(0, 3), (3, 6)]
    split = block_split(H, bounds, construction="shift")
    O = H.copy()
    O[:3, :3] = 0
    O[3:, 3:] = 0
    t = -np.linalg.eigvalsh(O)[0]
    assert split.construction == "shift"
    assert split.shift == pytest.approx(t, rel=1e-6)
    assert split.shift >= t
    for (a, b), blk in zip(bounds, split.blocks, strict=True):
        np.testing.assert_allclose(blk, H[a:b, a:b] - split.shift * np.eye(b - a), atol=1e-12)
    _check_split(H, split)


def test_shift_refused_when_a_block_would_be_indefinite_and_auto_falls_back():
    rng = np.random.default_rng(3)
    H = random_hessian(rng, 8, "corr")  # strong coupling: t exceeds the blocks' λ_min
    with pytest.raises(ProblemError, match="shift construction invalid"):
        block_split(H, chunk_bounds(8, 4), construction="shift")
    split = block_split(H, chunk_bounds(8, 4))
    assert split.construction in ("scale", "schur")
    assert 0 <= split.alpha <= 1
    _check_split(H, split)


def test_schur_construction_formula_and_auto_keeps_the_largest_trace():
    rng = np.random.default_rng(7)
    H = random_hessian(rng, 9, "corr")
    bounds = chunk_bounds(9, 3)
    split = block_split(H, bounds, construction="schur")
    Hinv = np.linalg.inv(H)
    for (a, b), blk in zip(bounds, split.blocks, strict=True):
        np.testing.assert_allclose(blk, np.linalg.inv(Hinv[a:b, a:b]) / 3, rtol=1e-8,
                                   atol=1e-10 * np.abs(H).max())
    _check_split(H, split)
    auto = block_split(H, bounds)
    traces = {c: sum(np.trace(b) for b in block_split(H, bounds, construction=c).blocks)
              for c in ("scale", "schur")}
    assert sum(np.trace(b) for b in auto.blocks) == pytest.approx(max(traces.values()))


def test_schur_on_a_singular_h_uses_the_generalised_complement():
    rng = np.random.default_rng(8)
    H = random_hessian(rng, 8, "rankdef")  # rank 4
    split = block_split(H, chunk_bounds(8, 4), construction="schur")
    _check_split(H, split)


def test_dead_inputs_keep_the_split_valid():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 8))
    X[:, [1, 6]] = 0.0  # inputs that never fire
    H = X.T @ X
    split = block_split(H, chunk_bounds(8, 4))
    _check_split(H, split)


def test_bad_bounds_rejected():
    with pytest.raises(ProblemError, match="do not tile"):
        block_split(np.eye(4), [(0, 2), (3, 4)])


def _quant_whole_vs_blocks(H, w0, scale, bits, bounds, construction="auto"):
    split = block_split(H, bounds, construction=construction)
    whole, _ = brute_force_quant(QuantProblem(H, w0, scale=scale, bits=bits))
    blocks = 0.0
    for (a, b), blk in zip(bounds, split.blocks, strict=True):
        opt, _ = brute_force_quant(QuantProblem(blk, w0[a:b], scale=scale, bits=bits))
        blocks += opt
    return blocks, whole


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["well", "corr", "rankdef", "ill"]),
       bits=st.sampled_from([1, 2]))
def test_quant_block_optima_bound_the_whole_optimum(seed, kind, bits):
    rng = np.random.default_rng(seed)
    n = 6
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    scale = float(np.max(np.abs(w0))) / max(1, 2 ** (bits - 1) - 1) * 0.8
    blocks, whole = _quant_whole_vs_blocks(H, w0, scale, bits, chunk_bounds(n, 3))
    assert blocks <= whole * (1 + 1e-9) + 1e-12


def _prune_tables(split, w0):
    tables = []
    for (a, b), blk in zip(split.bounds, split.blocks, strict=True):
        tables.append([brute_force_prune(PruneProblem(blk, w0[a:b], k=k))[0]
                       for k in range(b - a + 1)])
    return tables


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["well", "corr", "rankdef", "ill"]),
       K=st.integers(0, 6))
def test_prune_dp_over_block_optima_bounds_the_whole_optimum(seed, kind, K):
    rng = np.random.default_rng(seed)
    n = 6
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    split = block_split(H, chunk_bounds(n, 3))
    value, alloc = allocate_budget(_prune_tables(split, w0), K)
    whole, _ = brute_force_prune(PruneProblem(H, w0, k=K))
    assert sum(alloc) <= K
    assert value <= whole * (1 + 1e-9) + 1e-12


def test_bound_is_tight_for_block_diagonal_h():
    # O = 0: B = H, so quantization and pruning bounds equal the whole optimum.
    rng = np.random.default_rng(5)
    H = np.zeros((6, 6))
    H[:3, :3] = random_hessian(rng, 3, "well")
    H[3:, 3:] = random_hessian(rng, 3, "well")
    w0 = rng.standard_normal(6)
    blocks, whole = _quant_whole_vs_blocks(H, w0, 0.4, 2, [(0, 3), (3, 6)])
    assert blocks == pytest.approx(whole, rel=1e-12)
    split = block_split(H, [(0, 3), (3, 6)])
    value, _ = allocate_budget(_prune_tables(split, w0), 3)
    assert value == pytest.approx(brute_force_prune(PruneProblem(H, w0, k=3))[0], rel=1e-10)


@settings(max_examples=40, deadline=None)
@given(tables=st.lists(st.lists(st.floats(0, 10), min_size=1, max_size=4), min_size=1,
                       max_size=3), K=st.integers(0, 8))
def test_allocate_budget_matches_enumeration(tables, K):
    value, alloc = allocate_budget(tables, K)
    mono = [monotone_table(t) for t in tables]
    best = min(sum(m[k] for m, k in zip(mono, ks, strict=True))
               for ks in itertools.product(*[range(len(t)) for t in tables]) if sum(ks) <= K)
    assert value == pytest.approx(best)
    assert sum(alloc) <= K
    assert sum(m[k] for m, k in zip(mono, alloc, strict=True)) == pytest.approx(value)


def test_monotone_table_is_valid_tightening():
    # f(k) ≥ max_{j≥k} L(j); unknown entries take the next known value; L(n) defaults to 0.
    t = monotone_table([5.0, None, 2.0, 3.0, None])
    np.testing.assert_allclose(t, [5.0, 3.0, 3.0, 3.0, 0.0])


def test_stitched_error_is_full_h_error():
    rng = np.random.default_rng(6)
    H = random_hessian(rng, 6, "corr")
    w0 = rng.standard_normal(6)
    parts = [np.zeros(3), w0[3:]]
    d = np.concatenate(parts) - w0
    assert stitched_error(H, w0, parts) == pytest.approx(d @ H @ d)
