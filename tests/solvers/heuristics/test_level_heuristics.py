"""Level-format heuristics (solvers/heuristics/levels.py) and Wanda (wanda.py).

Every returned weight is a level of its input, the nonzero limits hold, the objective is never
below the optimum (brute force over every level assignment), GPTQ over levels is RTN when ``H``
is diagonal and equals the uniform-grid GPTQ on a symmetric grid, the joint SparseGPT pass
becomes SparseGPT's pruning on a fine grid, and Wanda is magnitude pruning for ``H = c·I``.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from solvers import LevelProblem, PruneProblem, QuantProblem, solve
from solvers.formats import build_levels
from solvers.heuristics import levels as lh
from solvers.heuristics.gptq import gptq
from solvers.heuristics.magnitude import magnitude
from solvers.heuristics.sparsegpt import sparsegpt
from solvers.heuristics.wanda import wanda, wanda_layer, wanda_refit
from solvers.problem import ProblemError
from solvers.prune.refit import unboxed_refit
from solvers.registry import methods
from tests.problem_instances import KINDS, brute_force_prune, random_hessian
from tests.solvers.levels.test_exact_levels import brute_force_levels

DENSE = ("rtn", "gptq")
SPARSE = ("rtn", "wanda", "wanda-gptq", "prune-gptq", "sparsegpt")
PRESETS = ("int3-asym", "fp4-e2m1-g2", "nf4-g4", "int3-ch", "fp4-e2m1-nv-g2")


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _problem(rng, preset, kind, *, k=None, nm=None, outside=False) -> LevelProblem:
    """n = 6 for 8-level formats, 4 otherwise (brute force stays below 300 000 points)."""
    n = 6 if preset.startswith("int3") else 4
    W0 = rng.standard_normal((2, n))
    f = build_levels(W0, preset)
    w0 = 2.5 * W0[0] if outside else W0[0]
    return f.problem(0, random_hessian(rng, n, kind), w0, k=k, nm=nm)


def _check(p: LevelProblem, r, opt: float) -> None:
    p.check_weights(r.weights)  # every weight a level; the nonzero limit holds
    assert r.lower_bound is None
    assert r.objective == pytest.approx(p.error(r.weights), rel=1e-12, abs=1e-300)
    tol = 1e-9 * max(opt, 1e-300) + 1e-12 * p.norm
    assert r.objective >= opt - tol, (r.method, r.objective, opt)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("kind", KINDS)
def test_dense_methods_feasible_and_not_below_optimum(preset, kind):
    rng = _rng("dense", preset, kind)
    for outside in (False, True):
        p = _problem(rng, preset, kind, outside=outside)
        opt = brute_force_levels(p)
        for m in DENSE:
            _check(p, solve(p, m), opt)
        _check(p, solve(p, "gptq", act_order=True), opt)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", [{"k": 1}, {"k": 3}, {"nm": (1, 2)}, {"nm": (2, 4)}])
def test_sparse_methods_feasible_and_not_below_optimum(kind, limit):
    rng = _rng("sparse", kind, str(limit))
    for preset in ("int3-asym-ch", "nf4-g4", "fp4-e2m1-g2"):
        if "nm" in limit and (6 if preset.startswith("int3") else 4) % limit["nm"][1]:
            continue
        p = _problem(rng, preset, kind, **limit)
        opt = brute_force_levels(p)
        for m in SPARSE:
            r = solve(p, m)
            _check(p, r, opt)
            assert np.count_nonzero(r.weights) <= p.k


def test_user_levels_per_input_and_shared():
    rng = _rng("user")
    H = random_hessian(rng, 6, "corr")
    a, b = rng.uniform(0.05, 0.5, (2, 6))
    table = np.stack([-a, np.zeros(6), b, 2 * b], axis=1)
    for lv in (table, np.array([-0.3, 0.0, 0.1, 0.7])):
        for k in (None, 3):
            p = LevelProblem(H, rng.standard_normal(6) * 0.3, levels=lv, k=k)
            opt = brute_force_levels(p)
            for m in (SPARSE if k else DENSE):
                _check(p, solve(p, m), opt)


@pytest.mark.parametrize("preset", PRESETS)
def test_gptq_is_rtn_when_H_is_diagonal(preset):
    rng = _rng("diag", preset)
    n = 8
    f = build_levels(rng.standard_normal((1, n)), preset)
    H = np.diag(rng.uniform(0.1, 10.0, n))
    p = f.problem(0, H, 1.7 * rng.standard_normal(n))
    rtn = solve(p, "rtn").weights
    for act in (False, True):
        assert np.array_equal(solve(p, "gptq", act_order=act, damp=0.0).weights, rtn)
    # RTN is the nearest level of each weight: the same as the format's own rounding
    assert np.array_equal(rtn, f.nearest(p.w0[None])[0])


@pytest.mark.parametrize("kind", ("well", "corr", "ill"))
@pytest.mark.parametrize("act_order", (False, True))
def test_gptq_over_a_symmetric_grid_is_gptq(kind, act_order):
    rng = _rng("grid", kind, act_order)
    n = 24
    q = QuantProblem(random_hessian(rng, n, kind), rng.standard_normal(n), scale=0.37, bits=3)
    ref = gptq(q, act_order=act_order, block_size=8)
    ours = solve(LevelProblem.from_quant(q), "gptq", act_order=act_order, block_size=8)
    # ties (rint to even vs to the lower level) are measure-zero on random data
    assert np.allclose(ours.weights, ref.weights, rtol=0, atol=1e-12)


def test_block_size_does_not_change_the_result():
    rng = _rng("blocks")
    n = 20
    p = build_levels(rng.standard_normal((1, n)), "nf4-g4").problem(
        0, random_hessian(rng, n, "corr"), rng.standard_normal(n))
    a, b = (solve(p, "gptq", block_size=s).weights for s in (3, 128))
    assert np.allclose(a, b, atol=1e-12)
    ps = LevelProblem(p.H, p.w0, levels=p.levels, nm=(2, 4))
    a, b = (solve(ps, "sparsegpt", block_size=s).weights for s in (4, 128))
    assert np.allclose(a, b, atol=1e-12)


def test_joint_sparsegpt_on_a_fine_grid_is_sparsegpt():
    """With levels 1e-5 apart, rounding is (almost) the identity: SparseGPT's pruning."""
    rng = _rng("fine")
    n = 16
    H = random_hessian(rng, n, "well")
    w0 = rng.standard_normal(n)
    fine = np.arange(-6e5, 6e5 + 1) * 1e-5
    for limit in ({"k": 6}, {"nm": (2, 4)}):
        ref = sparsegpt(PruneProblem(H, w0, **limit))
        ours = solve(LevelProblem(H, w0, levels=fine, **limit), "sparsegpt")
        assert np.array_equal(ours.weights != 0, ref.mask)
        assert np.allclose(ours.weights, ref.weights, atol=1e-3)


def test_prune_gptq_is_the_refit_on_a_fine_grid():
    rng = _rng("refit")
    n = 12
    H = random_hessian(rng, n, "corr")
    w0 = rng.standard_normal(n)
    fine = np.arange(-6e5, 6e5 + 1) * 1e-5
    r = solve(LevelProblem(H, w0, levels=fine, k=5), "prune-gptq")
    mask = sparsegpt(PruneProblem(H, w0, k=5)).mask
    assert np.array_equal(r.weights != 0, mask)
    assert np.allclose(r.weights, unboxed_refit(H, w0, mask), atol=1e-3)


def test_wanda_scores_and_nm():
    rng = _rng("wanda")
    n = 8
    w0 = rng.standard_normal(n)
    d = rng.uniform(0.1, 10.0, n)
    H = np.diag(d)
    r = wanda(PruneProblem(H, w0, k=3))
    keep = np.sort(np.argsort(-np.abs(w0) * np.sqrt(d), kind="stable")[:3])
    assert np.flatnonzero(r.mask).tolist() == keep.tolist()
    assert np.array_equal(r.weights, np.where(r.mask, w0, 0.0))
    # H = c·I: Wanda is magnitude pruning
    H2 = 3.0 * np.eye(n)
    for limit in ({"k": 3}, {"nm": (2, 4)}):
        assert np.array_equal(wanda(PruneProblem(H2, w0, **limit)).mask,
                              magnitude(PruneProblem(H2, w0, **limit)).mask)
    rn = wanda(PruneProblem(random_hessian(rng, n, "well"), w0, nm=(1, 4)))
    assert np.all(np.count_nonzero(rn.mask.reshape(-1, 4), axis=1) == 1)


def test_wanda_refit_never_worse_and_layer_matches_channels():
    rng = _rng("wanda-refit")
    n = 10
    H = random_hessian(rng, n, "corr")
    W0 = rng.standard_normal((3, n))
    for c in range(3):
        p = PruneProblem(H, W0[c], k=4)
        a, b = wanda(p), wanda_refit(p)
        assert np.array_equal(a.mask, b.mask)
        assert b.objective <= a.objective * (1 + 1e-12)
        assert b.objective >= brute_force_prune(p)[0] * (1 - 1e-9)
    run = wanda_layer(H, W0, 4)
    for c, r in enumerate(run.results()):
        assert np.array_equal(r.weights, wanda(PruneProblem(H, W0[c], k=4)).weights)


def test_limits_are_checked():
    p = LevelProblem(np.eye(4), [0.1, 0.2, 0.3, 0.4], levels=[-0.5, 0.0, 0.5])
    for m in ("wanda", "wanda-gptq", "prune-gptq", "sparsegpt"):
        with pytest.raises(ProblemError, match="needs a nonzero limit"):
            solve(p, m)
    with pytest.raises(ProblemError, match="no nonzero limit"):
        solve(LevelProblem(p.H, p.w0, levels=p.levels, k=2), "gptq")
    with pytest.raises(ProblemError, match="no option"):
        solve(p, "gptq", bogus=1)


def test_registered():
    names = {m.name for m in methods("levels")}
    assert set(DENSE) | set(SPARSE) <= names
    assert {"wanda", "wanda-refit"} <= {m.name for m in methods("prune")}


@pytest.mark.parametrize("act_order", (False, True))
@pytest.mark.parametrize("static", (False, True))
@pytest.mark.parametrize("fmt", ("int4-asym-g4", "fp4-e2m1-g4", "nf4-g8", "int4-ch"))
def test_gptq_format_layer(fmt, static, act_order):
    rng = _rng("layer", fmt, static, act_order)
    n, C = 16, 3
    X = rng.standard_normal((64, n)) * rng.uniform(0.2, 3.0, n)
    H, W0 = X.T @ X, rng.standard_normal((C, n))
    W, T, g = lh.gptq_format_layer(H, W0, fmt, act_order=act_order, static_groups=static,
                                   block_size=8)
    assert np.all(np.any(T == W[:, :, None], axis=2))  # every weight one of its levels
    f = build_levels(W0, fmt)
    G = f.group
    assert np.all(np.bincount(g) == G)
    for c in range(C):  # inputs of one group share one level set
        for gi in range(n // G):
            rows = T[c, g == gi]
            assert np.all(rows == rows[0])
    if static or f.spec.granularity != "group":
        assert np.array_equal(g, np.arange(n) // G)
        assert np.array_equal(T[0], np.broadcast_to(f.levels(0), T[0].shape))
        # static groups = GPTQ over each channel's LevelProblem
        for c in range(C):
            r = solve(f.problem(c, H, W0[c]), "gptq", act_order=act_order, block_size=8)
            assert np.allclose(W[c], r.weights, atol=1e-12)
    elif not act_order:  # dynamic without act-order: groups stay contiguous
        assert np.array_equal(g, np.arange(n) // G)


def test_gptq_format_layer_refusals():
    H, W0 = np.eye(32), np.ones((1, 32))
    with pytest.raises(ProblemError, match="static_groups"):
        lh.gptq_format_layer(H, W0, "fp4-e2m1-nv")
    with pytest.raises(ProblemError, match="no sparsity"):
        lh.gptq_format_layer(H, W0, "int4+2:4")
