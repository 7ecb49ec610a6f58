"""Batched exact pruning (rows sharing ``H``) against single solves and enumeration."""

from __future__ import annotations

import numpy as np
import pytest
from problem_instances import KINDS, brute_force_prune, random_hessian

import solvers.prune.batch as batch
from solvers.problem import PruneProblem
from solvers.prune.batch import SharedHessian, solve_exact_many
from solvers.prune.exact import solve_exact
from solvers.prune.incumbents import obs_mask, sparsegpt_mask
from solvers.result import Status

from .prune_reference import brute_force_boxed, check_contract

OK = (Status.OPTIMAL, Status.GAP_LIMIT)  # GAP_LIMIT only with the ill-conditioning message


def _family(rng, n, kind, rows, **budget):
    H = random_hessian(rng, n, kind)
    return [PruneProblem(H, rng.standard_normal(n), **budget) for _ in range(rows)]


def _agree(single, many, p):
    """Same meaning: same status, objectives equal to the optimality tolerance."""
    assert many.status == single.status, (many.status, single.status, many.message)
    tol = 1e-7 * max(p.norm, 1e-300)
    if single.status is Status.OPTIMAL:
        assert abs(many.objective - single.objective) <= tol + 1e-6 * single.objective


@pytest.mark.parametrize("kind", KINDS)
def test_batched_matches_enumeration_and_single_solves(kind):
    rng = np.random.default_rng(10 + KINDS.index(kind))
    for _ in range(6):
        n = int(rng.integers(2, 11))
        k = int(rng.integers(0, n + 1))
        ps = _family(rng, n, kind, 5, k=k)
        many = solve_exact_many(ps)
        for p, r in zip(ps, many, strict=True):
            opt, _ = brute_force_prune(p)
            check_contract(p, r, opt)
            assert r.status in OK
            assert r.objective <= opt + 1e-7 * max(p.norm, 1e-300)
            _agree(solve_exact(p), r, p)


@pytest.mark.parametrize("kind", ["well", "corr", "ill"])
def test_batched_boxed_matches_enumeration(kind):
    rng = np.random.default_rng(20 + len(kind))
    for n, k in ((6, 2), (8, 3), (9, 5)):
        ps = _family(rng, n, kind, 4, k=k, box_factor=0.6)
        for p, r in zip(ps, solve_exact_many(ps), strict=True):
            opt, _ = brute_force_boxed(p)
            check_contract(p, r, opt, rtol=1e-6)
            _agree(solve_exact(p), r, p)


@pytest.mark.parametrize("nm", [(2, 4), (1, 3)])
def test_batched_nm_matches_enumeration(nm):
    rng = np.random.default_rng(3 * nm[0] + nm[1])
    ps = _family(rng, 3 * nm[1], "corr", 4, nm=nm)
    for p, r in zip(ps, solve_exact_many(ps), strict=True):
        opt, _ = brute_force_prune(p)
        check_contract(p, r, opt)
        _agree(solve_exact(p), r, p)


def test_n32_families_agree_with_single_solves():
    """Real-sized rows (n = 32, boxed, the paper's densities), a node limit for determinism:
    same statuses; a proved row's objective equal; every bound below the other's optimum."""
    rng = np.random.default_rng(5)
    X = np.cumsum(rng.standard_normal((200, 32)), axis=1)  # correlated, like pixels
    H = X.T @ X
    W = rng.standard_normal((12, 32))
    for k in (4, 8, 16):
        ps = [PruneProblem(H, w, k=k, box_factor=2.0) for w in W]
        many = solve_exact_many(ps, node_limit=200_000)
        for p, r in zip(ps, many, strict=True):
            s = solve_exact(p, node_limit=200_000)
            check_contract(p, r)
            _agree(s, r, p)
            assert r.lower_bound <= s.objective * (1 + 1e-9) + 1e-12 * p.norm
            assert s.lower_bound <= r.objective * (1 + 1e-9) + 1e-12 * p.norm
            assert r.info["shared_rows"] == len(ps)


def test_mixed_problems_keep_their_order_and_families():
    rng = np.random.default_rng(8)
    H1, H2 = random_hessian(rng, 6, "well"), random_hessian(rng, 6, "corr")
    ps = [PruneProblem(H, rng.standard_normal(6), k=k)
          for H, k in ((H1, 2), (H2, 2), (H1, 2), (H1, 3), (H2, 2))]
    many = solve_exact_many(ps)
    for p, r in zip(ps, many, strict=True):
        _agree(solve_exact(p), r, p)
    assert many[0].info["shared_rows"] == 2 and many[1].info["shared_rows"] == 2
    assert "shared_rows" not in many[3].info  # a family of one is solved alone


def test_shared_masks_are_the_heuristics_of_each_row():
    rng = np.random.default_rng(9)
    ps = _family(rng, 10, "corr", 6, k=4)
    sh = SharedHessian(ps[0].H, np.stack([p.w0 for p in ps]), k=4)
    for p in ps:
        m = sh.masks(p)
        assert np.array_equal(m["obs"], obs_mask(p, sh.alive))
        assert np.array_equal(m["sparsegpt"], sparsegpt_mask(p, sh.alive))
    other = PruneProblem(ps[0].H, ps[0].w0, k=3)
    assert sh.masks(other) is None  # another budget: computed by the solve itself


def test_shared_split_is_the_split_of_h():
    rng = np.random.default_rng(4)
    p = _family(rng, 8, "ill", 1, k=3)[0]
    sh = SharedHessian(p.H)
    from solvers.prune.bounds import diagonal_split

    for method in batch.H_ONLY_SPLITS:
        d = sh.split(p.H, p.w0, sh.alive, 5, method)
        assert np.array_equal(d, diagonal_split(p.H, p.w0, sh.alive, 5, method))
        d[:] = -1.0  # the caller's copy: the memo is untouched
        assert np.all(sh.split(p.H, p.w0, sh.alive, 5, method) >= 0.0)


def test_large_families_start_on_the_logdet_split():
    rng = np.random.default_rng(6)
    X = np.cumsum(rng.standard_normal((200, 16)), axis=1)
    H = X.T @ X
    for rows, first in ((batch.LOGDET_MIN_ROWS, "logdet"), (2, "jacobi")):
        ps = [PruneProblem(H, w, k=5) for w in rng.standard_normal((rows, 16))]
        assert SharedHessian(H, np.stack([p.w0 for p in ps]), k=5).auto_first[0] == first
        for r in solve_exact_many(ps):
            assert not r.info["phases"] or r.info["phases"][0]["diagonal"] == first


def test_family_stops_screening_a_box_active_on_most_rows():
    """A family whose box binds on most rows: after :data:`~solvers.prune.batch.
    SCREEN_PROBATION` screens with fewer than half answered, the rest skip the screen; every
    row still the boxed optimum."""
    rng = np.random.default_rng(5)
    H = random_hessian(rng, 7, KINDS[0])
    ps = [PruneProblem(H, rng.standard_normal(7), k=3, box_factor=0.2) for _ in range(14)]
    rs = solve_exact_many(ps)
    screens = [r.info["box_screen"] for r in rs]
    assert screens.count("skipped") > 0, screens
    assert "skipped" not in screens[:batch.SCREEN_PROBATION]
    for p, r in zip(ps, rs, strict=True):
        opt, _ = brute_force_boxed(p)
        check_contract(p, r, opt, rtol=1e-6)
        assert r.objective <= opt + 1e-6 * p.norm
