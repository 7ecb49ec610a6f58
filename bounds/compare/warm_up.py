"""Compile the solvers' numba kernels in a worker before any timed solve.

numba compiles a kernel on its first call in a process, or loads it from the on-disk cache; on a
cold cache (a fresh install) the exact pruning kernels alone take tens of seconds. Inside a task
that time would count against the task's time limit, and short limits (the main job uses 1 s per
problem) would end in time-outs that say nothing about the problem. So every worker first solves
tiny problems, untimed, with each compiled path forced: the exact quantization search with and
without the reduced basis, the exact pruning search with the cheap and the perspective bounds,
boxed and unboxed, the exact level solver (``--formats``) with and without a nonzero limit, and
the heuristics of ``pqbound compare``'s defaults. Nothing here may fail
a run: errors are logged and ignored (the real task will report them).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_QUANT = ("rtn", "gptq", "adaround")
_PRUNE = ("magnitude", "obs", "sparsegpt")


def warm_up() -> None:
    """Solve tiny problems with every compiled method path (see the module doc)."""
    from solvers.problem import PruneProblem, QuantProblem
    from solvers.registry import get_method

    X = np.cumsum(np.random.default_rng(0).standard_normal((16, 6)), axis=1)
    H = X.T @ X
    w0 = np.linspace(-0.6, 0.7, 6)
    q = QuantProblem(H, w0, scale=0.1, bits=4)
    calls = [("quant", "exact", q, {"reduction": True}), ("quant", "exact", q, {})]
    calls += [("quant", name, q, {}) for name in _QUANT]
    for box in (None, 2.0):
        p = PruneProblem(H, w0, k=3, box_factor=box)
        calls += [("prune", "exact", p, {"diagonal": d}) for d in ("jacobi", "logdet")]
        calls += [("prune", name, p, {}) for name in _PRUNE]
    from solvers.problem import LevelProblem

    levels = np.array([-0.4, -0.1, 0.0, 0.2, 0.5])  # --formats: the level solver's kernels
    calls += [("levels", "exact", LevelProblem(H, w0, levels=levels, k=k), {})
              for k in (None, 3)]
    for kind, name, problem, options in calls:
        try:
            get_method(kind, name).load()(problem, **options)
        except Exception as exc:  # noqa: BLE001 - a warm-up never fails the run
            log.debug("warm-up of %s %s failed: %s", kind, name, exc)
