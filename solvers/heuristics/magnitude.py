"""Magnitude pruning: keep the ``k`` largest ``|w0_i|``, with or without a least-squares refit.

* ``magnitude``: the kept weights keep their values ``w0_i`` (the classic baseline; it ignores
  ``H`` entirely).
* ``magnitude-refit``: the kept weights are then re-optimised exactly for the fixed mask,
  ``H_KK w_K = (H w0)_K`` (:func:`solvers.prune.refit.unboxed_refit`, the one refit; exact also
  for rank-deficient ``H``).

With an N:M pattern the ``N`` largest of every group of ``M`` consecutive inputs are kept. Ties in
``|w0|`` go to the lower index. A box (``box_factor``) is respected by clipping the kept weights
to ``±box_factor·max|w0|`` (which only matters for the refit or for ``box_factor < 1``); the
message says so.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..problem import PruneProblem
from ..prune.refit import unboxed_refit_rows
from ..result import SolveResult
from ._layer import LayerRun, check_layer, prune_budget, prune_run


def magnitude_masks(W0: np.ndarray, k: int, nm: tuple[int, int] | None = None, *,
                    alive: np.ndarray | None = None) -> np.ndarray:
    """Boolean (C, n) masks keeping the ``k`` largest ``|w0|`` per row (or ``N`` per group).

    ``alive`` (n,): inputs that may be kept; the others never are, so a row may keep fewer than
    ``k`` (the exact solver's incumbents pass the inputs with ``H_ii > 0``).

    Examples
    --------
    >>> import numpy as np
    >>> magnitude_masks(np.array([[0.1, -0.9, 0.5, 0.2]]), 2).tolist()
    [[False, True, True, False]]
    >>> magnitude_masks(np.array([[0.1, -0.9, 0.5, 0.2]]), 2, nm=(1, 2)).tolist()
    [[False, True, True, False]]
    >>> magnitude_masks(np.array([0.1, -0.9, 0.5, 0.2]), 2,
    ...                 alive=np.array([True, False, True, True])).tolist()
    [[False, False, True, True]]
    """
    W0 = np.atleast_2d(W0)
    C, n = W0.shape
    score = np.abs(W0) if alive is None else np.where(alive, np.abs(W0), -np.inf)
    N, M = nm if nm is not None else (k, n)
    order = np.argsort(-score.reshape(C, n // M, M), axis=2, kind="stable")[:, :, :N]
    keep = (order + (np.arange(n // M) * M)[None, :, None]).reshape(C, -1)
    rows = np.arange(C)[:, None]
    masks = np.zeros((C, n), dtype=bool)
    masks[rows, keep] = np.isfinite(score[rows, keep])
    return masks


def magnitude_layer(
    H: Any,
    W0: Any,
    k: int | None = None,
    *,
    density: float | None = None,
    nm: tuple[int, int] | None = None,
    refit: bool = False,
    box_factor: float | None = None,
) -> LayerRun:
    """Magnitude pruning of every channel of a layer with a shared ``H``.

    Parameters
    ----------
    H : (n, n) array_like
        Shared Hessian (the refit and the objectives use it).
    W0 : (C, n) or (n,) array_like
        Original weights.
    k : int, optional
        Weights kept per channel (or give ``density``, or ``nm``).
    density : float, optional
        Fraction kept, ``k = round(density·n)``.
    nm : (N, M), optional
        Keep ``N`` of every ``M`` consecutive inputs.
    refit : bool
        Re-optimise the kept weights exactly (``magnitude-refit``).
    box_factor : float, optional
        Clip kept weights to ``±box_factor·max|w0|``.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> magnitude_layer(H, np.array([1.0, 0.5]), 1).objective
    0.5
    >>> magnitude_layer(H, np.array([1.0, 0.5]), 1, refit=True).weights.round(12).tolist()
    [[1.25, 0.0]]
    """
    H, W0 = check_layer(H, W0)
    k, nm, box_factor = prune_budget(H, W0, k, density, nm, box_factor)
    return _magnitude(H, W0, k, nm, refit=refit, box_factor=box_factor)


def _magnitude(H, W0, k, nm, *, refit, box_factor) -> LayerRun:
    t0 = time.perf_counter()
    masks = magnitude_masks(W0, k, nm)
    W = unboxed_refit_rows(H, W0, masks) if refit else np.where(masks, W0, 0.0)
    info = {"k": k, "nm": list(nm) if nm else None, "refit": bool(refit)}
    return prune_run("magnitude-refit" if refit else "magnitude", H, W0, W, masks, box_factor,
                     t0, info)


def magnitude(problem: PruneProblem, *, time_limit: float | None = None) -> SolveResult:
    """Magnitude pruning of one channel, kept weights unchanged (registry ``magnitude``).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import PruneProblem
    >>> p = PruneProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([1.0, 0.5]), k=1)
    >>> r = magnitude(p)
    >>> r.mask.tolist(), r.objective
    ([True, False], 0.5)
    """
    return _magnitude(problem.H, problem.w0[None, :], problem.k, problem.nm, refit=False,
                      box_factor=problem.box_factor).results()[0]


def magnitude_refit(problem: PruneProblem, *, time_limit: float | None = None) -> SolveResult:
    """Magnitude pruning of one channel with an exact refit (registry ``magnitude-refit``).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import PruneProblem
    >>> p = PruneProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([1.0, 0.5]), k=1)
    >>> r = magnitude_refit(p)
    >>> r.weights.round(12).tolist(), round(r.objective, 12)
    ([1.25, 0.0], 0.375)
    """
    return _magnitude(problem.H, problem.w0[None, :], problem.k, problem.nm, refit=True,
                      box_factor=problem.box_factor).results()[0]
