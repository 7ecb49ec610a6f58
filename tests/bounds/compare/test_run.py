"""End-to-end comparison runs on small layers: rows, invariants, resume, no stale mixing."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from bounds.compare import ResultStore, run_compare
from bounds.compare.accounting import prune_density, zero_fraction
from bounds.compare.report import build_report
from bounds.compare.settings import CompareConfig, check_methods, parse_methods
from solvers.problem import ProblemError, density_to_k

RTOL = 1e-9


def _expected_chunk_rows(n, opt_dim, channels, bits, nq, np_, nm=()):
    chunks = math.ceil(n / opt_dim)
    per = len(bits) * (nq + np_) + sum(np_ for (_N, M) in nm if opt_dim % M == 0)
    return chunks * channels * per


def test_end_to_end_rows_invariants_and_report(tmp_path, toy, fast):
    db = tmp_path / "r.sqlite"
    s = run_compare("toy", problems={"toy": toy}, db=db, workers=1, nm=((2, 4),),
                    report=tmp_path / "rep", **fast)
    assert s.errors == 0 and s.reused == 0 and s.solved == s.tasks
    with ResultStore(db, readonly=True) as st:
        rows = st.rows(s.run_id, solutions=True)
    chunk = [r for r in rows if r["scope"] == "chunk"]
    assert len(chunk) == _expected_chunk_rows(12, 4, 2, (2, 4), 3, 4, nm=((2, 4),))
    # Every row carries its solution, the problem hash and a method version.
    for r in chunk:
        assert len(r["weights"]) == r["n"] == 4
        assert r["problem_hash"] and r["settings_hash"]
        assert r["method_version"].startswith("pqbound")
        assert r["calibration"] == "toy-seed0"
    # Pruning budget at b bits is round(b/16·n) (paper accounting), N:M keeps n·N/M.
    for r in chunk:
        if r["kind"] == "prune" and r["bits"]:
            assert r["k"] == density_to_k(r["bits"] / 16, 4)
            assert np.count_nonzero(r["weights"]) <= r["k"]
        if r["nm"] == "2:4":
            assert np.count_nonzero(np.reshape(r["weights"], (-1, 4)), axis=1).max() <= 2
    # Ordering invariants per problem.
    groups = defaultdict(dict)
    for r in chunk:
        groups[(r["chunk"], r["channel"], r["kind"], r["compression"])][r["method"]] = r
    for (_c, _ch, kind, _comp), per in groups.items():
        lb = per["exact"]["lower_bound"]
        assert lb is not None
        for m, r in per.items():
            assert lb <= r["objective"] * (1 + RTOL) + 1e-15, (kind, m)
            # The error recomputed from the stored solution matches the stored objective.
        if per["exact"]["status"] == "optimal":
            for r in per.values():
                assert per["exact"]["objective"] <= r["objective"] * (1 + RTOL) + 1e-15
    # Whole-channel: every certified bound (block split, direct solve) is below every whole
    # solution (stitched chunk solutions, direct solve), whose errors recompute on the full H.
    whole = [r for r in rows if r["scope"] == "whole"]
    H = toy.H
    assert {r["method"] for r in whole} >= {"block-split bound", "stitched exact",
                                            "stitched rtn", "exact"}
    for r in whole:
        if r["lower_bound"] is not None:
            peers = [q for q in whole if q["kind"] == r["kind"] and q["channel"] == r["channel"]
                     and q["compression"] == r["compression"] and q["objective"] is not None]
            assert len(peers) >= 2
            for q in peers:
                assert r["lower_bound"] <= q["objective"] * (1 + RTOL) + 1e-15
        if r["method"] != "block-split bound":
            d = np.asarray(r["weights"]) - toy.W0[r["channel"]]
            assert r["objective"] == pytest.approx(d @ H @ d, rel=1e-9)
    # Tables and report.
    lay = s.layers[0]
    assert lay["layer"] == "toy" and set(lay["scopes"]) == {"chunk", "whole"}
    for ln in lay["scopes"]["chunk"]:
        if ln["quant"]:
            q = ln["quant"]
            for mf in q["methods"].values():
                assert mf["sqnr_db"] <= q["sqnr_ceiling_db"] + 1e-9
        v = ln["verdict"]
        if v["proved"] and v["winner"] == "quantization":
            assert ln["quant"]["best_error"] < ln["prune"]["lower_bound"]
    rep = tmp_path / "rep"
    for f in ("report.md", "report.html", "rows.csv", "rows.json", "layer-toy.png",
              "gaps.png", "times.png"):
        assert (rep / f).stat().st_size > 0, f
    md = (rep / "report.md").read_text()
    assert "protocol | **exact**" in md and "Whole output channel" in md
    assert "Chunk problems (comparable with the paper)" in md


def test_resume_solves_nothing_twice_and_new_data_never_mixes(tmp_path, toy, fast, make_toy):
    db = tmp_path / "r.sqlite"
    kw = dict(fast, quant_methods=("rtn", "gptq"), prune_methods=("magnitude", "obs"),
              whole_layer=False)
    s1 = run_compare("toy", problems={"toy": toy}, db=db, workers=1, **kw)
    s2 = run_compare("toy", problems={"toy": toy}, db=db, workers=1, **kw)
    assert s2.run_id == s1.run_id and s2.solved == 0 and s2.reused == s1.tasks
    # Other calibration data (another H): same layer name, nothing reused, reports separate.
    other = make_toy(seed=1)
    s3 = run_compare("toy", problems={"toy": other}, db=db, workers=1, **kw)
    assert s3.run_id != s1.run_id and s3.reused == 0 and s3.solved == s3.tasks
    with ResultStore(db, readonly=True) as st:
        k1 = {r["task_key"] for r in st.rows(s1.run_id)}
        k3 = {r["task_key"] for r in st.rows(s3.run_id)}
        assert not k1 & k3
        assert {r["calibration"] for r in st.rows(s3.run_id)} == {"toy-seed1"}
    # A longer bit list reuses what it can.
    s4 = run_compare("toy", problems={"toy": toy}, db=db, workers=1,
                     **dict(kw, bits=(2, 3, 4)))
    assert s4.reused == s1.tasks and s4.solved == s4.tasks - s1.tasks


def test_accounting_rules_set_the_budgets(tmp_path, toy, fast):
    kw = dict(fast, quant_methods=("rtn",), prune_methods=("magnitude",), whole_layer=False,
              opt_dim=None, bits=(4,))
    for acc in ("paper", "bitmask", "corrected"):
        s = run_compare("toy", problems={"toy": toy}, db=tmp_path / f"{acc}.sqlite",
                        workers=1, accounting=acc, **kw)
        with ResultStore(tmp_path / f"{acc}.sqlite", readonly=True) as st:
            ks = {r["k"] for r in st.rows(s.run_id) if r["kind"] == "prune"}
        dens = s.settings["layer_problems"]["toy"]["densities"]["4"]
        if acc == "paper":
            assert dens == 0.25
        elif acc == "bitmask":
            assert dens == 3 / 16
        else:
            from bounds.scale_choice import choose_scales
            chans = s.settings["layer_problems"]["toy"]["channels"]
            zf = zero_fraction(toy.W0, choose_scales(toy, 4, method="output", per_channel=True,
                                                     channels=chans), 4)
            assert dens == pytest.approx(prune_density(4, "corrected", zero_fraction=zf))
            assert dens <= 0.25
        assert ks == {density_to_k(dens, 12)}


def test_paper_protocol_applies_the_box_and_chunks(tmp_path, toy, fast):
    s = run_compare("toy", problems={"toy": toy}, db=tmp_path / "p.sqlite", workers=1,
                    protocol="paper", **dict(fast, opt_dim=None, quant_methods=("rtn",),
                                             prune_methods=("magnitude-refit",),
                                             whole_layer=False, bits=(4,)))
    assert s.settings["opt_dim"] == 32 and s.settings["samples"] == 64
    with ResultStore(tmp_path / "p.sqlite", readonly=True) as st:
        rows = [r for r in st.rows(s.run_id, solutions=True) if r["kind"] == "prune"]
    for r in rows:
        w0 = toy.W0[r["channel"]][r["input_start"]:r["input_stop"]]
        assert r["box"] == pytest.approx(2 * np.max(np.abs(w0)))


def test_unavailable_or_unknown_methods_fail_at_start(tmp_path, toy, fast, monkeypatch):
    with pytest.raises(ProblemError, match="unknown method"):
        parse_methods(["nosuch"])
    assert parse_methods(["exact", "quant:rtn", "prune:obs"]) == (("exact", "rtn"),
                                                                   ("exact", "obs"))
    from solvers import registry

    m = registry.METHODS[("quant", "rtn")]
    broken = type(m)(m.name, m.kind, "solvers.no_such_module:fn", m.certified, m.summary)
    monkeypatch.setitem(registry.METHODS, ("quant", "rtn"), broken)
    with pytest.raises(ProblemError, match="not available here: quant rtn"):
        check_methods(["rtn"], [])
    with pytest.raises(ProblemError, match="not available"):
        run_compare("toy", problems={"toy": toy}, db=tmp_path / "x.sqlite", workers=1,
                    **dict(fast, quant_methods=("rtn",)))
    assert not (tmp_path / "x.sqlite").exists()


def test_bad_settings_are_clear_errors():
    for kw, msg in [({"bits": (0,)}, "bits"), ({"protocol": "nope"}, "protocol"),
                    ({"accounting": "free"}, "accounting"), ({"time_limit": -1}, "time_limit"),
                    ({"nm": ((5, 4),)}, "N:M")]:
        with pytest.raises(ProblemError, match=msg):
            CompareConfig(**kw).resolved()


def test_report_rebuilds_from_store_alone(tmp_path, toy, fast):
    db = tmp_path / "r.sqlite"
    run_compare("toy", problems={"toy": toy}, db=db, workers=1,
                **dict(fast, quant_methods=("rtn",), prune_methods=("magnitude",), bits=(4,),
                       whole_layer=False))
    p = build_report(db, tmp_path / "again")
    assert p.read_text().startswith("# pqbound compare")
    from bounds.cli import main

    assert main(["report", "--db", str(db), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.html").exists()
    (tmp_path / "junk.sqlite").write_bytes(b"x" * 2000)
    assert main(["report", "--db", str(tmp_path / "junk.sqlite"), "--out",
                 str(tmp_path / "o")]) == 2
