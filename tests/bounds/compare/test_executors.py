"""The executors' windowing: every task yields exactly one row, whatever the window."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bounds.compare.executors import _windowed, make_executor
from solvers.problem import ProblemError


@pytest.mark.parametrize("ntasks", [0, 1, 3, 4, 5, 17])
@pytest.mark.parametrize("window", [1, 2, 4])
def test_windowed_yields_each_task_once(ntasks, window):
    with ThreadPoolExecutor(2) as pool:
        rows = list(_windowed(lambda t: pool.submit(lambda x: {"key": x}, t), range(ntasks),
                              window, lambda f: f.result(), lambda fs: None))
    assert sorted(r["key"] for r in rows) == list(range(ntasks))


def test_windowed_cancels_pending_when_closed():
    cancelled = []
    with ThreadPoolExecutor(1) as pool:
        gen = _windowed(lambda t: pool.submit(lambda x: {"key": x}, t), range(10), 3,
                        lambda f: f.result(), lambda fs: cancelled.extend(fs))
        next(gen)
        gen.close()
    assert cancelled  # the in-flight window was handed to cancel()


def test_make_executor_choices():
    assert make_executor(1).name == "serial"
    assert make_executor(2).name == "pool"
    with pytest.raises(ProblemError, match="workers"):
        make_executor(0)
    with pytest.raises(ProblemError, match="either --workers or --scheduler"):
        make_executor(2, "tcp://127.0.0.1:1")
