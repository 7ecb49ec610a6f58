"""The block-exact root bound of ``benchmarks/prune_root_sdp.py`` against enumeration.

It is a measurement (uncertified), but it claims to be a lower bound on every mask's error:
exact when ``H`` is block diagonal along the blocks (nothing left to relax), and never above
the optimum otherwise, for any ``y``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.benchmark_scripts import load_benchmark

prs = load_benchmark("prune_root_sdp")


def _brute_force(H, w0, k, residual=False):
    """The least error over all masks keeping ``k`` (and its residual ``w0 − x``)."""
    n = len(w0)
    best, best_r = np.inf, None
    for S in itertools.combinations(range(n), k):
        P = [j for j in range(n) if j not in S]
        S = list(S)
        g = H[np.ix_(S, P)] @ w0[P]
        x_S = np.linalg.solve(H[np.ix_(S, S)], g)
        err = w0[P] @ H[np.ix_(P, P)] @ w0[P] - g @ x_S
        if err < best:
            best, best_r = err, w0.copy()
            best_r[S] = -x_S
    return (best, best_r) if residual else best


def _random_spd(rng, n):
    X = rng.standard_normal((3 * n, n)) + rng.standard_normal((3 * n, 1))
    return X.T @ X


@pytest.mark.parametrize("seed", range(4))
def test_exact_on_block_diagonal_H(seed):
    rng = np.random.default_rng(seed)
    blocks = [np.arange(0, 4), np.arange(4, 9)]
    Bs = [_random_spd(rng, 4), _random_spd(rng, 5)]
    H = np.zeros((9, 9))
    for b, B in zip(blocks, Bs, strict=True):
        H[np.ix_(b, b)] = B
    w0 = rng.standard_normal(9)
    for k in (2, 4, 7):
        got = prs.block_bound(H, w0, k, blocks, Bs, np.zeros(9))
        assert got == pytest.approx(_brute_force(H, w0, k), rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_never_above_the_optimum(seed):
    rng = np.random.default_rng(10 + seed)
    n = 8
    H = _random_spd(rng, n)
    w0 = rng.standard_normal(n)
    blocks = [np.arange(0, 4), np.arange(4, 8)]
    Bs = prs.block_split(H, blocks)
    for k in (2, 4, 6):
        opt, r = _brute_force(H, w0, k, residual=True)
        for y in (np.zeros(n), 0.1 * rng.standard_normal(n), rng.standard_normal(n), r, 2 * r):
            assert prs.block_bound(H, w0, k, blocks, Bs, y) <= opt * (1 + 1e-9)
