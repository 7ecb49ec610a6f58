"""The perspective node bound and the log-det diagonal split against enumeration (n <= 10).

Every node below is built exactly as the search builds it (rank-one keep / prune steps from the
root), its bound is compared with the least error over every mask of its subtree, and the
per-variable bounds with the least error of each child's subtree.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import (
    KINDS,
    brute_force_prune,
    random_hessian,
    random_prune_case,
    refit_error,
)

from solvers.problem import PruneProblem
from solvers.prune import kernels
from solvers.prune.bounds import diagonal_split, logdet_diagonal
from solvers.prune.exact import solve_exact
from solvers.prune.kernels import perspective_bound, waterfill
from solvers.prune.refit import PIVOT_RTOL
from solvers.result import Status

from .prune_reference import brute_force_boxed, check_contract


def _node(H, w0, F, P):
    """Backward and forward data of the node keeping ``F`` and pruning ``P`` (None if the
    kept block is singular: the perspective bound is not used there)."""
    n = H.shape[0]
    st_ = np.zeros(n, dtype=np.int8)
    keep = np.ones(n, dtype=bool)
    keep[P] = False
    G = np.zeros((n, n))
    w = np.zeros(n)
    if not kernels.chol_inverse(H, keep, PIVOT_RTOL, G):
        return None
    e = kernels.refit_from_inverse(H, w0, keep, G, w)
    S = H.copy()
    r = H @ w0
    for j in F:
        kernels.fwd_keep(S, r, j, H[j, j], PIVOT_RTOL)
    st_[F] = kernels.KEPT
    st_[P] = kernels.PRUNED
    return S, w, e, st_


def _subtree_opt(H, w0, N, M, st_, force=None):
    """Least error over the masks keeping every KEPT, no PRUNED, at most N per group of M."""
    n = H.shape[0]
    U = [j for j in range(n) if st_[j] == 0 and j != (force[0] if force else -1)]
    best = np.inf
    for r in range(len(U) + 1):
        for T in itertools.combinations(U, r):
            mask = st_ == kernels.KEPT
            mask = mask.copy()
            mask[list(T)] = True
            if force is not None and force[1]:
                mask[force[0]] = True
            if np.any(mask.reshape(-1, M).sum(axis=1) > N):
                continue
            best = min(best, refit_error(H, w0, mask)[0])
    return best


def _check_nodes(rng, H, w0, N, M, d, trials=6, iters=8):
    n = H.shape[0]
    scale = max(float(w0 @ H @ w0), 1e-300)
    for _ in range(trials):
        lab = rng.integers(0, 3, n)  # 0 undecided, 1 kept, 2 pruned
        F = np.flatnonzero(lab == 1)
        P = np.flatnonzero(lab == 2)
        st0 = np.zeros(n, dtype=np.int8)
        st0[F] = 1
        if np.any(st0.reshape(-1, M).sum(axis=1) > N):
            continue
        node = _node(H, w0, F, P)
        if node is None:
            continue
        S, w, e, st_ = node
        mkeep = N - (st_ == kernels.KEPT).reshape(-1, M).sum(axis=1)
        mkeep = mkeep.astype(np.int64)
        sal = np.full(n, -np.inf)
        kb = np.full(n, -np.inf)
        warm = np.zeros(n)
        pb = perspective_bound(S, w, e, st_, mkeep, M, d, warm, iters, np.inf, sal, kb)
        opt = _subtree_opt(H, w0, N, M, st_)
        tol = 1e-9 * scale + 1e-9 * abs(opt)
        assert pb <= opt + tol, (pb, opt)
        for j in np.flatnonzero(st_ == 0):
            if np.isfinite(sal[j]):
                assert sal[j] <= _subtree_opt(H, w0, N, M, st_, (j, False)) + tol
            if np.isfinite(kb[j]) and mkeep[j // M] > 0:
                assert kb[j] <= _subtree_opt(H, w0, N, M, st_, (j, True)) + tol


@pytest.mark.parametrize("method", ["jacobi", "logdet"])
@pytest.mark.parametrize("kind", KINDS)
def test_node_bounds_never_exceed_the_subtree_optimum(kind, method):
    rng = np.random.default_rng(100 + KINDS.index(kind))
    for _ in range(12):
        n = int(rng.integers(2, 9))
        k = int(rng.integers(0, n + 1))
        H = random_hessian(rng, n, kind)
        w0 = rng.standard_normal(n)
        d = diagonal_split(H, w0, np.diag(H) > 0, n - k, method)
        if not np.all(d[np.diag(H) > 0] > 0):
            continue
        _check_nodes(rng, H, w0, k, n, d)


@pytest.mark.parametrize("nm", [(1, 2), (2, 4), (1, 3)])
def test_node_bounds_nm(nm):
    rng = np.random.default_rng(sum(nm))
    N, M = nm
    for kind in ("well", "corr", "ill"):
        for _ in range(4):
            n = 2 * M
            H = random_hessian(rng, n, kind)
            w0 = rng.standard_normal(n)
            d = diagonal_split(H, w0, np.ones(n, dtype=bool), n - n * N // M, "logdet")
            _check_nodes(rng, H, w0, N, M, d)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("diagonal", ["jacobi", "logdet"])
def test_solver_with_perspective_matches_enumeration(kind, diagonal):
    rng = np.random.default_rng(7 + KINDS.index(kind))
    for _ in range(15):
        n = int(rng.integers(2, 11))
        k = int(rng.integers(0, n + 1))
        p = PruneProblem(random_hessian(rng, n, kind), rng.standard_normal(n), k=k)
        opt, _ = brute_force_prune(p)
        for steps in (1, 10):
            r = solve_exact(p, diagonal=diagonal, perspective=steps)
            check_contract(p, r, opt)
            assert r.objective <= opt + 1e-7 * max(p.norm, 1e-300)
            assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT)


def test_n12_perspective_and_root_bound():
    rng = np.random.default_rng(12)
    for kind in ("corr", "ill", "well"):
        for k in (3, 6):
            p = PruneProblem(random_hessian(rng, 12, kind), rng.standard_normal(12), k=k)
            opt, _ = brute_force_prune(p)
            r = solve_exact(p, diagonal="logdet", perspective=10)
            check_contract(p, r, opt)
            assert r.info["root_bound"] <= opt * (1 + 1e-9) + 1e-12 * p.norm
            off = solve_exact(p, diagonal="logdet", perspective=0)
            # the perspective bound is at least the separable one at the root
            assert r.info["root_bound"] >= off.info["root_bound"] * (1 - 1e-9)


def test_waterfill_sums_to_the_cap():
    z = np.zeros(5)
    waterfill(np.array([5.0, 1.0, 1.0, 0.5, 0.0]), 2, z)
    assert abs(z.sum() - 2.0) < 1e-12 and z[0] == 1.0 and z[4] == 0.0
    assert np.all((z >= 0) & (z <= 1))
    waterfill(np.array([1.0, 0.0, 2.0]), 3, z[:3])
    assert z[:3].tolist() == [1.0, 0.0, 1.0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 12), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1))
def test_logdet_diagonal_is_certified(n, kind, seed):
    rng = np.random.default_rng(seed)
    H = random_hessian(rng, n, kind)
    alive = np.diag(H) > 0
    d = diagonal_split(H, rng.standard_normal(n), alive, n // 2, "logdet")
    assert np.all(d >= 0) and np.all(d[~alive] == 0)
    assert np.linalg.eigvalsh(H - np.diag(d))[0] >= -1e-12 * max(1.0, np.abs(H).max())
    raw = logdet_diagonal(H[np.ix_(alive, alive)]) if alive.any() else None
    if raw is not None:  # the certified split is the raw one, shrunk at most slightly
        jac = diagonal_split(H, np.ones(n), alive, n // 2, "jacobi")
        assert np.sum(np.log(d[alive] + 1e-300)) >= np.sum(np.log(jac[alive] + 1e-300)) - 2e-4 * n


@pytest.mark.parametrize("kind", KINDS)
def test_auto_restart_matches_enumeration(kind, monkeypatch):
    """``diagonal="auto"`` switching to the perspective phase after one node (unboxed, boxed,
    N:M), and the node limit counted over both phases."""
    from solvers.prune import exact

    monkeypatch.setattr(exact, "AUTO_SWITCH_NODES", 1)
    rng = np.random.default_rng(31 + KINDS.index(kind))
    for t in range(10):
        p = random_prune_case(rng, kind, t)
        opt, _ = brute_force_prune(p)
        r = solve_exact(p, incumbents=False)
        check_contract(p, r, opt)
        assert r.objective <= opt + 1e-7 * max(p.norm, 1e-300)
        if len(r.info["phases"]) == 2:
            assert r.info["phases"][1]["diagonal"] == "logdet"
        boxed = PruneProblem(p.H, p.w0, k=max(1, p.n // 3), box_factor=1.0)
        check_contract(boxed, solve_exact(boxed, incumbents=False), brute_force_boxed(boxed)[0])
        lim = solve_exact(p, incumbents=False, node_limit=3)
        check_contract(p, lim, opt)
        assert lim.nodes <= 3


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 7), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), method=st.sampled_from(["jacobi", "logdet"]))
def test_perspective_node_bound_property(n, kind, seed, scale, method):
    rng = np.random.default_rng(seed)
    H = random_hessian(rng, n, kind)
    w0 = rng.standard_normal(n) * scale
    k = int(rng.integers(0, n + 1))
    d = diagonal_split(H, w0, np.diag(H) > 0, n - k, method)
    if np.all(d[np.diag(H) > 0] > 0):
        _check_nodes(rng, H, w0, k, n, d, trials=3, iters=int(rng.integers(1, 12)))
