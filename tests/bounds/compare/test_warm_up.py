"""The warm-up runs every compiled path without a failure, executors call it, and a compile is
announced ("compiling solver kernels (first run only)") before the solving bar starts."""

import logging

import numba
import pytest

import solvers.warm_up as sw
from bounds.compare import executors
from bounds.compare.run import run_compare
from bounds.compare.warm_up import MESSAGE, warm_up, warm_up_announced


def test_warm_up_runs_every_method_without_failure(caplog):
    with caplog.at_level(logging.DEBUG, logger="solvers.warm_up"):
        warm_up()
        sw.warm_up(force=True)  # every group, every option
    assert not [r for r in caplog.records if "failed" in r.getMessage()]


def test_serial_executor_warms_up_once(monkeypatch):
    calls = []
    monkeypatch.setattr(executors, "warm_up", lambda: calls.append(1))
    ex = executors.SerialExecutor()
    assert list(ex.execute([])) == []
    assert list(ex.execute([])) == []
    assert calls == [1]


def test_unknown_group_is_an_error():
    with pytest.raises(ValueError, match="unknown warm-up groups"):
        sw.warm_up(["nope"])


def _compiling_group(every, stopped=True):
    """A group whose one call compiles a new kernel (as on a cold cache)."""
    fresh = numba.njit(lambda x: x + 1)
    yield lambda: fresh(1.5)


@pytest.fixture
def cold(monkeypatch):
    calls = dict(sw._CALLS)
    calls["prune"] = _compiling_group
    monkeypatch.setattr(sw, "_CALLS", calls)
    monkeypatch.setattr(sw, "_DONE", set())


def test_compilation_is_announced_with_a_bar(cold, capsys):
    info = warm_up_announced(progress=True)
    err = capsys.readouterr().err
    assert info["compiled"] >= 1
    assert err.count(MESSAGE) == 1 and "compiling: exact pruning" in err


def test_nothing_is_announced_when_the_kernels_load(capsys):
    warm_up()  # everything loaded in this process
    info = warm_up_announced(progress=True)
    assert info["compiled"] == 0
    assert MESSAGE not in capsys.readouterr().err


def test_the_solving_bar_starts_after_the_warm_up(cold, capsys, toy, fast, tmp_path):
    s = run_compare("toy", problems={"toy": toy}, db=tmp_path / "r.sqlite", workers=1,
                    progress=True, **dict(fast, bits=(2,), quant_methods=("rtn",),
                                          prune_methods=("magnitude",), whole_layer=False))
    assert s.errors == 0
    err = capsys.readouterr().err
    assert err.count(MESSAGE) == 1
    assert err.index(MESSAGE) < err.index("solving")
