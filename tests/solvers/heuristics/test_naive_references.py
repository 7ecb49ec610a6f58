"""Cross-check against naive textbook versions that recompute every inverse from scratch.

The naive versions below follow the papers' definitions literally (no Cholesky tricks, no lazy
blocks, no compact active block): after fixing input ``q`` to ``t_q`` the free inputs ``F`` are
re-optimised by ``w_F += (H_FF)⁻¹ H_Fq (w_q − t_q)``, and the OBS saliencies use ``[(H_F)⁻¹]_ii``
with ``F`` the inputs still free. On well-conditioned problems (no damping) the fast
implementations must make exactly the same choices.
"""

import numpy as np
import pytest
from problem_instances import random_hessian

from solvers.heuristics import gptq_layer, obq_layer, obs_layer, sparsegpt_layer
from solvers.prune.refit import unboxed_refit


def _fix(H, w, q, free, target):
    """Fix ``w_q = target`` and re-optimise ``w_free`` (the OBS update)."""
    if free:
        F = np.array(free)
        w[F] += np.linalg.solve(H[np.ix_(F, F)], H[F, q]) * (w[q] - target)
    w[q] = target


def naive_gptq(H, w0, s, zmin, zmax, order):
    w = w0.astype(float).copy()
    free = list(order)
    z = np.zeros(len(w0), dtype=int)
    for q in order:
        free.remove(q)
        z[q] = int(np.clip(np.rint(w[q] / s), zmin, zmax))
        _fix(H, w, q, free, z[q] * s)
    return z


def naive_obq(H, w0, s, zmin, zmax):
    w = w0.astype(float).copy()
    free = list(range(len(w0)))
    z = np.zeros(len(w0), dtype=int)
    while free:
        F = np.array(free)
        Finv = np.linalg.inv(H[np.ix_(F, F)])
        zz = np.clip(np.rint(w[F] / s), zmin, zmax)
        err = (w[F] - zz * s) ** 2
        if np.any(err > 0.25 * s * s):
            pos = int(np.argmax(err))
        else:
            pos = int(np.argmin(err / np.diag(Finv)))
        q = free.pop(pos)
        z[q] = int(zz[pos])
        _fix(H, w, q, free, z[q] * s)
    return z


def naive_obs(H, w0, k):
    w = w0.astype(float).copy()
    free = list(range(len(w0)))
    while len(free) > k:
        F = np.array(free)
        Finv = np.linalg.inv(H[np.ix_(F, F)])
        pos = int(np.argmin(w[F] ** 2 / np.diag(Finv)))
        q = free.pop(pos)
        _fix(H, w, q, free, 0.0)
    keep = np.zeros(len(w0), dtype=bool)
    keep[free] = True
    return keep, unboxed_refit(H, w0, keep)


def naive_sparsegpt(H, w0, k, block):
    n = len(w0)
    w = w0.astype(float).copy()
    d = np.array([np.linalg.inv(H[q:, q:])[0, 0] for q in range(n)])  # [H_F⁻¹]_qq, F = q..n-1
    pruned = np.zeros(n, dtype=bool)
    removed = 0
    for i1 in range(0, n, block):
        i2 = min(i1 + block, n)
        r = int(np.floor((n - k) * i2 / n + 0.5)) - removed
        removed += r
        scores = w[i1:i2] ** 2 / d[i1:i2]
        pruned[i1 + np.argsort(scores, kind="stable")[:r]] = True
        for q in range(i1, i2):
            _fix(H, w, q, list(range(q + 1, n)), 0.0 if pruned[q] else w[q])
    return ~pruned, w


@pytest.mark.parametrize("seed", range(6))
def test_quantizers_match_naive_versions(seed):
    rng = np.random.default_rng(seed)
    n, bits = 9, 3
    H = random_hessian(rng, n, "well" if seed % 2 else "corr")
    W0 = rng.standard_normal((4, n))
    s = float(np.abs(W0).max() / 3) * (0.6 if seed % 3 == 0 else 1.0)  # some weights off-grid
    zmin, zmax = -4, 3
    g = gptq_layer(H, W0, s, bits, damp=0.0, block_size=4)
    ga = gptq_layer(H, W0, s, bits, damp=0.0, act_order=True)
    o = obq_layer(H, W0, s, bits)
    order_ao = list(np.argsort(-np.diag(H), kind="stable"))
    for c in range(4):
        assert g.codes[c].tolist() == naive_gptq(H, W0[c], s, zmin, zmax, range(n)).tolist()
        assert ga.codes[c].tolist() == naive_gptq(H, W0[c], s, zmin, zmax, order_ao).tolist()
        assert o.codes[c].tolist() == naive_obq(H, W0[c], s, zmin, zmax).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_pruners_match_naive_versions(seed):
    rng = np.random.default_rng(100 + seed)
    n = 10
    H = random_hessian(rng, n, "well" if seed % 2 else "corr")
    W0 = rng.standard_normal((3, n))
    k = 3 + seed % 5
    obs = obs_layer(H, W0, k)
    sg = sparsegpt_layer(H, W0, k, damp=0.0, block_size=4)
    for c in range(3):
        keep, w = naive_obs(H, W0[c], k)
        assert obs.masks[c].tolist() == keep.tolist()
        np.testing.assert_allclose(obs.weights[c], w, rtol=1e-8, atol=1e-10)
        keep, w = naive_sparsegpt(H, W0[c], k, 4)
        assert sg.masks[c].tolist() == keep.tolist()
        np.testing.assert_allclose(sg.weights[c], np.where(keep, w, 0.0), rtol=1e-8, atol=1e-10)
