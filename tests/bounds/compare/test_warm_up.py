"""The workers' warm-up runs every compiled path without a failure, and executors call it."""

import logging

from bounds.compare import executors
from bounds.compare.warm_up import warm_up


def test_warm_up_runs_every_method_without_failure(caplog):
    with caplog.at_level(logging.DEBUG, logger="bounds.compare.warm_up"):
        warm_up()
    assert not [r for r in caplog.records if "failed" in r.getMessage()]


def test_serial_executor_warms_up_once(monkeypatch):
    calls = []
    monkeypatch.setattr(executors, "warm_up", lambda: calls.append(1))
    ex = executors.SerialExecutor()
    assert list(ex.execute([])) == []
    assert list(ex.execute([])) == []
    assert calls == [1]
