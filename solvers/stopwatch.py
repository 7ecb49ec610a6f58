"""Wall-clock time of a solve and what is left of its time limit.

One small clock shared by every solver that stops on a time limit (the exact pruning search, the
general-solver backends, the benchmark-only adapters), so that "seconds" and "remaining" mean the
same everywhere: ``time.perf_counter`` seconds since the clock was made.
"""

from __future__ import annotations

import time


class Stopwatch:
    """Wall-clock seconds since construction; ``remaining(limit)`` for time limits.

    Examples
    --------
    >>> sw = Stopwatch()
    >>> sw.seconds >= 0.0, sw.remaining(None), sw.remaining(0.0)
    (True, None, 0.0)
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds since the stopwatch was made."""
        return time.perf_counter() - self.start

    def remaining(self, limit: float | None) -> float | None:
        """Seconds left of ``limit`` (never negative), or ``None`` without a limit."""
        return None if limit is None else max(0.0, limit - self.seconds)


def passed(deadline: float | None) -> bool:
    """Whether ``deadline`` (a ``time.perf_counter()`` value; ``None``: no deadline) has passed.

    >>> passed(None), passed(0.0)
    (False, True)
    """
    return deadline is not None and time.perf_counter() >= deadline
