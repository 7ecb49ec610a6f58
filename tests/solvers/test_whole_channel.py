"""The whole-channel block split, the budget DP and the whole-channel bounds, against brute force.

The brute-force tests enumerate the whole channel's quantization grid and every pruning mask
(n = 8) and check that the bound built from the block problems' optima never exceeds the true
whole-channel optimum, for every construction, every kind of ``H`` and N:M patterns.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from problem_instances import (
    KINDS,
    brute_force_prune,
    brute_force_quant,
    random_hessian,
    rounding_tol,
)

from solvers.problem import ProblemError, PruneProblem, QuantProblem, grid_limits
from solvers.whole_channel import (
    CONSTRUCTIONS,
    allocate_budget,
    block_split,
    block_sum_bound,
    box_dist2,
    budget_bound,
    grid_dist2,
    monotone_table,
    zero_budget_bound,
)


def _ranges(n, d):
    return [(s, min(s + d, n)) for s in range(0, n, d)]


def _hessian(rng, n, kind):
    """The five kinds of ``problem_instances`` plus ``"coupled"``: a diagonal ``H`` with weak
    off-block coupling, on which the shift construction is valid."""
    if kind != "coupled":
        return random_hessian(rng, n, kind)
    H = np.diag(rng.uniform(5.0, 6.0, n))
    for _ in range(n):
        i, j = rng.integers(0, n, 2)
        if i != j:
            H[i, j] = H[j, i] = rng.uniform(-0.4, 0.4)
    return H


def _assemble(split, n):
    B = np.zeros((n, n))
    for (a, b), blk in zip(split.ranges, split.blocks, strict=True):
        B[a:b, a:b] = blk
    return B


def _check_split(H, split):
    """(1) blocks PSD (to the rounding of their eigendecomposition), (2) H − B PSD as the
    module's split check proves it: exactly zero, or a computed least eigenvalue at least
    ``10·n·u·(‖H‖_F + ‖B‖_F)``; recomputed here independently."""
    n = H.shape[0]
    for blk in split.blocks:
        np.testing.assert_allclose(blk, blk.T, atol=0)
        assert np.linalg.eigvalsh(blk)[0] >= -1e-12 * max(1.0, np.abs(blk).max())
    B = _assemble(split, n)
    R = H - B
    mu = 10 * n * np.finfo(float).eps / 2 * (np.linalg.norm(H) + np.linalg.norm(B))
    assert split.margin == pytest.approx(mu, rel=1e-12)
    live = np.flatnonzero(np.any(H != 0, axis=1))
    dead = np.setdiff1d(np.arange(n), live)
    assert not np.any(R[dead]) and not np.any(R[:, dead])  # dead inputs: exactly zero rows
    Rl = R[np.ix_(live, live)]
    res = np.linalg.eigvalsh(Rl)[0] if np.any(Rl) else 0.0
    if split.strict:
        assert not np.any(Rl) or res >= mu
    else:  # a slack only where H is singular on its live inputs, and it covers the residual
        Hl = H[np.ix_(live, live)]
        assert np.linalg.eigvalsh(Hl)[0] <= 1e-9 * np.linalg.eigvalsh(Hl)[-1]
        assert res - mu >= -split.slack * (1 + 1e-12)


def _split_or_refusal(H, ranges, construction):
    """The split, or ``None`` when the shift is (rightly) refused: then every block's least
    eigenvalue is below ``t = −λ_min(O)``, recomputed here."""
    try:
        return block_split(H, ranges, construction=construction)
    except ProblemError as exc:
        assert construction == "shift" and "shift construction invalid" in str(exc)
        O = H.copy()
        for a, b in ranges:
            O[a:b, a:b] = 0.0
        t = -np.linalg.eigvalsh(O)[0]
        assert min(np.linalg.eigvalsh(H[a:b, a:b])[0] for a, b in ranges) < t
        return None


# --------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("construction", ["auto", "scale", "schur"])
def test_split_is_valid(kind, construction):
    rng = np.random.default_rng(1)
    H = random_hessian(rng, 12, kind)
    split = block_split(H, _ranges(12, 4), construction=construction)
    _check_split(H, split)
    if kind == "diag":
        assert split.construction == "exact"


def test_shift_construction_formula():
    # A well-conditioned H with weak off-block coupling: the shift is valid, t = −λ_min(O) + δ.
    rng = np.random.default_rng(2)
    H = np.diag(rng.uniform(5, 6, 6))
    H[0, 4] = H[4, 0] = 0.5
    H[1, 3] = H[3, 1] = -0.3
    ranges = [(0, 3), (3, 6)]
    split = block_split(H, ranges, construction="shift")
    O = H.copy()
    O[:3, :3] = 0
    O[3:, 3:] = 0
    t = -np.linalg.eigvalsh(O)[0]
    assert split.construction == "shift"
    assert split.shift == pytest.approx(t, rel=1e-6)
    assert split.shift >= t
    for (a, b), blk in zip(ranges, split.blocks, strict=True):
        np.testing.assert_allclose(blk, H[a:b, a:b] - split.shift * np.eye(b - a), atol=1e-12)
    _check_split(H, split)


def test_shift_refused_when_a_block_would_be_indefinite_and_auto_falls_back():
    rng = np.random.default_rng(3)
    H = random_hessian(rng, 8, "corr")  # strong coupling: t exceeds the blocks' λ_min
    with pytest.raises(ProblemError, match="shift construction invalid"):
        block_split(H, _ranges(8, 4), construction="shift")
    split = block_split(H, _ranges(8, 4))
    assert split.construction in ("scale", "schur")
    assert 0 <= split.alpha <= 1
    _check_split(H, split)


def test_schur_construction_formula_and_auto_keeps_the_largest_trace():
    rng = np.random.default_rng(7)
    H = random_hessian(rng, 9, "corr")
    ranges = _ranges(9, 3)
    split = block_split(H, ranges, construction="schur")
    Hinv = np.linalg.inv(H)
    for (a, b), blk in zip(ranges, split.blocks, strict=True):
        np.testing.assert_allclose(blk, np.linalg.inv(Hinv[a:b, a:b]) / 3, rtol=1e-8,
                                   atol=1e-10 * np.abs(H).max())
    _check_split(H, split)
    auto = block_split(H, ranges)
    traces = {c: sum(np.trace(b) for b in block_split(H, ranges, construction=c).blocks)
              for c in ("scale", "schur")}
    assert sum(np.trace(b) for b in auto.blocks) == pytest.approx(max(traces.values()))


def test_schur_on_a_singular_h_uses_the_generalised_complement():
    rng = np.random.default_rng(8)
    H = random_hessian(rng, 8, "rankdef")  # rank 4
    split = block_split(H, _ranges(8, 4), construction="schur")
    _check_split(H, split)


def test_dead_inputs_keep_the_split_valid():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 8))
    X[:, [1, 6]] = 0.0  # inputs that never fire
    H = X.T @ X
    split = block_split(H, _ranges(8, 4))
    _check_split(H, split)


def test_bad_input_rejected():
    with pytest.raises(ProblemError, match="do not tile"):
        block_split(np.eye(4), [(0, 2), (3, 4)])
    with pytest.raises(ProblemError, match="unknown construction 'best'"):
        block_split(np.eye(4), [(0, 2), (2, 4)], construction="best")
    split = block_split(np.eye(4), [(0, 2), (2, 4)])
    with pytest.raises(ProblemError, match="1 block bounds for a split into 2"):
        block_sum_bound([1.0], split)
    with pytest.raises(ProblemError, match="one block"):
        block_sum_bound([1.0, 2.0])
    with pytest.raises(ProblemError, match="3 budget tables"):
        budget_bound(split, np.ones(4), [{}, {}, {}], 2)


# --------------------------------------------------------------------------------------------
# Whole-channel bounds against brute force (every construction, every kind of H)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", (*KINDS, "coupled"))
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_quant_block_sum_never_exceeds_the_whole_optimum(kind, construction):
    rng = np.random.default_rng([11, KINDS.index(kind) if kind in KINDS else 9])
    n, bits = 8, 2
    H = _hessian(rng, n, kind)
    ranges = [(0, 3), (3, 6), (6, 8)]
    split = _split_or_refusal(H, ranges, construction)
    if split is None:
        assert kind not in ("coupled", "diag")  # the shift holds there: it must be tested
        return
    for outside in (False, True):  # w0 inside the grid's range, and partly beyond it
        w0 = rng.standard_normal(n)
        scale = float(np.max(np.abs(w0))) / (2 ** (bits - 1) - 0.5) * (0.5 if outside else 1.0)
        whole, z = brute_force_quant(QuantProblem(H, w0, scale=scale, bits=bits))
        block_opt = [brute_force_quant(QuantProblem(B, w0[a:b], scale=scale, bits=bits))[0]
                     for (a, b), B in zip(split.ranges, split.blocks, strict=True)]
        lb, info = block_sum_bound(block_opt, split,
                                   dist2=grid_dist2(w0, scale, *grid_limits(bits)))
        assert info["block_bounds"] == block_opt and info["construction"] == split.construction
        assert lb <= whole + rounding_tol(H, w0, scale * z), (lb, whole)


@pytest.mark.parametrize("kind", (*KINDS, "coupled"))
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_prune_budget_bound_never_exceeds_the_whole_optimum(kind, construction):
    rng = np.random.default_rng([12, KINDS.index(kind) if kind in KINDS else 9])
    n = 8
    H = _hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    split = _split_or_refusal(H, [(0, 3), (3, 6), (6, 8)], construction)
    if split is None:
        assert kind not in ("coupled", "diag")  # the shift holds there: it must be tested
        return
    # Every budget of every block, by brute force (the strongest certified block bound).
    solved = [{k: brute_force_prune(PruneProblem(B, w0[a:b], k=k))[0] for k in range(1, b - a)}
              for (a, b), B in zip(split.ranges, split.blocks, strict=True)]
    previous = np.inf
    for K in range(n + 1):
        whole, mask = brute_force_prune(PruneProblem(H, w0, k=K))
        lb, info = budget_bound(split, w0, solved, K)
        if not split.strict:  # free kept weights: a slack split proves nothing
            assert lb is None and "singular" in info["no_bound"]
            return
        assert sum(info["allocation"]) <= K and info["budget"] == K
        w = np.zeros(n)
        if mask.any():
            w[mask] = np.linalg.lstsq(H[np.ix_(mask, mask)], H[mask] @ w0, rcond=None)[0]
        assert lb <= whole + rounding_tol(H, w0, w), (K, lb, whole)
        assert lb <= previous  # more budget can only lower the bound
        previous = lb
    assert lb == 0.0  # K = n: keeping everything reproduces w0


@pytest.mark.parametrize("kind", (*KINDS, "coupled"))
@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("nm", [(2, 4), (1, 2)])
def test_nm_block_sum_never_exceeds_the_whole_optimum(kind, construction, nm):
    rng = np.random.default_rng([13, KINDS.index(kind) if kind in KINDS else 9])
    n = 8
    H = _hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    split = _split_or_refusal(H, _ranges(n, 4), construction)  # groups never straddle
    if split is None:
        assert kind not in ("coupled", "diag")  # the shift holds there: it must be tested
        return
    whole, mask = brute_force_prune(PruneProblem(H, w0, nm=nm))
    block_opt = [brute_force_prune(PruneProblem(B, w0[a:b], nm=nm))[0]
                 for (a, b), B in zip(split.ranges, split.blocks, strict=True)]
    lb, _ = block_sum_bound(block_opt, split)
    if not split.strict:  # free kept weights: a slack split proves nothing
        assert lb is None
        return
    w = np.zeros(n)
    w[mask] = np.linalg.lstsq(H[np.ix_(mask, mask)], H[mask] @ w0, rcond=None)[0]
    assert lb <= whole + rounding_tol(H, w0, w), (lb, whole)


def _boxed_reference():
    """``brute_force_boxed`` of tests/solvers/prune/prune_reference.py (not a package here)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "prune" / "prune_reference.py"
    spec = importlib.util.spec_from_file_location("prune_reference_for_whole_channel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.brute_force_boxed


@pytest.mark.parametrize("kind", ["rankdef", "corr", "well"])
def test_boxed_prune_budget_bound_pays_the_slack_and_stays_below_the_optimum(kind):
    """The paper's box bounds the feasible set, so a slack split (singular H) still certifies:
    ``Σ L_i − η·D²`` never exceeds the boxed whole-channel optimum."""
    brute_force_boxed = _boxed_reference()
    rng = np.random.default_rng([14, KINDS.index(kind)])
    n = 8
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    box = 2.0 * float(np.max(np.abs(w0)))
    split = block_split(H, [(0, 3), (3, 6), (6, 8)])
    if kind == "rankdef":
        assert not split.strict and split.slack > 0
    solved = [{k: brute_force_boxed(PruneProblem(B, w0[a:b], k=k,
                                                 box_factor=box / np.max(np.abs(w0[a:b]))))[0]
               for k in range(1, b - a)}
              for (a, b), B in zip(split.ranges, split.blocks, strict=True)]
    for K in range(n + 1):
        whole, _ = brute_force_boxed(PruneProblem(H, w0, k=K, box_factor=2.0))
        lb, info = budget_bound(split, w0, solved, K, dist2=box_dist2(w0, box))
        assert lb is not None and lb <= whole + 1e-9 * max(whole, 1e-300), (K, lb, whole)
        assert ("slack_cost" in info) == (not split.strict)


def _prune_tables(split, w0):
    return [{k: brute_force_prune(PruneProblem(blk, w0[a:b], k=k))[0] for k in range(1, b - a)}
            for (a, b), blk in zip(split.ranges, split.blocks, strict=True)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["well", "corr", "rankdef", "ill"]),
       bits=st.sampled_from([1, 2]), construction=st.sampled_from(["auto", "scale", "schur"]))
def test_quant_block_optima_bound_the_whole_optimum(seed, kind, bits, construction):
    rng = np.random.default_rng(seed)
    n = 6
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    scale = float(np.max(np.abs(w0))) / max(1, 2 ** (bits - 1) - 1) * 0.8
    split = block_split(H, _ranges(n, 3), construction=construction)
    whole, z = brute_force_quant(QuantProblem(H, w0, scale=scale, bits=bits))
    blocks = [brute_force_quant(QuantProblem(B, w0[a:b], scale=scale, bits=bits))[0]
              for (a, b), B in zip(split.ranges, split.blocks, strict=True)]
    lb, _ = block_sum_bound(blocks, split, dist2=grid_dist2(w0, scale, *grid_limits(bits)))
    assert lb <= whole + rounding_tol(H, w0, scale * z)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["well", "corr", "rankdef", "ill"]),
       K=st.integers(0, 6))
def test_prune_dp_over_block_optima_bounds_the_whole_optimum(seed, kind, K):
    rng = np.random.default_rng(seed)
    n = 6
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n)
    split = block_split(H, _ranges(n, 3))
    value, info = budget_bound(split, w0, _prune_tables(split, w0), K)
    if not split.strict:
        assert value is None
        return
    whole, _ = brute_force_prune(PruneProblem(H, w0, k=K))
    assert sum(info["allocation"]) <= K
    assert value <= whole * (1 + 1e-9) + 1e-12


def test_bound_is_tight_for_block_diagonal_h():
    # O = 0: B = H, so quantization and pruning bounds equal the whole optimum.
    rng = np.random.default_rng(5)
    H = np.zeros((6, 6))
    H[:3, :3] = random_hessian(rng, 3, "well")
    H[3:, 3:] = random_hessian(rng, 3, "well")
    w0 = rng.standard_normal(6)
    split = block_split(H, [(0, 3), (3, 6)])
    assert split.construction == "exact"
    blocks = [brute_force_quant(QuantProblem(H[a:b, a:b], w0[a:b], scale=0.4, bits=2))[0]
              for a, b in split.ranges]
    whole, _ = brute_force_quant(QuantProblem(H, w0, scale=0.4, bits=2))
    assert block_sum_bound(blocks, split)[0] == pytest.approx(whole, rel=1e-12)
    value, _ = budget_bound(split, w0, _prune_tables(split, w0), 3)
    assert value == pytest.approx(brute_force_prune(PruneProblem(H, w0, k=3))[0], rel=1e-10)


# --------------------------------------------------------------------------------------------
# Margins and the single-chunk case
# --------------------------------------------------------------------------------------------


def test_budget_zero_is_the_block_error_of_zero_with_its_margin():
    # K = 0: the only feasible point is w = 0, the bound is Σ_i w_iᵀB_iw_i less its rounding.
    rng = np.random.default_rng(9)
    H = random_hessian(rng, 6, "corr")
    w0 = rng.standard_normal(6)
    split = block_split(H, [(0, 3), (3, 6)])
    lb, info = budget_bound(split, w0, [{}, {}], 0)
    exact = sum(float(w0[a:b] @ B @ w0[a:b]) for (a, b), B in zip(split.ranges, split.blocks,
                                                                    strict=True))
    assert info["allocation"] == [0, 0]
    margin = sum(zero_budget_bound(B, w0[a:b]) for (a, b), B in zip(split.ranges, split.blocks,
                                                                      strict=True))
    assert lb <= margin <= exact
    assert lb == pytest.approx(exact, rel=1e-13)
    assert lb < exact
    # Unsolved budgets fall back on the next solved one, here L(n_i) = 0: with a budget of 1,
    # one block keeps a weight (bound 0) and the other keeps none (its L(0)).
    lb1, info1 = budget_bound(split, w0, [{}, {}], 1)
    assert sorted(info1["allocation"]) == [0, 1]
    assert lb1 == pytest.approx(min(float(w0[a:b] @ B @ w0[a:b])
                                    for (a, b), B in zip(split.ranges, split.blocks,
                                                         strict=True)), rel=1e-13)


def test_clamp_to_a_known_objective_and_single_chunk():
    split = block_split(np.diag([1.0, 2.0, 3.0, 4.0]), [(0, 2), (2, 4)])
    lb, info = block_sum_bound([1.0, 2.0], split, objective=2.5)
    assert lb == 2.5 and info["clamped_from"] == pytest.approx(3.0, rel=1e-14)
    lb, info = block_sum_bound([1.0, 2.0], split, objective=4.0)
    assert lb == pytest.approx(3.0, rel=1e-14) and lb <= 3.0 and "clamped_from" not in info
    lb, info = budget_bound(split, np.ones(4), [{1: 1.0}, {1: 3.0}], 2, objective=2.0)
    assert lb == 2.0 and info["clamped_from"] == pytest.approx(3.0)
    lb, info = block_sum_bound([0.7])
    assert lb == 0.7 and info == {"construction": "single chunk (B = H)"}


# --------------------------------------------------------------------------------------------
# The budget DP against brute-force allocation
# --------------------------------------------------------------------------------------------

_entry = st.one_of(st.none(), st.floats(0, 10))


@settings(max_examples=60, deadline=None)
@given(tables=st.lists(st.lists(_entry, min_size=1, max_size=4), min_size=1, max_size=3),
       K=st.integers(0, 8))
def test_allocate_budget_matches_enumeration(tables, K):
    value, alloc = allocate_budget(tables, K)
    mono = [monotone_table(t) for t in tables]
    best = min(sum(m[k] for m, k in zip(mono, ks, strict=True))
               for ks in itertools.product(*[range(len(t)) for t in tables]) if sum(ks) <= K)
    assert value == pytest.approx(best)
    assert len(alloc) == len(tables) and sum(alloc) <= K
    assert all(0 <= k < len(t) for k, t in zip(alloc, tables, strict=True))
    assert sum(m[k] for m, k in zip(mono, alloc, strict=True)) == pytest.approx(value)
    if K > 0:  # more budget never raises the least total
        assert allocate_budget(tables, K - 1)[0] >= value


@settings(max_examples=60, deadline=None)
@given(table=st.lists(_entry, min_size=1, max_size=6))
def test_monotone_table_is_the_least_valid_tightening(table):
    # f(k) ≥ max_{j≥k} L(j): non-increasing, never below a known entry, L(n) = 0 when unknown,
    # and equal to the largest known entry to the right (or 0) — nothing tighter is implied.
    t = monotone_table(table)
    assert np.all(np.diff(t) <= 0)
    for k in range(len(table)):
        assert t[k] == max([0.0, *(v for v in table[k:] if v is not None)])
        if table[k] is not None:
            assert t[k] >= table[k]


def test_monotone_table_is_valid_tightening():
    t = monotone_table([5.0, None, 2.0, 3.0, None])
    np.testing.assert_allclose(t, [5.0, 3.0, 3.0, 3.0, 0.0])


def test_budget_must_be_non_negative():
    with pytest.raises(ProblemError, match="budget K must be >= 0"):
        allocate_budget([[1.0, 0.0]], -1)
