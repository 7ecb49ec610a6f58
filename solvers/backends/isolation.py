"""Backends whose libraries cannot share a process: the OR-Tools / highspy clash.

The pip wheels of OR-Tools and highspy each carry their own build of HiGHS (cvxpy loads highspy
too); once one is loaded, loading the other can fail with undefined symbols. A backend solve that
imports one of them is decorated with :func:`isolated`: when the other one is already loaded in
this process (or the import fails while it is), the same solve, with the same arguments, runs in
a freshly spawned process and its :class:`~solvers.result.SolveResult` comes back. Otherwise it
runs here. Both HiGHS paths (quantization and pruning) and CP-SAT are guarded.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

#: Top-level modules that cannot share a process, each with its partner.
CONFLICTS = {"ortools": "highspy", "highspy": "ortools"}


def needs_isolation(module: str) -> bool:
    """True when ``module``'s conflicting partner is already loaded in this process and
    ``module`` itself is not.

    Examples
    --------
    >>> needs_isolation("numpy")
    False
    """
    top = module.split(".")[0]
    other = CONFLICTS.get(top)
    return other is not None and other in sys.modules and top not in sys.modules


def isolated(module: str) -> Callable:
    """Decorate a backend's ``solve_*(self, problem, **options)`` that imports ``module`` so
    that it runs in a spawned process when ``module`` cannot be loaded beside what this process
    holds. The decorated method keeps its signature (``inspect.signature`` sees the options)."""

    def decorate(solve: Callable) -> Callable:
        @functools.wraps(solve)
        def guarded(self, problem, **options: Any):
            if needs_isolation(module) or not _imports(module):
                return run_isolated(self, solve.__name__, problem, options)
            return solve(self, problem, **options)

        return guarded

    return decorate


def _imports(module: str) -> bool:
    """Import ``module``; False only when that fails while its partner is loaded (the clash).
    Any other import failure propagates."""
    try:
        importlib.import_module(module)
    except ImportError:
        other = CONFLICTS.get(module.split(".")[0])
        if other is not None and other in sys.modules:
            return False
        raise
    return True


def run_isolated(backend: Any, method: str, problem: Any, options: dict[str, Any]):
    """``getattr(backend, method)(problem, **options)`` in a fresh (spawned) process."""
    import concurrent.futures as cf
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(_call, backend, method, problem, options).result()


def _call(backend: Any, method: str, problem: Any, options: dict[str, Any]):
    return getattr(backend, method)(problem, **options)
