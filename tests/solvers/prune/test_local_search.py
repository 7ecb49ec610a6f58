"""The incumbents' local searches against enumeration (n <= 10), and the search's polish.

* :func:`~solvers.prune.incumbents.pair_swap_improve` ends in a mask that no exchange of one or
  two kept inputs against as many pruned ones improves (checked by refitting every such
  exchange), never worse than where it started;
* :func:`~solvers.prune.incumbents.find_incumbents` is at least as good as the 1-swap search
  from each heuristic's mask;
* a search that polishes its incumbents (:func:`~solvers.prune.search.run_search` with
  ``polish``; the perspective phase of :func:`~solvers.prune.exact.solve_exact`) still returns
  the enumerated optimum, and its lower bound stays below it when a node limit stops it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from problem_instances import KINDS, brute_force_prune, random_hessian, refit_error

from solvers.problem import ProblemError, PruneProblem
from solvers.prune import exact, search
from solvers.prune.bounds import diagonal_split, margin_for
from solvers.prune.incumbents import (
    find_incumbents,
    kicked_search,
    magnitude_mask,
    pair_swap_improve,
    swap_improve,
)
from solvers.prune.search import run_search

from .prune_reference import check_contract


def _case(rng, kind, n):
    H = random_hessian(rng, n, kind)
    return PruneProblem(H, rng.standard_normal(n), k=int(rng.integers(2, n - 1)))


def _cases(seed, kind, count, lo, hi):
    """``count`` cases ``(p, alive, tol)`` with ``n`` in ``lo … hi − 1``."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        p = _case(rng, kind, int(rng.integers(lo, hi)))
        yield p, np.diag(p.H) > 0, 1e-9 * max(p.norm, 1e-300)


def _exchanges(mask, alive, size):
    """Every mask that swaps ``size`` kept inputs for ``size`` pruned alive ones."""
    K, P = np.flatnonzero(mask), np.flatnonzero(~mask & alive)
    for out in itertools.combinations(K, size):
        for inn in itertools.combinations(P, size):
            m = mask.copy()
            m[list(out)] = False
            m[list(inn)] = True
            yield m


def _regular(H, mask, rtol=1e-8):
    K = np.flatnonzero(mask)
    ev = np.linalg.eigvalsh(H[np.ix_(K, K)])
    return ev[0] > rtol * max(ev[-1], 1e-300)


@pytest.mark.parametrize("kind", KINDS)
def test_pair_swap_ends_in_a_two_exchange_optimum(kind):
    for p, alive, tol in _cases(11, kind, 6, 6, 10):
        start = magnitude_mask(p, alive)
        m = pair_swap_improve(p, start, alive)
        assert m.dtype == bool and m.sum() <= p.k and not np.any(m & ~alive)
        v, _ = refit_error(p.H, p.w0, m)
        assert v <= refit_error(p.H, p.w0, start)[0] + tol
        if kind == "rankdef":  # exchanges into a singular kept block are skipped: no claim
            continue
        for size in (1, 2):
            for other in _exchanges(m, alive, size):
                if _regular(p.H, other):
                    assert refit_error(p.H, p.w0, other)[0] >= v - tol


@pytest.mark.parametrize("kind", KINDS)
def test_kicked_search_is_deterministic_and_no_worse(kind):
    for p, alive, tol in _cases(16, kind, 4, 7, 11):
        start = magnitude_mask(p, alive)
        m = kicked_search(p, start, alive, 6, seed=3)
        assert np.array_equal(m, kicked_search(p, start, alive, 6, seed=3))
        assert m.sum() <= p.k and not np.any(m & ~alive)
        pair, _ = refit_error(p.H, p.w0, pair_swap_improve(p, start, alive))
        assert refit_error(p.H, p.w0, m)[0] <= pair + tol
        # a stop that is already true: no sweep, no kick
        assert np.array_equal(kicked_search(p, start, alive, 6, stop=lambda: True), start & alive)


@pytest.mark.parametrize("kind", KINDS)
def test_incumbents_swap_from_every_heuristic(kind):
    for p, alive, tol in _cases(12, kind, 6, 6, 11):
        cands = find_incumbents(p, alive)
        plain = [c for c in cands if not c.source.startswith("swap")]
        assert {c.source for c in plain} == {"magnitude", "obs", "sparsegpt"}
        for c in plain:
            v, _ = refit_error(p.H, p.w0, swap_improve(p, c.mask, alive))
            assert cands[0].value <= v + tol
        assert [c.value for c in cands] == sorted(c.value for c in cands)


@pytest.mark.parametrize("kind", KINDS)
def test_search_with_polish_stays_exact(kind, monkeypatch):
    """From the worst mask as incumbent, so the search improves and polishes it (with kicks
    from the third node on)."""
    monkeypatch.setattr(search, "POLISH_NODES", 1)
    monkeypatch.setattr(search, "KICK_NODES", 3)
    rng = np.random.default_rng(13)
    calls = []

    for _ in range(5):
        p = _case(rng, kind, int(rng.integers(6, 11)))
        alive = np.diag(p.H) > 0
        opt, _ = brute_force_prune(p)
        worst = max((np.isin(np.arange(p.n), c) for c in itertools.combinations(
            range(p.n), p.k)), key=lambda m: refit_error(p.H, p.w0, m)[0])
        margin, _, _ = margin_for(p.H, alive)
        d = diagonal_split(p.H, p.w0, alive, p.n - p.k, "logdet")

        def polish(mask, stop, kicks, p=p, alive=alive):
            calls.append(stop())
            m = kicked_search(p, mask, alive, kicks, stop=stop)
            return m, refit_error(p.H, p.w0, m)[0]

        tol = 1e-7 * max(p.norm, 1e-300)
        for limit in (2, 5, None):
            out = run_search(p.H, p.w0, N=p.k, M=p.n, alive=alive, d=d, box=0.0, margin=margin,
                             incumbent_mask=worst, incumbent_value=refit_error(
                                 p.H, p.w0, worst)[0], node_limit=limit, perspective=5,
                             polish=polish)
            assert out.lower <= opt + tol and out.upper >= opt - tol
            assert refit_error(p.H, p.w0, out.mask)[0] <= out.upper + tol
            if limit is None:
                assert out.upper <= opt + tol
    assert calls and not any(calls)  # polished, never past a deadline (there is none)


@pytest.mark.parametrize("kind", KINDS)
def test_perspective_phase_polish_against_enumeration(kind, monkeypatch):
    """``diagonal="auto"`` with the cheap phase cut to one node: the polished perspective phase
    returns the enumerated optimum (or, stopped by a node limit, a valid bound); its polish and
    kicks from the first nodes on."""
    monkeypatch.setattr(exact, "AUTO_SWITCH_NODES", 1)
    monkeypatch.setattr(search, "POLISH_NODES", 1)
    monkeypatch.setattr(search, "KICK_NODES", 2)
    rng = np.random.default_rng(14)
    for _ in range(5):
        p = _case(rng, kind, int(rng.integers(6, 11)))
        opt, _ = brute_force_prune(p)
        r = exact.solve_exact(p)
        check_contract(p, r, opt)
        assert r.info["phases"] and len(r.info["phases"]) == 2 or r.nodes <= 1
        assert r.objective <= opt + 1e-7 * max(p.norm, 1e-300)
        check_contract(p, exact.solve_exact(p, node_limit=3), opt)


def test_local_search_option():
    rng = np.random.default_rng(15)
    p = _case(rng, "corr", 10)
    with pytest.raises(ProblemError, match="local_search must be 0, 1 or 2"):
        exact.solve_exact(p, local_search=3)
    opt, _ = brute_force_prune(p)
    for level, swaps in ((0, 0), (1, 1), (2, 4)):
        r = exact.solve_exact(p, local_search=level)
        check_contract(p, r, opt)
        assert r.info["local_search"] == level
        assert sum(s.startswith("swap") for s in r.info["incumbents"]) <= swaps
        if level == 0:
            assert not any(s.startswith("swap") for s in r.info["incumbents"])
