"""BLAS on one thread while pqbound solves, unless the user chose a thread count.

The per-channel problems are small (``n`` of tens to a few hundred): a BLAS call on a 32 × 32
matrix gains nothing from a second thread, and on a loaded machine a multi-threaded call waits
for a preempted helper thread — measured here at load 12 on two cores, a pruning solve with a
1 ms limit used 30 ms of CPU in 0.3 s of wall time, so time limits were missed by waiting, not
by work. Solving processes therefore cap BLAS at one thread; parallelism comes from worker
processes (``--workers``) instead.

A user who sets any of :data:`THREAD_VARS` in the environment keeps that choice: BLAS is held
to that count instead (the smallest one set), which also holds in a forked worker whose BLAS
was started by its parent before the variable was set.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

THREAD_VARS: tuple[str, ...] = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def user_threads() -> int | None:
    """The smallest positive thread count set in the environment (:data:`THREAD_VARS`), or
    ``None`` when none is set; ``0`` when one is set but is not a positive integer (then BLAS
    is left as it is)."""
    counts = []
    for v in THREAD_VARS:
        text = os.environ.get(v, "").strip()
        if text:
            counts.append(int(text) if text.isdigit() and int(text) > 0 else 0)
    return min(counts) if counts else None


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS runs on one thread, or on the user's count if one is set.

    >>> with one_blas_thread():
    ...     pass
    """
    chosen = user_threads()
    if chosen == 0:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(chosen or 1, user_api="blas")
