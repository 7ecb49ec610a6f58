"""The split modulo the least eigendirections of ``benchmarks/prune_root_sdp.py``: below ``H``,
zero along the directions it ignores, and so every mask's error under it is at most the error
under ``H`` (checked on every mask of small problems)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solvers.problem import PruneProblem
from solvers.prune.refit import refit
from tests.benchmark_scripts import load_benchmark

prs = load_benchmark("prune_root_sdp")


def _mask_errors(H, w0, k):
    """Every mask keeping ``k``: its exact refit error (the project's one refit)."""
    n = len(w0)
    p = PruneProblem(H, w0, k=k)
    out = []
    for S in itertools.combinations(range(n), k):
        mask = np.zeros(n, dtype=bool)
        mask[list(S)] = True
        out.append(refit(p, mask)[1])
    return np.array(out)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("m", [0, 1, 3])
def test_modulo_split_is_a_relaxation_of_every_mask(seed, m):
    rng = np.random.default_rng(seed)
    n, k = 9, 3
    X = rng.standard_normal((4 * n, n)) + 2.0 * rng.standard_normal((4 * n, 1))
    H = X.T @ X * rng.uniform(0.5, 2.0)
    w0 = rng.standard_normal(n)
    M = prs.modulo_split(H, m)
    assert np.allclose(M, M.T)
    ev = np.linalg.eigvalsh(H - M)
    assert ev[0] >= -1e-9 * ev[-1]
    # zero along the m least eigendirections of the Jacobi-scaled H (in H's units)
    s = 1 / np.sqrt(np.diag(H))
    V = np.linalg.eigh(H * np.outer(s, s))[1][:, :m]
    assert np.allclose(M @ (s[:, None] * V), 0, atol=1e-9 * np.abs(M).max())
    assert np.linalg.matrix_rank(M, tol=1e-9 * np.abs(M).max()) == n - m
    eh, em = _mask_errors(H, w0, k), _mask_errors(M, w0, k)
    assert np.all(em <= eh * (1 + 1e-9) + 1e-12)
    assert em.max() > 0
