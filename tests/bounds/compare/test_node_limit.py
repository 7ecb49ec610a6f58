"""``--node-limit``: certified figures that do not depend on the machine, recorded and shown."""

from __future__ import annotations

import time

import numpy as np
import pytest
from problem_instances import random_hessian

import solvers.prune.search as prune_search
import solvers.quant.exact as quant_exact
import solvers.stopwatch as stopwatch
from bounds.cli import main
from bounds.compare import ResultStore, executors, run_compare
from bounds.compare.report import build_report
from solvers.problem import PruneProblem, QuantProblem


class SlowClock:
    """``time`` with a ``perf_counter`` that advances ``step`` seconds per call: a machine as
    slow (or as loaded) as we like, deterministically."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.t += self.step
        return self.t

    def __getattr__(self, name):
        return getattr(time, name)


def _slow(monkeypatch, step: float) -> None:
    for mod in (quant_exact, prune_search, stopwatch):
        monkeypatch.setattr(mod, "time", SlowClock(step))


def _fingerprint(r):
    return (r.status.value, r.objective, r.lower_bound, r.nodes, tuple(np.ravel(r.weights)))


@pytest.mark.parametrize("kind", ["quant", "prune"])
def test_node_limited_exact_solves_ignore_the_clock(monkeypatch, kind):
    rng = np.random.default_rng(3)
    n = 40
    H = random_hessian(rng, n)
    w0 = rng.standard_normal(n) * 0.1
    if kind == "quant":
        problem, solve, limit = QuantProblem(H, w0, scale=0.01, bits=5), \
            quant_exact.solve_exact, 30_000
    else:
        import solvers.prune.exact as prune_exact

        problem, solve, limit = PruneProblem(H, w0, k=10), prune_exact.solve_exact, 300
    results = []
    for step in (1e-6, 1e-3, 0.05):
        with monkeypatch.context() as m:
            _slow(m, step)
            results.append(_fingerprint(solve(problem, node_limit=limit)))
    assert results[0][0] == "node_limit"  # the limit is what stopped it
    assert results[1] == results[0] and results[2] == results[0]


SETTINGS = dict(bits=(3, 5), opt_dim=None, channels=2, max_chunks=None, whole_layer=False,
                quant_methods=("exact", "rtn", "adaround"), prune_methods=("exact", "magnitude"))


def _exact_rows(db):
    with ResultStore(db, readonly=True) as st:
        rows = st.rows(st.run()["run_id"], solutions=True)
    return {(r["layer"], r["chunk"], r["channel"], r["kind"], r["method"], r["compression"]):
            (r["status"], r["objective"], r["lower_bound"], r["nodes"], tuple(r["weights"]))
            for r in rows if r["method"] in ("exact", "adaround")}


def test_compare_with_a_node_limit_is_reproducible_and_recorded(tmp_path, make_toy,
                                                                 monkeypatch):
    monkeypatch.setattr(executors, "warm_up", lambda: None)
    layer = make_toy(n=24, channels=2)
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    run_compare("toy", problems={"toy": layer}, db=a, workers=1, node_limit=60,
                time_limit=0.001, **SETTINGS)
    with monkeypatch.context() as m:  # the same run on a machine 1000x slower
        _slow(m, 0.05)
        run_compare("toy", problems={"toy": layer}, db=b, workers=1, node_limit=60,
                    time_limit=0.001, **SETTINGS)
    rows_a, rows_b = _exact_rows(a), _exact_rows(b)
    assert rows_a == rows_b
    assert any(v[0] == "node_limit" for v in rows_a.values())
    with ResultStore(a, readonly=True) as st:
        settings = st.run()["settings"]
    assert settings["node_limit"] == 60
    report = build_report(a, tmp_path / "rep").read_text()
    assert "node limit 60 per exact solve" in report


def test_node_limit_changes_the_task_keys_only_when_given(make_toy):
    from bounds.compare.plan import make_plan
    from bounds.compare.settings import CompareConfig

    layer = make_toy(n=12, channels=1)
    plain = make_plan(CompareConfig(**SETTINGS).resolved(), {"toy": layer}).tasks()
    limited = make_plan(CompareConfig(node_limit=500, **SETTINGS).resolved(),
                        {"toy": layer}).tasks()
    assert {t.key for t in plain}.isdisjoint(t.key for t in limited if t.method == "exact")
    for t in limited:
        if t.method == "exact":
            assert (t.node_limit, t.time_limit) == (500, None)
        else:
            assert (t.node_limit, t.time_limit) == (None, None)
    assert all(t.node_limit is None and t.time_limit == 1.0 for t in plain)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_bad_node_limit_is_a_clear_error(tmp_path, capsys, value):
    code = main(["compare", "--node-limit", value, "--db", str(tmp_path / "r.sqlite"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "node_limit must be an integer >= 1" in err
    assert list(tmp_path.iterdir()) == []
