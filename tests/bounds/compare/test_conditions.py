"""Verdicts that state their conditions: the scale rule and scales, the sampled channels and
chunks, the calibration set; the paper's scale beside; the bound over every scale of a range;
the sensitivity line (a tiny run, and the verdict logic on hand-made figures)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bounds.compare import ResultStore, run_compare, tables
from bounds.compare.tables import clopper_pearson, scale_condition, sensitivity
from solvers.problem import grid_limits, quadratic_error
from tests.bounds.compare.conftest import toy_layer

COND = {"scale_rule": "output-channel", "scales": {"0": 0.1}, "channels": [0],
        "channels_total": 4, "chunk_ids": [0], "chunks_total": 1,
        "calibration": {"samples": 8, "seed": 0, "fingerprint": "x"}}


def _fig(best, lb):
    return {"best_error": best, "lower_bound": lb}


def _range(lb, obj, scale=0.05):
    return {"lower_bound": lb, "objective": obj, "ceiling_db": 1.0, "best_db": 2.0,
            "status": "converged", "ratio_range": [0.1, 2.0], "best_scale": scale,
            "best_scales": [scale]}


def test_a_pruning_win_is_proved_for_every_scale_only_by_the_range_bound():
    base = {"winner": "pruning", "proved": True,
            "text": "pruning (proved: its error < quantization's lower bound)"}
    q, p = _fig(3.0, 2.5), _fig(2.0, 1.0)
    # The range bound is above pruning's error: proved for every per-channel scale.
    v = scale_condition(dict(base), q, p, {"channel": _range(2.2, 2.4)}, COND)
    assert v["every_scale"] == "channel" and "for every per-channel scale" in v["text"]
    # Below it: proved at the rule's scales only, and a better scale is named when found.
    v = scale_condition(dict(base), q, p, {"channel": _range(1.5, 1.8, 0.0421)}, COND)
    assert v["every_scale"] is None
    assert "at the output-channel scales only" in v["text"] and "0.0421" in v["text"]
    v = scale_condition(dict(base), q, p, {"tensor": _range(1.5, 2.1)}, COND)
    assert "not decided for every scale" in v["text"] and v["conditions"] is COND


def test_sensitivity_counts_flips_and_covers_the_share():
    q = [{"chunk": 0, "channel": c, "objective": e, "status": "optimal"}
         for c, e in ((0, 1.0), (1, 3.0), (2, 1.0))]
    p = [{"chunk": 0, "channel": c, "objective": 2.0, "status": "optimal"} for c in range(3)]
    s = sensitivity(q, p, "pruning", 10)
    assert (s["channels"], s["quant_wins"], s["flips"]) == (3, 2, 2)
    lo, hi = s["share_interval"]
    assert lo < 2 / 3 < hi and "of the layer's 10 channels" in s["text"]
    assert clopper_pearson(0, 2)[0] == 0.0 and clopper_pearson(2, 2)[1] == 1.0
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)


def _sparse_toy():
    """Each channel one large weight and five small ones: pruning wins at 2 and 3 bits."""
    toy = toy_layer(seed=3, n=6, channels=4)
    W0 = 0.2 * toy.W0
    W0[:, 0] = [1.0, -0.8, 0.9, 1.1]
    return type(toy)(toy.H, W0, toy.meta)


def test_a_tiny_run_states_every_condition(tmp_path):
    toy = _sparse_toy()
    db = tmp_path / "r.sqlite"
    s = run_compare("toy", problems={"toy": toy}, db=db, workers=1, report=tmp_path / "rep",
                    bits=(2, 3), opt_dim=None, channels=2, quant_methods=("exact", "rtn"),
                    prune_methods=("exact", "magnitude"), time_limit=None,
                    scale_range_layers=("toy",), scale_range_intervals=64)
    assert s.errors == 0
    with ResultStore(db, readonly=True) as st:
        rows = st.rows(s.run_id, solutions=True)
    (lay,) = s.layers
    chans = lay["channels"]
    for ln in lay["scopes"]["chunk"]:
        v, b = ln["verdict"], ln["bits"]
        cond = v["conditions"]
        assert cond["scale_rule"] == "output-channel"
        assert cond["channels"] == chans and cond["channels_total"] == 4
        assert cond["chunk_ids"] == [0] and cond["chunks_total"] == 1
        assert cond["calibration"]["fingerprint"] == "toy-seed3"
        # The stated scales are the ones the quantization rows were solved at.
        for r in rows:
            if r["scope"] == "chunk" and r["kind"] == "quant" and r["bits"] == b:
                assert r["scale"] == cond["scales"][str(r["channel"])]
        # The paper's per-tensor scale beside it.
        paper = [r for r in rows if r["scope"] == "paper" and r["bits"] == b]
        assert {r["method"] for r in paper} == {"exact", "rtn"}
        assert len({r["scale"] for r in paper}) == 1 and ln["paper"]["scale"] == paper[0]["scale"]
        # The bound over every scale of the range (where pruning wins at the rule's scales):
        # below the exact optimum at the rule's scales whenever they lie in the range, and its
        # solutions are on their scale's grid.
        rng = ln["range"]
        assert v["winner"] == "pruning" and set(rng) == {"channel", "tensor"}
        exact = {r["channel"]: r for r in rows if r["scope"] == "chunk" and r["bits"] == b
                 and r["kind"] == "quant" and r["method"] == "exact"}
        rr = {r["method"]: r for r in rows if r["scope"] == "range" and r["bits"] == b}
        per = rr["scale-range channel"]
        lo, hi = per["info_json"]["ratio_range"]
        zmin, zmax = grid_limits(b)
        for i, c in enumerate(chans):
            amax = np.max(np.abs(toy.W0[c])) / zmax
            s_c = per["info_json"]["best_scales"][i]
            assert lo * amax <= s_c <= hi * amax
            w = np.asarray(per["weights"][6 * i:6 * (i + 1)])
            z = w / s_c
            assert np.allclose(z, np.round(z)) and zmin <= z.min() and z.max() <= zmax
        assert per["objective"] == pytest.approx(sum(
            quadratic_error(toy.hessian(c), toy.W0[c], np.asarray(per["weights"][6 * i:6 * i + 6]))
            for i, c in enumerate(chans)), rel=1e-9)
        if all(lo * np.max(np.abs(toy.W0[c])) / zmax <= exact[c]["scale"]
               <= hi * np.max(np.abs(toy.W0[c])) / zmax for c in chans):
            assert per["lower_bound"] <= sum(exact[c]["objective"] for c in chans) * (1 + 1e-9)
        assert per["lower_bound"] <= rr["scale-range tensor"]["objective"] * (1 + 1e-9)
        if v["every_scale"]:
            assert ln["prune"]["best_error"] < rng[v["every_scale"]]["lower_bound"]
        sens = ln["sensitivity"]
        if v["winner"] in ("quantization", "pruning"):
            assert sens["channels"] == 2 and sens["quant_wins"] == sens["flips"]
    # The report and its JSON carry the conditions.
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "**Conditions:** at the output-channel scale rule" in md
    assert "channels 2 of 4; chunks 1 of 1; calibration" in md
    assert "Clopper–Pearson" in md and "quant over every scale of the range" in md
    vj = json.loads((tmp_path / "rep" / "verdicts.json").read_text())
    assert len(vj) == 2 and all(x["verdict"]["conditions"]["channels"] == chans for x in vj)
    assert all(x["scale_range"]["channel"]["lower_bound"] is not None for x in vj)
    # The run's tables read only their columns (and the range rows whole): the same tables
    # as from every column of every row.
    with ResultStore(db, readonly=True) as st:
        full = tables.layer_tables(st.rows(s.run_id), s.settings)
    assert json.dumps(full, sort_keys=True, default=str) == json.dumps(
        s.layers, sort_keys=True, default=str)
