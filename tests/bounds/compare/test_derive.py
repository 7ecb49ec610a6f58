"""The whole-channel derivation: stored rows mapped to the arrays of solvers.whole_channel."""

from __future__ import annotations

import numpy as np
import pytest

from bounds.compare.derive import whole_rows
from bounds.compare.plan import make_plan
from bounds.compare.settings import CompareConfig
from solvers.problem import quadratic_error
from solvers.whole_channel import budget_bound


class _Store:
    """Just what the derivation reads of a results store."""

    def __init__(self, rows):
        self._rows = rows

    def rows(self, run_id, *, solutions=False, layer=None):
        return [r for r in self._rows if r["layer"] == layer]


def _row(scope, kind, method, comp, chunk, c, *, lb=None, weights=None, status="optimal"):
    return {"layer": "toy", "scope": scope, "kind": kind, "method": method, "compression": comp,
            "chunk": chunk, "channel": c, "lower_bound": lb, "weights": weights,
            "status": status, "task_key": f"{scope}-{kind}-{method}-{comp}-{chunk}-{c}"}


@pytest.fixture
def run(toy):
    cfg = CompareConfig(model="toy", bits=(4,), opt_dim=4, channels=1, max_chunks=None,
                        quant_methods=("exact", "rtn"), prune_methods=("exact",)).resolved()
    return make_plan(cfg, {"toy": toy})


def _by(rows, method, kind="quant"):
    return {r["compression"]: r for r in rows if r["method"] == method and r["kind"] == kind}


def test_stitched_errors_and_the_block_sum(run):
    (pl,) = run.layers
    c = pl.channels[0]
    w0 = pl.problem.W0[c]
    rng = np.random.default_rng(0)
    w = w0 + 0.01 * rng.standard_normal(w0.shape)
    rows = [_row("chunk", "quant", "rtn", "4bit", i, c, weights=list(w[a:b]))
            for i, (a, b) in enumerate(pl.chunks)]
    rows += [_row("block", "quant", "exact", "4bit", i, c, lb=1e-6 * (i + 1))
             for i in range(len(pl.chunks))]
    out = whole_rows(pl, run, _Store(rows), "run0")
    stitched = _by(out, "stitched rtn")["4bit"]
    H = pl.problem.hessian(c)
    assert stitched["objective"] == quadratic_error(H, w0, w)
    assert stitched["weights"] == list(w) and stitched["lower_bound"] is None
    bound = _by(out, "block-split bound")["4bit"]
    assert bound["lower_bound"] == pytest.approx(6e-6, rel=1e-15)
    assert bound["objective"] == stitched["objective"]
    assert bound["info_json"]["block_bounds"] == [1e-6, 2e-6, 3e-6]
    assert bound["info_json"]["method"] == "exact"
    assert bound["problem_hash"] == pl.channel_hashes[c] == stitched["problem_hash"]
    # No pruning row is stored: its bound falls back on L_i(k ≥ 1) = 0 and allocates one
    # weight per block (a valid, empty bound), and there is nothing to stitch.
    prune = [r for r in out if r["kind"] == "prune"]
    assert [r["method"] for r in prune] == ["block-split bound"]
    assert prune[0]["lower_bound"] == 0.0


def test_bound_clamped_to_the_best_stitched_objective_and_missing_rows(run):
    (pl,) = run.layers
    c = pl.channels[0]
    w0 = pl.problem.W0[c]
    rows = [_row("chunk", "quant", "rtn", "4bit", i, c, weights=list(w0[a:b] * 0.9))
            for i, (a, b) in enumerate(pl.chunks)]
    big = [_row("block", "quant", "exact", "4bit", i, c, lb=1e6) for i in range(3)]
    bound = _by(whole_rows(pl, run, _Store(rows + big), "r"), "block-split bound")["4bit"]
    assert bound["lower_bound"] == bound["objective"] < 3e6
    assert bound["info_json"]["clamped_from"] == pytest.approx(3e6, rel=1e-14)
    # A block without a bound: no whole-channel bound at all (never a partial sum).
    out = whole_rows(pl, run, _Store(rows + big[:2]), "r")
    assert "4bit" not in _by(out, "block-split bound")
    # A chunk without a solution: no stitched row for that method.
    out = whole_rows(pl, run, _Store(rows[:2] + big), "r")
    assert not _by(out, "stitched rtn")


def test_pruning_budget_rows_map_to_the_budget_tables(run):
    (pl,) = run.layers
    c = pl.channels[0]
    w0 = pl.problem.W0[c]
    lbs = {(i, k): 0.01 * (3 - k) * (i + 1) for i in range(3) for k in (1, 2, 3)}
    rows = [_row("block", "prune", "exact", f"k={k}", i, c, lb=v) for (i, k), v in lbs.items()]
    rows.append(_row("block", "prune", "exact", "k=2", 1, c, lb=None, status="error"))
    rows = [r for r in rows if not (r["chunk"] == 1 and r["compression"] == "k=2"
                                    and r["lower_bound"] is not None)]
    bound = _by(whole_rows(pl, run, _Store(rows), "r"), "block-split bound", "prune")["4bit"]
    split = pl.splits[c]
    solved = [{k: lbs[(i, k)] for k in (1, 2, 3) if (i, k) != (1, 2)} for i in range(3)]
    want, info = budget_bound(split, w0, solved, pl.budget(4))
    assert bound["lower_bound"] == want and bound["objective"] is None
    assert bound["info_json"]["allocation"] == info["allocation"]
    assert bound["info_json"]["budget"] == pl.budget(4) == 3
