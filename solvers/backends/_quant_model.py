"""The quantization MIQP in the data every quantization adapter feeds its backend.

In grid units ``c = w0 / s`` the objective is ``s²·(z − c)ᵀH(z − c)``. Two forms:

* **direct**: ``s²(zᵀHz − 2(Hc)ᵀz + cᵀHc)``, the textbook MIQP (what a user would write);
* **factor**: ``s²‖y‖²`` with ``y = R(z − c)`` for ``H = RᵀR`` (an exact, rank-revealing Cholesky
  of :mod:`solvers.quant.factor`), which avoids the cancellation of the direct form and keeps the
  objective convex when ``H`` has rounding-level negative eigenvalues.

Every adapter recomputes the objective of the returned codes from ``H`` itself
(:func:`solvers.backends.base.backend_result`), whichever form the backend saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..problem import QuantProblem
from ..quant.factor import ordered_cholesky
from ..quant.incumbents import rtn


@dataclass(frozen=True)
class QuantModel:
    n: int
    lo: int
    hi: int
    c: np.ndarray  # target in grid units
    Hs: np.ndarray  # s²·H
    lin: np.ndarray  # −2 s² H c (direct form)
    const: float  # s² cᵀHc (direct form)
    Rs: np.ndarray  # s·R, rows of the factor form (nonzero rows only)
    rhs: np.ndarray  # s·R c
    rtn: np.ndarray  # round-to-nearest codes

    @classmethod
    def build(cls, p: QuantProblem) -> QuantModel:
        s = p.scale
        c = p.w0 / s
        Hs = s * s * p.H
        R, _ = ordered_cholesky(p.H, np.arange(p.n))
        keep = np.diag(R) > 0.0
        Rs = s * R[keep]
        return cls(p.n, p.zmin, p.zmax, c, Hs, -2.0 * (Hs @ c), float(c @ Hs @ c), Rs,
                   Rs @ c, rtn(c, p.zmin, p.zmax))


def codes_from(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Backend values of integer variables → int64 codes on the grid."""
    return np.clip(np.rint(np.asarray(x, dtype=float)), lo, hi).astype(np.int64)


#: Modules that cannot share a process: the pip wheels of OR-Tools and highspy each carry their
#: own HiGHS and the second one loaded fails with undefined symbols.
CONFLICTS = {"ortools": "highspy", "highspy": "ortools"}


def needs_isolation(module: str) -> bool:
    """True when ``module``'s conflicting partner is already loaded in this process."""
    import sys

    other = CONFLICTS.get(module)
    return other is not None and other in sys.modules and module not in sys.modules


def run_isolated(target: str, problem: QuantProblem, **kwargs):
    """Run ``"module:function"(problem, **kwargs)`` in a fresh (spawned) process."""
    import concurrent.futures as cf
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(_call, target, problem, kwargs).result()


def _call(target: str, problem: QuantProblem, kwargs: dict):
    import importlib

    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)(problem, **kwargs)
