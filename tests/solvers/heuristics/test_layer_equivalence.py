"""Whole-layer (vectorised) runs equal per-channel runs, and results convert faithfully."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from problem_instances import random_hessian, rounding_tol

from solvers import LayerProblem, Status
from solvers.heuristics import (
    adaround,
    adaround_layer,
    gptq,
    gptq_layer,
    layer_results,
    magnitude,
    magnitude_layer,
    magnitude_refit,
    obq,
    obq_layer,
    obs_greedy,
    obs_layer,
    rtn,
    rtn_layer,
    sparsegpt,
    sparsegpt_layer,
)

C, N = 12, 16


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(2024)
    H = random_hessian(rng, N, "corr")
    W0 = rng.standard_normal((C, N))
    scales = np.abs(W0).max(axis=1) / 3.0  # per-channel min-max scales for 3 bits
    return LayerProblem(H, W0), scales


QUANT = [
    ("rtn", lambda H, W, s: rtn_layer(H, W, s, 3), lambda p: rtn(p)),
    ("gptq", lambda H, W, s: gptq_layer(H, W, s, 3, block_size=5),
     lambda p: gptq(p, block_size=5)),
    ("gptq-ao", lambda H, W, s: gptq_layer(H, W, s, 3, act_order=True),
     lambda p: gptq(p, act_order=True)),
    ("obq", lambda H, W, s: obq_layer(H, W, s, 3), lambda p: obq(p)),
    ("adaround", lambda H, W, s: adaround_layer(H, W, s, 3, iters=300),
     lambda p: adaround(p, iters=300)),
]

PRUNE = [
    ("magnitude", lambda H, W: magnitude_layer(H, W, 6), magnitude, {"k": 6}),
    ("magnitude-refit", lambda H, W: magnitude_layer(H, W, 6, refit=True), magnitude_refit,
     {"k": 6}),
    ("obs", lambda H, W: obs_layer(H, W, 6), obs_greedy, {"k": 6}),
    ("obs-nm", lambda H, W: obs_layer(H, W, nm=(2, 4)), obs_greedy, {"nm": (2, 4)}),
    ("sparsegpt", lambda H, W: sparsegpt_layer(H, W, 6, block_size=5),
     lambda p: sparsegpt(p, block_size=5), {"k": 6}),
    ("sparsegpt-nm", lambda H, W: sparsegpt_layer(H, W, nm=(2, 4)), sparsegpt, {"nm": (2, 4)}),
    ("sparsegpt-box", lambda H, W: sparsegpt_layer(H, W, 6, box_factor=0.7), sparsegpt,
     {"k": 6, "box_factor": 0.7}),
]


@pytest.mark.parametrize("name,run_layer,run_one", QUANT, ids=[q[0] for q in QUANT])
def test_quant_layer_equals_per_channel(layer, name, run_layer, run_one):
    lp, scales = layer
    run = run_layer(lp.H, lp.W0, scales)
    results = run.results()
    assert len(results) == C
    for c in range(C):
        one = run_one(lp.quant(c, scale=float(scales[c]), bits=3))
        np.testing.assert_array_equal(results[c].codes, one.codes)
        np.testing.assert_array_equal(results[c].weights, one.weights)
        tol = rounding_tol(lp.hessian(c), lp.W0[c], one.weights)
        assert results[c].objective == pytest.approx(one.objective, rel=1e-10, abs=tol)
        assert results[c].norm == pytest.approx(one.norm, rel=1e-12)


@pytest.mark.parametrize("name,run_layer,run_one,kw", PRUNE, ids=[p[0] for p in PRUNE])
def test_prune_layer_equals_per_channel(layer, name, run_layer, run_one, kw):
    lp, _ = layer
    results = run_layer(lp.H, lp.W0).results()
    for c in range(C):
        one = run_one(lp.prune(c, **kw))
        np.testing.assert_array_equal(results[c].mask, one.mask)
        np.testing.assert_allclose(results[c].weights, one.weights, rtol=1e-9, atol=1e-12)
        tol = rounding_tol(lp.hessian(c), lp.W0[c], one.weights)
        assert results[c].objective == pytest.approx(one.objective, rel=1e-9, abs=tol)


def test_layer_results_carry_everything(layer):
    lp, scales = layer
    run = gptq_layer(lp.H, lp.W0, scales, 3)
    res = layer_results(run)
    assert sum(r.objective for r in res) == pytest.approx(run.objective)
    assert run.sqnr_db == pytest.approx(10 * np.log10(run.norms.sum() / run.objectives.sum()))
    for c, r in enumerate(res):
        assert r.status is Status.HEURISTIC and r.lower_bound is None and r.gap is None
        assert r.info["scale"] == scales[c] and r.info["damp"] == 0.01
        assert r.seconds == pytest.approx(run.seconds / C)
        assert r.objective == pytest.approx(lp.quant(c, scale=scales[c], bits=3).error(r.weights))
        d = r.to_dict(channel=c)
        assert d["lower_bound"] is None and len(d["weights"]) == N and len(d["codes"]) == N


def test_objectives_use_the_undamped_hessian(layer):
    lp, scales = layer
    for damp in (0.0, 0.01, 1.0):
        run = gptq_layer(lp.H, lp.W0, scales, 3, damp=damp)
        D = run.weights - lp.W0
        np.testing.assert_allclose(run.objectives, np.einsum("ci,ij,cj->c", D, lp.H, D),
                                   rtol=1e-12)
        sp = sparsegpt_layer(lp.H, lp.W0, 6, damp=damp)
        D = sp.weights - lp.W0
        np.testing.assert_allclose(sp.objectives, np.einsum("ci,ij,cj->c", D, lp.H, D),
                                   rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 12),
    c=st.integers(1, 4),
    bits=st.integers(1, 5),
    kind=st.sampled_from(["well", "ill", "rankdef", "corr", "diag"]),
    density=st.floats(0.0, 1.0),
)
def test_invariants_on_random_layers(seed, n, c, bits, kind, density):
    rng = np.random.default_rng(seed)
    H = random_hessian(rng, n, kind)
    W0 = rng.standard_normal((c, n)) * 10.0 ** rng.uniform(-3, 3)
    s = float(np.abs(W0).max() / max(1, 2 ** (bits - 1) - 1)) or 1.0
    zmin, zmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    for run in (gptq_layer(H, W0, s, bits), obq_layer(H, W0, s, bits),
                gptq_layer(H, W0, s, bits, act_order=True, damp=0.0)):
        assert np.all((run.codes >= zmin) & (run.codes <= zmax))
        assert np.all(np.isfinite(run.objectives)) and np.all(run.objectives >= 0)
    k = round(density * n)
    for run in (sparsegpt_layer(H, W0, k), obs_layer(H, W0, k),
                magnitude_layer(H, W0, k, refit=True)):
        assert np.all(run.masks.sum(axis=1) == k)
        assert np.all(run.weights[~run.masks] == 0)
        assert np.all(np.isfinite(run.objectives)) and np.all(run.objectives >= 0)
    # a refit is a projection: never worse than pruning everything (the norm)
    ref = magnitude_layer(H, W0, k, refit=True)
    assert np.all(ref.objectives <= ref.norms * (1 + 1e-6) + 1e-12)


def test_layer_problem_helpers_shared_and_per_channel_hessians(layer):
    from solvers.heuristics.layer import prune_layer_results, quant_layer_results

    lp, scales = layer
    shared = quant_layer_results(lp, "gptq", scale=scales, bits=3)
    stacked = LayerProblem(np.repeat(lp.H[None], C, axis=0), lp.W0)
    per = quant_layer_results(stacked, "gptq", scale=scales, bits=3)
    for a, b in zip(shared, per, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
    shared = prune_layer_results(lp, "magnitude-refit", density=0.5)
    per = prune_layer_results(stacked, "magnitude-refit", density=0.5)
    for a, b in zip(shared, per, strict=True):
        np.testing.assert_array_equal(a.mask, b.mask)
        assert a.objective == pytest.approx(b.objective, rel=1e-9)
    with pytest.raises(Exception, match="valid"):
        quant_layer_results(lp, "exact", scale=1.0, bits=3)
