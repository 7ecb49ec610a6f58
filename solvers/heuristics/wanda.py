"""Wanda: prune by ``|w_j|·‖X_j‖``, no weight update.

Sun, Liu, Bair & Kolter, *A Simple and Effective Pruning Approach for Large Language Models*,
ICLR 2024 (arXiv 2306.11695). The score of weight ``j`` of an output channel is
``|w_j| · ‖X_j‖₂ = |w_j|·√H_jj`` (``H = XᵀX``), compared *within each output channel* (the
paper's per-output comparison group), so each row keeps its ``k`` highest scores, or the ``N``
highest of each group of ``M`` consecutive inputs for N:M. The kept weights are not changed
(``refit=False``, the method as published) or refit exactly on the undamped ``H``
(``refit=True``: the project's one refit, :func:`solvers.prune.refit.unboxed_refit`). With a
diagonal ``H`` of equal entries, Wanda is magnitude pruning. A box is respected by clipping the
kept weights (the message says so). The objective is the exact error on ``H``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..problem import PruneProblem
from ..prune.refit import unboxed_refit_rows
from ..result import SolveResult
from ._layer import LayerRun, check_layer, prune_budget, prune_run
from .magnitude import magnitude_masks


def wanda_masks(H: np.ndarray, W0: np.ndarray, k: int,
                nm: tuple[int, int] | None = None) -> np.ndarray:
    """Boolean (C, n) masks keeping, per row, the ``k`` largest ``|w_j|·√H_jj`` (or the ``N``
    largest of each group of ``M``); ties keep the lower input index.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.diag([1.0, 100.0, 1.0, 1.0])
    >>> wanda_masks(H, np.array([[0.5, 0.1, 0.3, -0.2]]), 2).tolist()
    [[True, True, False, False]]
    """
    W0 = np.atleast_2d(W0)
    score = np.abs(W0) * np.sqrt(np.maximum(np.diag(H), 0.0))[None, :]
    return magnitude_masks(score, k, nm)


def wanda_layer(
    H: Any,
    W0: Any,
    k: int | None = None,
    *,
    density: float | None = None,
    nm: tuple[int, int] | None = None,
    refit: bool = False,
    box_factor: float | None = None,
) -> LayerRun:
    """Wanda on every channel of a layer with a shared ``H``.

    Parameters
    ----------
    H, W0, k, density, nm, box_factor : as in
        :func:`solvers.heuristics.magnitude.magnitude_layer`.
    refit : bool
        Exact least-squares refit of the kept weights (not part of Wanda).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[4.0, 1.0], [1.0, 1.0]])
    >>> run = wanda_layer(H, np.array([0.3, 0.5]), 1)      # scores 0.6, 0.5
    >>> run.masks.tolist(), round(run.objective, 12)           # 0.5²·H_22
    ([[True, False]], 0.25)
    """
    H, W0 = check_layer(H, W0)
    k, nm, box_factor = prune_budget(H, W0, k, density, nm, box_factor)
    return _wanda(H, W0, k, nm, refit=refit, box_factor=box_factor)


def _wanda(H: np.ndarray, W0: np.ndarray, k: int, nm: tuple[int, int] | None, *,
           refit: bool, box_factor: float | None) -> LayerRun:
    t0 = time.perf_counter()
    masks = wanda_masks(H, W0, k, nm)
    W = unboxed_refit_rows(H, W0, masks) if refit else np.where(masks, W0, 0.0)
    info = {"k": k, "nm": list(nm) if nm else None, "refit": bool(refit)}
    return prune_run("wanda-refit" if refit else "wanda", H, W0, W, masks, box_factor, t0,
                     info)


def wanda(problem: PruneProblem, *, time_limit: float | None = None) -> SolveResult:
    """Wanda on one channel (registry method ``wanda``; ``time_limit`` unused).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import PruneProblem
    >>> p = PruneProblem(np.diag([1.0, 9.0, 1.0, 1.0]), np.array([0.4, 0.2, 0.5, 0.1]),
    ...                  nm=(1, 2))
    >>> wanda(p).mask.tolist()
    [False, True, True, False]
    """
    return _one(problem, refit=False)


def wanda_refit(problem: PruneProblem, *, time_limit: float | None = None) -> SolveResult:
    """Wanda's mask with an exact refit of the kept weights (registry ``wanda-refit``)."""
    return _one(problem, refit=True)


def _one(problem: PruneProblem, *, refit: bool) -> SolveResult:
    return _wanda(problem.H, problem.w0[None, :], problem.k, problem.nm, refit=refit,
                  box_factor=problem.box_factor).results()[0]
