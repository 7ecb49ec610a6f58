"""BLAS on one thread while pqbound solves, unless the user chose a thread count.

The per-channel problems are small (``n`` of tens to a few hundred): a BLAS call on a 32 × 32
matrix gains nothing from a second thread, and on a loaded machine a multi-threaded call waits
for a preempted helper thread — measured here at load 12 on two cores, a pruning solve with a
1 ms limit used 30 ms of CPU in 0.3 s of wall time, so time limits were missed by waiting, not
by work. Solving processes therefore cap BLAS at one thread; parallelism comes from worker
processes (``--workers``) instead.

A user who sets any of :data:`THREAD_VARS` in the environment keeps that choice: nothing is
capped then.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

THREAD_VARS: tuple[str, ...] = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def user_chose_threads() -> bool:
    """Whether the environment sets a thread count (any of :data:`THREAD_VARS`)."""
    return any(os.environ.get(v) for v in THREAD_VARS)


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS runs on one thread (a no-op when the user set a thread count).

    >>> with one_blas_thread():
    ...     pass
    """
    if user_chose_threads():
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")
