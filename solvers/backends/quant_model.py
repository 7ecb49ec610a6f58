"""The quantization MIQP in the data every backend's quantization model is built from.

In grid units ``c = w0 / s`` the objective is ``s²·(z − c)ᵀH(z − c)``. Two forms:

* **direct**: ``s²(zᵀHz − 2(Hc)ᵀz + cᵀHc)``, the textbook MIQP (what a user would write);
* **factor**: ``s²‖y‖²`` with ``y = R(z − c)`` for ``H = RᵀR`` (an exact, rank-revealing Cholesky
  of :mod:`solvers.quant.factor`), which avoids the cancellation of the direct form and keeps the
  objective convex when ``H`` has rounding-level negative eigenvalues.

Every backend recomputes the objective of the returned codes from ``H`` itself
(:func:`solvers.backends.base.backend_result`), whichever form it saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..problem import ProblemError, QuantProblem
from ..quant.factor import ordered_cholesky
from ..quant.incumbents import rtn


@dataclass(frozen=True)
class QuantModel:
    """Both forms of one :class:`~solvers.problem.QuantProblem`, and its round-to-nearest start.

    Examples
    --------
    >>> import numpy as np
    >>> qm = QuantModel.build(QuantProblem(np.eye(2), np.array([0.3, -0.8]), scale=0.5, bits=2))
    >>> qm.c.tolist(), qm.rtn.tolist(), (qm.lo, qm.hi)
    ([0.6, -1.6], [1, -2], (-2, 1))
    """

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
    """Backend values of integer variables → int64 codes on the grid.

    Examples
    --------
    >>> codes_from([0.9999999, -2.0000001, 3.2], -2, 1).tolist()
    [1, -2, 1]
    """
    return np.clip(np.rint(np.asarray(x, dtype=float)), lo, hi).astype(np.int64)



#: The two forms a backend can be given (see the module docstring).
FORMULATIONS = ("direct", "factor")


def quant_formulation(formulation: str) -> str:
    """``formulation`` if it is one of :data:`FORMULATIONS`, else a :class:`ProblemError`.

    Examples
    --------
    >>> quant_formulation("factor")
    'factor'
    >>> quant_formulation("dense")
    Traceback (most recent call last):
    ...
    solvers.problem.ProblemError: formulation must be 'direct' or 'factor', got 'dense'
    """
    if formulation not in FORMULATIONS:
        raise ProblemError(f"formulation must be 'direct' or 'factor', got {formulation!r}")
    return formulation
