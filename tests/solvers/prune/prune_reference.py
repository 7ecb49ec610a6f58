"""Independent references for the pruning tests: a boxed brute force and contract checks."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import lsq_linear

from solvers.problem import PruneProblem


def masks(p: PruneProblem):
    """Every mask keeping exactly ``k`` inputs (within the N:M pattern when set)."""
    for keep_idx in itertools.combinations(range(p.n), p.k):
        m = np.zeros(p.n, dtype=bool)
        m[list(keep_idx)] = True
        if p.nm is not None:
            N, M = p.nm
            if np.any(m.reshape(-1, M).sum(axis=1) > N):
                continue
        yield m


def factor(H: np.ndarray) -> np.ndarray:
    lam, V = np.linalg.eigh(H)
    lam = np.clip(lam, 0.0, None)
    return (V * np.sqrt(lam)).T


def boxed_value(p: PruneProblem, mask: np.ndarray, X: np.ndarray) -> float:
    """Least error on ``mask`` with ``|w| <= box`` by scipy's BVLS on a factor of H."""
    K = np.flatnonzero(mask)
    w = np.zeros(p.n)
    if K.size:
        res = lsq_linear(X[:, K], X @ p.w0, bounds=(-p.box, p.box), method="bvls", tol=1e-15)
        w[K] = res.x
    return p.error(w)


def brute_force_boxed(p: PruneProblem) -> tuple[float, np.ndarray]:
    """Least boxed error over all masks (exhaustive; keep n small)."""
    X = factor(p.H)
    best, bm = np.inf, None
    for m in masks(p):
        v = boxed_value(p, m, X)
        if v < best:
            best, bm = v, m
    return float(best), bm


def check_contract(p: PruneProblem, r, optimum: float | None = None, *, rtol: float = 1e-7):
    """The certification contract and the shape of a pruning result."""
    tol = rtol * max(p.norm, 1e-300) + 1e-300
    assert r.mask is not None and r.mask.dtype == bool and r.mask.shape == (p.n,)
    assert int(r.mask.sum()) <= p.k
    if p.nm is not None:
        N, M = p.nm
        assert np.all(r.mask.reshape(-1, M).sum(axis=1) <= N)
    assert np.all(r.weights[~r.mask] == 0.0)
    assert abs(r.objective - p.error(r.weights)) <= 1e-12 * max(p.norm, 1e-300)
    if p.box is not None:
        assert np.all(np.abs(r.weights) <= p.box * (1 + 1e-12))
    if r.lower_bound is not None:
        assert r.lower_bound <= r.objective
        if optimum is not None:
            assert r.lower_bound <= optimum + tol
    if optimum is not None:
        assert r.objective >= optimum - tol
