"""The plan of a run: which tasks, with what they share computed once (no solves here)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from bounds.compare.plan import make_plan
from bounds.compare.settings import CompareConfig
from bounds.compare.tasks import array_hash
from bounds.protocols import get_protocol
from solvers.problem import density_to_k


def _plan(toy, **kw):
    cfg = CompareConfig(**{"model": "toy", "bits": (2, 4), "opt_dim": 4, "channels": 2,
                           "max_chunks": None, "quant_methods": ("exact", "rtn"),
                           "prune_methods": ("exact", "magnitude"), **kw}).resolved()
    return make_plan(cfg, {"toy": toy})


def test_plan_resolves_once_and_tasks_follow_it(toy):
    run = _plan(toy, nm=((2, 4),))
    (pl,) = run.layers
    assert run.protocol is get_protocol("exact")
    assert (run.quant_bound, run.prune_bound) == ("exact", "exact")
    assert pl.chunks == [(0, 4), (4, 8), (8, 12)] and pl.whole and len(pl.channels) == 2
    assert pl.problem_hash == array_hash(toy.H, toy.W0)
    assert pl.calibration == "toy-seed0"
    tasks = run.tasks()
    assert len({t.key for t in tasks}) == len(tasks)
    assert {t.settings_hash for t in tasks} == {run.settings_hash}
    scopes = Counter(t.scope for t in tasks)
    # chunk: 3 chunks × 2 channels × (2 bits × (2 quant + 2 prune) + 2:4 × 2 prune)
    assert scopes["chunk"] == 3 * 2 * (2 * 4 + 2)
    # whole: per channel, each bit width's quant and prune, and 2:4
    assert scopes["whole"] == 2 * (2 * 2 + 1)
    # block: per channel and block, 2 quant, budgets k = 1..min(n_i − 1, K) = 1..3, and 2:4
    assert scopes["block"] == 2 * 3 * (2 + 3 + 1)
    for t in tasks:
        if t.scope == "whole":
            assert t.problem_hash == pl.channel_hashes[t.channel]
            assert t.problem_hash == array_hash(toy.H, toy.W0[t.channel])
        if t.scope == "block":
            assert t.validate and t.method == "exact"
        if t.kind == "prune" and t.compression.endswith("bit"):
            n = t.input_stop - t.input_start
            want = pl.budget(t.bits) if t.scope == "whole" else density_to_k(t.bits / 16, n)
            assert t.k == want
    assert pl.budget(4) == 3 * density_to_k(0.25, 4)
    rec = run.layer_records()["toy"]
    assert rec["hash"] == pl.problem_hash and set(rec["splits"]) == {str(c) for c in pl.channels}


def test_paper_protocol_boxes_every_pruning_task(toy):
    run = _plan(toy, protocol="paper", opt_dim=None)
    (pl,) = run.layers
    assert pl.chunks == [(0, 12)]  # opt_dim 32 forced by the protocol, n = 12: one chunk
    assert not pl.splits  # one chunk: the chunk problem is the whole channel
    for t in run.tasks():
        if t.kind == "prune":
            assert t.box == 2.0 * np.max(np.abs(t.w0))
    assert run.settings["protocol_detail"]["unfold"] == "kernel"


def test_partial_chunks_skip_whole_channel_work(toy):
    run = _plan(toy, max_chunks=2, whole_direct=False)
    (pl,) = run.layers
    assert not pl.whole and not pl.splits and not pl.channel_hashes
    assert "whole-channel bound not computed: 2 of 3 chunks" in pl.note
    # chunk problems, and the same at the paper's scale (beside the run's own rule)
    assert {t.scope for t in run.tasks()} == {"chunk", "paper"}
    assert len(pl.chunk_ids) == 2


def test_no_certified_method_no_bound_tasks(toy):
    run = _plan(toy, quant_methods=("rtn",), prune_methods=("magnitude",))
    assert (run.quant_bound, run.prune_bound) == (None, None)
    assert {t.scope for t in run.tasks()} == {"chunk", "paper"}  # paper: RTN only


def test_scale_rules_and_the_papers_scale_beside(toy):
    from bounds.scale_choice import choose_scales
    from solvers.scales import rtn_output_errors

    run = _plan(toy, max_chunks=None, whole_direct=False)
    (pl,) = run.layers
    assert pl.scale_rule == "output-channel" and pl.paper_scales
    for b, s in pl.scales.items():
        mse = choose_scales(toy, b, method="mse", per_channel=True)
        for c in pl.channels:  # output-error scales: never worse than MSE's for RTN
            e = rtn_output_errors(toy.hessian(c), toy.W0[c], np.array([s[c], mse[c]]), b)
            assert e[0] <= e[1] * (1 + 1e-12)
        assert np.all(pl.paper_scales[b] == pl.paper_scales[b][0])  # one per-tensor scale
    paper = [t for t in run.tasks() if t.scope == "paper"]
    assert {t.method for t in paper} == {"exact", "rtn"} and {t.kind for t in paper} == {"quant"}
    assert {t.scale for t in paper} == {float(pl.paper_scales[t.bits][0]) for t in paper}
    (pp,) = _plan(toy, protocol="paper").layers
    assert pp.scale_rule == "mse-tensor" and not pp.paper_scales
