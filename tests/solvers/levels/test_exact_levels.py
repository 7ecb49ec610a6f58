"""The exact level solver against brute force over every level assignment, and its contract."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from problem_instances import KINDS, random_hessian, random_quant_problem
from time_budget import ThreadClock

from solvers import LevelProblem, Status, solve
from solvers.formats import build_levels
from solvers.levels.exact import solve_levels
from solvers.quant.exact import solve_exact

PRESETS = ("int3", "int2-asym", "int3-asym-g4", "fp4-e2m1-g4", "fp4-e2m1-nv-g4", "nf4-g4",
           "fp6-e3m2-g4", "fp8-e4m3")


def brute_force_levels(p: LevelProblem, *, max_points: int = 300_000) -> float:
    """Least error over every assignment of levels that the nonzero limit allows."""
    T = p.table
    L = T.shape[1]
    assert L ** p.n <= max_points, "keep brute force small"
    ix = np.array(list(itertools.product(range(L), repeat=p.n)), dtype=np.int64)
    W = T[np.arange(p.n)[None, :], ix]
    ok = np.ones(len(W), dtype=bool)
    if p.k is not None:
        ok &= np.count_nonzero(W, axis=1) <= p.k
    if p.nm is not None:
        N, M = p.nm
        ok &= np.all(np.count_nonzero(W.reshape(len(W), -1, M), axis=2) <= N, axis=1)
    D = W[ok] - p.w0
    errs = np.einsum("ij,jk,ik->i", D, p.H, D)
    i = int(np.argmin(errs))
    return min(max(float(errs[i]), 0.0), p.error(W[ok][i]))


def check(p: LevelProblem, r) -> None:
    opt = brute_force_levels(p)
    tol = 1e-9 * opt + 1e-13 * max(p.norm, float(np.abs(p.table).max() ** 2 * np.trace(p.H)))
    assert r.lower_bound is not None and r.lower_bound <= opt, (r.lower_bound, opt)
    assert r.status in (Status.OPTIMAL, Status.GAP_LIMIT), r.status
    if r.status is Status.OPTIMAL:
        assert r.objective <= opt + tol, (r.objective, opt)
    else:  # only the floating-point margin remains
        assert r.objective - r.lower_bound <= 1e-4 * r.objective + 1e-12 * p.norm
    p.check_weights(r.weights)  # every weight a level, the nonzero limit held
    assert r.objective == p.error(r.weights)
    np.testing.assert_array_equal(p.weights(r.codes), r.weights)


def _sparsity(rng, n, case):
    if case == "k":
        return {"k": int(rng.integers(0, n + 1))}
    if case == "nm":
        return {"nm": (1, 2) if n % 2 == 0 else (1, 1)}
    return {}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", PRESETS)
@pytest.mark.parametrize("sparsity", ["none", "k", "nm"])
def test_presets_match_brute_force(kind, fmt, sparsity):
    rng = np.random.default_rng(zlib.crc32(f"{kind} {fmt} {sparsity}".encode()))
    f_levels = 2 ** 3 if fmt.startswith(("int3", "int2")) else 16
    n = 4 if fmt.startswith(("int2", "int3")) else (3 if f_levels <= 16 else 2)
    if fmt.startswith("fp6") or fmt.startswith("fp8"):
        n = 2 if fmt.startswith("fp6") else 1
    for trial in range(2):
        W = rng.standard_normal((2, 4)) * 0.1
        H = random_hessian(rng, n, kind)
        lv = build_levels(W, fmt, scale_method=("mse", "minmax")[trial])
        levels = lv.levels(0)[:n] if lv.levels(0).ndim == 2 else lv.levels(0)
        w0 = W[1, :n] * (3.0 if trial else 1.0)  # trial 1: w0 partly outside the levels' range
        p = LevelProblem(H, w0, levels=levels, **_sparsity(rng, n, sparsity))
        check(p, solve_levels(p))


@pytest.mark.parametrize("split", ["auto", True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_per_input_random_levels(kind, split):
    rng = np.random.default_rng(KINDS.index(kind))
    for trial in range(12):
        n = int(rng.integers(2, 7))
        L = int(rng.integers(2, 5))
        pool = np.r_[np.linspace(-2, -0.1, 10), np.linspace(0.1, 2, 10)]
        rows = [np.sort(np.r_[rng.choice(pool, L - 1, replace=False), 0.0]) for _ in range(n)]
        table = np.array(rows)
        shared = trial % 3 == 0
        w0 = rng.standard_normal(n) * (3.0 if trial % 2 else 1.0)
        kw = {} if trial % 4 == 0 else {"k": int(rng.integers(0, n + 1))}
        p = LevelProblem(random_hessian(rng, n, kind), w0, levels=table[0] if shared else table,
                         **kw)
        order = ("vblast", "natural", "saliency")[trial % 3]
        # split "auto": the support-first search under a limit; True / False: the level search
        check(p, solve_levels(p, ordering=order, split=split, support_first=split == "auto"))


def test_levels_without_zero_and_dead_inputs():
    rng = np.random.default_rng(3)
    H = random_hessian(rng, 6, "well")
    H[2, :] = H[:, 2] = 0.0
    p = LevelProblem(H, rng.standard_normal(6), levels=[-1.5, -0.25, 0.75, 2.0])
    r = solve_levels(p)
    check(p, r)
    assert r.info["dead_inputs"] == 1
    r0 = solve_levels(LevelProblem(np.zeros((3, 3)), np.ones(3), levels=[-1.0, 0.0, 1.0], k=1))
    assert r0.status is Status.OPTIMAL and r0.objective == 0.0 and np.all(r0.weights == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_symmetric_int_agrees_with_integer_solver(kind):
    rng = np.random.default_rng(11 + KINDS.index(kind))
    for trial in range(6):
        q = random_quant_problem(rng, 10, 3, kind, outside=trial % 2 == 1)
        a, b = solve_exact(q), solve_levels(LevelProblem.from_quant(q))
        tol = 1e-9 * a.objective + 1e-12 * q.norm
        assert abs(a.objective - b.objective) <= tol + max(a.gap or 0, b.gap or 0) * a.objective
        assert b.lower_bound <= a.objective + tol and a.lower_bound <= b.objective + tol


def test_registry_initial_weights_and_limits():
    rng = np.random.default_rng(5)
    q = random_quant_problem(rng, 24, 4, "corr")
    p = LevelProblem.from_quant(q, k=8)
    r = solve(p, "exact", node_limit=20)
    assert r.status is Status.NODE_LIMIT and r.lower_bound <= r.objective
    p.check_weights(r.weights)
    r2 = solve(p, "exact", node_limit=2000, initial_weights=r.weights, support_first=False)
    assert r2.objective <= r.objective
    with ThreadClock() as clock:
        r3 = solve_levels(p, time_limit=0.3)
    assert r3.status in (Status.TIME_LIMIT, Status.OPTIMAL) and clock.seconds < 0.3 + 2.0
    with pytest.raises(Exception, match="ordering"):
        solve_levels(p, ordering="bogus")
    with pytest.raises(Exception, match="split"):
        solve_levels(p, split="sdp")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5), L=st.integers(1, 5),
       kind=st.sampled_from(KINDS), limit=st.sampled_from(["none", "k", "k+nodes", "nodes"]))
def test_bound_never_above_brute_force(seed, n, L, kind, limit):
    rng = np.random.default_rng(seed)
    levels = np.sort(rng.choice(np.linspace(-3, 3, 25), size=L, replace=False))
    kw = {}
    if limit.startswith("k"):
        levels = np.unique(np.r_[levels, 0.0])
        kw["k"] = int(rng.integers(0, n + 1))
    p = LevelProblem(random_hessian(rng, n, kind), rng.standard_normal(n) * 2, levels=levels,
                     **kw)
    r = solve_levels(p, node_limit=int(rng.integers(1, 20)) if "nodes" in limit else None,
                     split=bool(seed % 2), support_first=bool(seed // 2 % 2))
    opt = brute_force_levels(p)
    assert r.lower_bound <= opt
    assert r.objective >= opt - 1e-9 * opt - 1e-12 * p.norm
    p.check_weights(r.weights)


@pytest.mark.parametrize("kind", KINDS)
def test_second_search_in_box_order(kind, monkeypatch):
    """The box-ordered search that ``ordering="auto"`` starts beside a slow first one (here at
    once), sharing incumbents: still exact against brute force."""
    import solvers.levels.exact as ex

    monkeypatch.setattr(ex, "SECOND_AFTER_NODES", 0)
    rng = np.random.default_rng(40 + KINDS.index(kind))
    for _ in range(6):
        n = int(rng.integers(2, 7))
        levels = np.sort(rng.choice(np.linspace(-2, 2, 21), size=4, replace=False))
        p = LevelProblem(random_hessian(rng, n, kind), 2 * rng.standard_normal(n), levels=levels)
        r = solve_levels(p, slice_nodes=1)
        check(p, r)
        assert r.info.get("second_ordering") == "box"


@pytest.mark.parametrize("upgrade", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_conditional_tail_matches_brute_force(kind, upgrade, monkeypatch):
    """Under a nonzero limit (or N:M) with the conditional tail — Jacobi diagonals, or the
    largest-volume ones from the first slice on — still exact against brute force, n <= 8."""
    import solvers.levels.exact as ex

    if upgrade:
        monkeypatch.setattr(ex, "UPGRADE_NODES", 0)
    rng = np.random.default_rng(70 + KINDS.index(kind) + 10 * upgrade)
    for trial in range(8):
        n = int(rng.integers(4, 9))
        shared = np.array([-0.2, -0.1, 0.0, 0.1])
        per_input = np.c_[-0.1 * rng.integers(1, 3, n), np.zeros(n), 0.1 * rng.integers(1, 4, n)]
        levels = shared if trial % 2 else per_input
        w0 = 0.1 * rng.standard_normal(n) * (3.0 if trial % 3 == 0 else 1.0)
        kw = {"nm": (1, 2)} if trial == 5 and n % 2 == 0 else {"k": int(rng.integers(0, n))}
        p = LevelProblem(random_hessian(rng, n, kind), w0, levels=levels, **kw)
        r = solve_levels(p, split="cond", slice_nodes=int(rng.integers(1, 50)),
                         support_first=False)
        check(p, r)
        assert r.info["split"] == "cond"


def _small_sparse(rng, kind, n=7):
    """``(n, K, problem, LevelData)``: n inputs on a 5-level grid with a random limit K."""
    from solvers.levels.exact import LevelData

    K = int(rng.integers(1, 5))
    p = LevelProblem(random_hessian(rng, n, kind), 0.3 * rng.standard_normal(n),
                     levels=[-0.4, -0.2, 0.0, 0.2, 0.4], k=K)
    return n, K, p, LevelData(p, np.arange(n))


@pytest.mark.parametrize("kind", ["well", "ill", "corr"])
def test_conditional_tail_bound_below_every_completion(kind):
    """The kernel's certified tail (``t − 2r√t``, centres stepped row by row as the search
    steps them) plus the fixed rows' cost is at most the best completion's error (brute force
    over the free rows' levels within the budget), at every depth of random paths."""
    from solvers.levels import kernels as kn
    from solvers.levels.exact import _conditional_tail, _Search
    from solvers.prune.bounds import diagonal_split

    rng = np.random.default_rng(90 + KINDS.index(kind))
    for trial in range(6):
        n, K, p, d = _small_sparse(rng, kind)
        order = rng.permutation(n)
        D = np.zeros(n) if trial % 2 else diagonal_split(p.H, p.w0, np.ones(n, dtype=bool), K,
                                                          "logdet")
        sr = _Search(p.H, p.w0, d, order, D, np.full(n, 2), cond=True)
        assert sr.cond[0].shape[0] == n + 1
        for diag in ("jacobi", "logdet"):
            dl, Gm, cst, slope = _conditional_tail(sr.Hs, sr.R, sr.certifier.residual_norm,
                                                   1e300, diag)
            R, c, T = sr.R, sr.cp, sr.Tp
            Cm = np.zeros((n + 1, n))
            wv = np.zeros(n)
            ext = np.zeros(n + 1)
            used = 0
            for k in range(n - 1, 0, -1):
                ctr = c[k] + Cm[k + 1, k]  # the row's own centre (the search uses the SE one)
                wv[k] = T[k, int(rng.integers(T.shape[1]))] if used < K else 0.0
                used += wv[k] != 0.0
                kn._centre_step(Cm, Gm, k, wv[k] - ctr)
                t = kn.cond_tail(T, sr.zp, c, sr.Dp, dl, Cm, k, K - used, ext) * cst[1]
                r = (kn.parent_residual(R, c, Cm, wv, ctr, k, cst[2])
                     + abs(wv[k] - ctr) * slope[k])
                safe = t - 2 * r * np.sqrt(t) if t > r * r else 0.0
                dv = wv - c
                fixed = sum((R[i, i:] @ dv[i:]) ** 2 + sr.Dp[i] * dv[i] ** 2
                            for i in range(k, n))
                best = np.inf
                for rest in itertools.product(range(T.shape[1]), repeat=k):
                    x = wv.copy()
                    x[:k] = T[np.arange(k), rest]
                    if np.count_nonzero(x) <= K:
                        e = x - c
                        best = min(best, e @ sr.Hs @ e + sr.Dp @ (e * e))
                assert fixed + safe <= best * (1 + 1e-9) + 1e-12, (k, fixed, safe, best)


def test_node_limit_is_deterministic(monkeypatch):
    """With a node limit the slices, the tail's upgrade and the support step count nodes:
    the same result every time, whatever the clock."""
    import solvers.levels.exact as ex

    monkeypatch.setattr(ex, "UPGRADE_NODES", 3000)
    rng = np.random.default_rng(8)
    q = random_quant_problem(rng, 20, 4, "corr")
    p = LevelProblem.from_quant(q, k=6)
    runs = [solve_levels(p, node_limit=9000, slice_nodes=1000, support_first=sf)
            for _ in range(2) for sf in (False, True)]
    assert runs[1].info["method"] == "support-first"
    for i, r in enumerate(runs[2:]):
        r0 = runs[i % 2]
        assert (r.status, r.nodes, r.objective, r.lower_bound) == \
            (r0.status, r0.nodes, r0.objective, r0.lower_bound)
        np.testing.assert_array_equal(r.weights, r0.weights)


@pytest.mark.parametrize("kind", KINDS)
def test_requantize_and_support_search(kind):
    """The exact levels on a given support (dropped weights compensated) match brute force
    over that support; the swap search over supports never worsens its start, keeps the
    limit and is deterministic."""
    from solvers.levels.exact import _requantize, _support_search

    rng = np.random.default_rng(120 + KINDS.index(kind))
    for _ in range(4):
        n, K, p, d = _small_sparse(rng, kind)
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, K, replace=False)] = True
        ix, err = _requantize(p.H, p.w0, d, mask)
        assert np.all(d.values(ix)[~mask] == 0.0)
        best = min(p.error(np.where(mask, p.table[0][list(c)], 0.0)) for c in
                   itertools.product(range(5), repeat=n) if not np.any(np.array(c)[~mask] != 2))
        assert err <= best * (1 + 1e-9) + 1e-12 and err == pytest.approx(p.error(d.values(ix)))
        start = d.zix.copy()  # a random support of K, its weights at the largest level
        start[rng.choice(n, K, replace=False)] = 4
        a = _support_search(p.H, p.w0, d, start, 30)
        b = _support_search(p.H, p.w0, d, start, 30)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]
        p.check_weights(d.values(a[0]))
        assert a[1] <= p.error(d.values(start)) * (1 + 1e-12)
        assert a[1] >= brute_force_levels(p) * (1 - 1e-9)


@pytest.mark.parametrize("split", ["jacobi", "logdet"])
@pytest.mark.parametrize("kind", KINDS)
def test_support_first_matches_brute_force(kind, split, monkeypatch):
    """The support-first search (a plain nonzero limit): exact against brute force for n <= 8,
    shared and per-input levels, ``w0`` partly outside the levels' range, every limit
    ``0 <= k <= n``, with the Jacobi split or the largest-volume one (the default) from the
    root on; with a node limit the bound stays below the optimum. A live ``H`` that is
    not positive definite (``rankdef``) falls back to the level search."""
    import solvers.levels.exact as ex

    monkeypatch.setattr(ex, "SUPPORT_SPLIT", split)
    rng = np.random.default_rng(150 + KINDS.index(kind) + 10 * (split == "logdet"))
    used = set()
    for trial in range(10):
        n = int(rng.integers(3, 9))
        L = 4 if n <= 6 else 3
        pool = np.r_[np.linspace(-1.5, -0.1, 8), np.linspace(0.1, 1.5, 8)]
        table = np.array([np.sort(np.r_[rng.choice(pool, L - 1, replace=False), 0.0])
                          for _ in range(n)])
        w0 = rng.standard_normal(n) * (2.5 if trial % 3 == 0 else 0.6)
        k = int(rng.integers(0, n + 1)) if trial % 4 else int(rng.integers(1, max(2, n // 3)))
        p = LevelProblem(random_hessian(rng, n, kind), w0,
                         levels=table[0] if trial % 2 else table, k=k)
        r = solve_levels(p, slice_nodes=int(rng.integers(1, 40)))
        check(p, r)
        used.add(r.info.get("method"))
        if r.info.get("method") == "support-first":
            assert r.info["split"] in (split, "jacobi")
        rl = solve_levels(p, node_limit=int(rng.integers(1, 6)))
        assert rl.lower_bound <= brute_force_levels(p) and rl.lower_bound <= rl.objective
        p.check_weights(rl.weights)
    assert ("support-first" in used) == (kind != "rankdef")


@pytest.mark.parametrize("split", ["jacobi", "logdet"])
def test_support_kernel_bound_below_every_leaf(split, monkeypatch):
    """The support tree's node bound (saliency and levelled split: Jacobi, or the root's
    largest-volume split) is at most the best leaf below the node (brute force over the
    supports and levels), along random paths."""
    import solvers.levels.exact as ex
    from solvers.levels import kernels as sp
    from solvers.prune.bounds import margin_for

    monkeypatch.setattr(ex, "SUPPORT_SPLIT", split)

    rng = np.random.default_rng(7)
    for kind in ("well", "ill", "corr", "diag"):
        for _ in range(4):
            n, K = 6, int(rng.integers(1, 4))
            H = random_hessian(rng, n, kind)
            w0 = 0.4 * rng.standard_normal(n)
            T = np.tile([-0.4, -0.2, 0.0, 0.2, 0.4], (n, 1))
            dvec = ex._support_split(H, margin_for(H, np.ones(n, dtype=bool))[1])[0]
            G, w, e = np.linalg.inv(H), w0.copy(), 0.0
            work = np.empty((3, n))
            stt = np.zeros(n, dtype=np.int64)
            for j in rng.permutation(n)[:4]:
                npr = int(np.sum(stt == sp.PRUNED))
                b = sp.support_bound(G, w, e, stt, (n - K) - npr, T, dvec, work[0], work[1])
                best = np.inf
                for c in itertools.product(range(5), repeat=n):
                    x = T[0][list(c)]
                    # the node's subtree: the pruned at zero, at most K − |kept| nonzero
                    # among the undecided (a kept input may still take the zero level)
                    if (np.all(x[stt == sp.PRUNED] == 0.0) and np.count_nonzero(
                            x[stt == sp.UNDECIDED]) <= K - np.count_nonzero(stt == sp.KEPT)):
                        best = min(best, (x - w0) @ H @ (x - w0))
                assert b <= best * (1 + 1e-9) + 1e-12, (b, best)
                if npr < n - K and rng.random() < 0.6:
                    stt[j] = sp.PRUNED
                    G1, w1 = np.full_like(G, np.nan), np.full_like(w, np.nan)
                    e += sp._obs_child(G, w, G1, w1, j, stt, work[2])
                    G, w = G1, w1
                elif np.sum(stt == sp.KEPT) < K:
                    stt[j] = sp.KEPT
