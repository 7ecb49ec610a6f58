"""A ceiling that is infinite (bound 0) or missing reads "no bound", never "≤ ∞" or "inf"."""

from __future__ import annotations

import math

from bounds.cli import main
from bounds.compare import executors, run_compare, tables
from bounds.compare.report import build_report
from bounds.problem_file import save_problem


def test_fmt_db():
    assert tables.fmt_db(math.inf, ceiling=True) == "no bound"
    assert tables.fmt_db(None, ceiling=True) == "no bound"
    assert tables.fmt_db(12.345, ceiling=True) == "≤ 12.35"
    assert tables.fmt_db(math.inf) == "∞" and tables.fmt_db(None) == "—"


def test_rank_deficient_layer_reports_no_bound(tmp_path, make_toy, monkeypatch):
    monkeypatch.setattr(executors, "warm_up", lambda: None)  # tiny problems: no time pressure
    # 3 calibration rows, 8 inputs: pruning to 4 weights reaches error 0 (bound 0: infinite
    # ceiling); RTN proves nothing (missing bound).
    layer = make_toy(n=8, rows=3, channels=2)
    db = tmp_path / "r.sqlite"
    s = run_compare("toy", problems={"toy": layer}, db=db, workers=1, bits=(8,),
                    opt_dim=None, channels=2, max_chunks=None, time_limit=10.0,
                    whole_layer=False, quant_methods=("rtn",), prune_methods=("exact",))
    line = s.layers[0]["scopes"]["chunk"][0]
    assert math.isinf(line["prune"]["sqnr_ceiling_db"])
    assert line["quant"]["sqnr_ceiling_db"] is None
    text = s.text()
    report = build_report(db, tmp_path / "rep").read_text()
    for out in (text, report):
        assert "no bound" in out
        assert "≤ ∞" not in out and "≤ inf" not in out
    row = next(ln for ln in report.splitlines() if ln.startswith("| 8bit"))
    assert row.count("no bound") == 2


def test_solve_says_no_bound(tmp_path, make_toy, capsys):
    path = save_problem(tmp_path / "p.npz", make_toy(n=8, rows=3, channels=2))
    assert main(["solve", "prune", str(path), "--bits", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(no bound)" in out and "no bound" in out.splitlines()[3]
    assert "≤ inf" not in out and " inf dB)" not in out  # the achieved SQNR may be inf
