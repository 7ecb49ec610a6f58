"""Pin every numeric library to one thread, before numpy is imported.

Timings in the suite are single-threaded so that solvers compare on equal terms (a general solver
using both cores against ours on one would be a different benchmark). Call :func:`pin_threads`
before the first ``import numpy`` of the process (the CLI does it at the top of the script; the
worker processes of the throughput study do it in their initializer, which runs before they import
any solver).
"""

from __future__ import annotations

import os

#: Environment variables that the BLAS / OpenMP / numba runtimes read at start-up.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def pin_threads(n: int = 1) -> dict[str, str]:
    """Set every thread-count variable to ``n`` (overriding the caller's); return them."""
    for var in THREAD_VARS:
        os.environ[var] = str(int(n))
    return {var: os.environ[var] for var in THREAD_VARS}
