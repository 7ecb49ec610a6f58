"""The canonical problems every backend is tested on, and the time limits the tests give them.

Shared by ``test_backends.py`` and ``benchmarks/backend_headroom.py`` (which measures each
backend's idle solve time on them against these limits: the default tests need ≥ 20×). Every
problem is built from its own seed, so a case means the same instance wherever it is used.
"""

from __future__ import annotations

import numpy as np
from problem_instances import random_hessian, random_quant_problem

from solvers.problem import PruneProblem, QuantProblem

#: Time limits handed to the backends in the default tests (seconds).
SMALL_LIMIT = 60.0
LARGE_LIMIT = 120.0

#: Quantization, brute force over the grid: (kind of H, n, bits, seed).
QUANT_CASES = {
    "well": ("well", 5, 3, 81),
    "corr": ("corr", 5, 3, 82),
    "rankdef": ("rankdef", 5, 3, 83),
}
#: Smaller grids for the backends that need them (HiGHS's outer approximation is slow).
QUANT_SMALL = {"highs": (4, 2)}

#: Boxed pruning at n = 6, brute force over every mask: (kind of H, box factor, k, N:M, seed).
PRUNE_CASES = {
    "well": ("well", 2.0, 2, None, 51),
    "corr": ("corr", 0.5, 2, None, 52),
    "rankdef": ("rankdef", 1.0, 2, None, 53),
    "ill-nm": ("ill", 2.0, None, (1, 2), 54),
}

#: Quantization against our exact solver: (kind of H, n, bits, seed) per backend.
QUANT_EXACT_CASES = {
    "gurobi": [("well", 16, 4, 161), ("corr", 16, 4, 162)],
    "scip": [("well", 10, 2, 101), ("corr", 10, 2, 102)],  # SCIP is slow: smaller
}

#: Boxed pruning against our exact solver: (n, density, kind of H).
PRUNE_EXACT_CASES = [(16, 0.25, "corr"), (16, 0.5, "well"), (24, 0.25, "well")]


def quant_case(case: str, backend: str) -> QuantProblem:
    kind, n, bits, seed = QUANT_CASES[case]
    n, bits = QUANT_SMALL.get(backend, (n, bits))
    return random_quant_problem(np.random.default_rng(seed), n, bits, kind)


def prune_case(case: str) -> PruneProblem:
    kind, c, k, nm, seed = PRUNE_CASES[case]
    rng = np.random.default_rng(seed)
    return PruneProblem(random_hessian(rng, 6, kind), rng.standard_normal(6), k=k, nm=nm,
                        box_factor=c)


def prune_unboxed_case() -> PruneProblem:
    rng = np.random.default_rng(2)
    return PruneProblem(random_hessian(rng, 6, "well"), rng.standard_normal(6), k=2)


def quant_exact_cases(backend: str) -> list[QuantProblem]:
    return [random_quant_problem(np.random.default_rng(seed), n, bits, kind)
            for kind, n, bits, seed in QUANT_EXACT_CASES[backend]]


def prune_exact_case(n: int, density: float, kind: str) -> PruneProblem:
    rng = np.random.default_rng(n + int(100 * density))
    return PruneProblem.from_density(random_hessian(rng, n, kind), rng.standard_normal(n),
                                     density, box_factor=2.0)


def prune_nm_case() -> PruneProblem:
    rng = np.random.default_rng(9)
    return PruneProblem(random_hessian(rng, 16, "corr"), rng.standard_normal(16), nm=(2, 4),
                        box_factor=2.0)
