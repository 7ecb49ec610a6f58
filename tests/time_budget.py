"""Checking time limits without depending on how busy the machine is.

A solver stops on the *wall* clock, so on a loaded machine its wall time past the limit grows
with the load (the last slice simply runs slower), while the CPU time this thread spends can only
shrink: it never exceeds the wall time. So a test that asserts the CPU time of the solving
thread stays within the limit plus a margin catches every way of ignoring the limit (work that
never checks the clock, compilation inside the solve) and never fails because the machine is
busy. Helper threads (BLAS) are not counted: the check is conservative, never flaky. The wall
time itself, on a quiet machine, is measured by the benchmarks.

Import as ``from time_budget import ThreadClock`` (``tests/`` is on pytest's pythonpath).
"""

from __future__ import annotations

import time


class ThreadClock:
    """``with ThreadClock() as clock: ...`` then ``clock.seconds``: this thread's CPU time."""

    def __enter__(self) -> ThreadClock:
        self._t0 = time.thread_time()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.thread_time() - self._t0
