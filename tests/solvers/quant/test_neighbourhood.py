"""Large-neighbourhood search: never worse, never below the optimum, feeds the exact search."""

from __future__ import annotations

import numpy as np
import pytest
from problem_instances import KINDS, brute_force_quant, random_quant_problem

from solvers import Status
from solvers.quant.exact import solve_exact
from solvers.quant.incumbents import objective, rtn
from solvers.quant.neighbourhood import improve


@pytest.mark.parametrize("kind", KINDS)
def test_improve_small_against_brute_force(kind):
    rng = np.random.default_rng(50 + KINDS.index(kind))
    for trial in range(6):
        p = random_quant_problem(rng, 8, 2, kind, outside=trial % 2 == 0)
        c = p.w0 / p.scale
        z0 = rtn(c, p.zmin, p.zmax)
        z, st = improve(p.H, c, p.zmin, p.zmax, z0, time_limit=0.03, window=3, max_window=5,
                        seed=trial, restarts=trial % 2 == 1, patience=4)
        opt, _ = brute_force_quant(p)
        assert np.all((z >= p.zmin) & (z <= p.zmax))
        assert st["end"] == objective(p.H, c, z) <= st["start"] == objective(p.H, c, z0)
        assert p.scale**2 * st["end"] >= opt * (1 - 1e-9) - 1e-15 * p.norm


def test_improves_a_bad_start_and_feeds_the_search():
    rng = np.random.default_rng(8)
    p = random_quant_problem(rng, 60, 4, "corr")
    c = p.w0 / p.scale
    z0 = np.zeros(60, dtype=np.int64)
    z, st = improve(p.H, c, p.zmin, p.zmax, z0, time_limit=600.0, max_windows=20, seed=1)
    assert st["windows"] == 20  # the window budget, not the clock, ended it
    assert st["end"] < st["start"] and st["improvements"] > 0
    r = solve_exact(p, time_limit=1.5, neighbourhood=True)
    assert r.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    assert r.lower_bound <= r.objective
    assert r.objective == p.error(r.weights)
    if r.status is Status.TIME_LIMIT:
        assert "lns" in r.info
