"""SparseGPT: choose the mask block by block and compensate each pruned weight through ``H⁻¹``.

Frantar & Alistarh, *SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot*,
ICML 2023 (arXiv 2301.00774), Algorithm 1.

The inputs are visited in order, like GPTQ, with ``H⁻¹ = UᵀU`` (``U`` the upper Cholesky factor
of the inverse of the damped ``H``). Before each block of ``block_size`` columns the mask of the
block is chosen *adaptively* on the current (already updated) weights by the OBS saliency
``w_q² / U_qq²`` (``U_qq² = [H_F⁻¹]_qq``); then column by column each pruned weight is set to 0
and its error fed forward::

    err = (w_q − m_q·w_q) / U_qq,     w_{q:} −= err · U_{q,q:}

with the lazy block update of the later columns. N:M: the ``M − N`` least salient of each group
of ``M`` are pruned when the group is reached (``block_size`` is rounded down to a multiple of
``M``, at least ``M``).

One deviation from the reference, forced by the per-channel problem: the reference picks one
threshold per block over *all* rows (the layer keeps the target density on average, rows differ);
here each row keeps exactly ``k`` weights, so each row prunes its own least salient weights, the
same number in every block (the budget ``n − k`` spread over the blocks in proportion to their
width, by cumulative rounding). Options as the reference: ``damp`` (default 0.01 of the mean
diagonal), ``block_size`` (default 128); dead inputs get weight 0. ``refit=True`` adds an exact
least-squares refit of the kept weights on the undamped ``H`` (not part of SparseGPT; off by
default). A box is respected by clipping the kept weights (message says so). The objective is
the exact error on the undamped ``H``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..problem import PruneProblem
from ..prune.refit import unboxed_refit_rows
from ..result import SolveResult
from ._layer import (
    LayerRun,
    check_damp,
    check_layer,
    check_positive_int,
    damped_hessian,
    inverse_cholesky,
    prune_budget,
    prune_run,
)


def sparsegpt_layer(
    H: Any,
    W0: Any,
    k: int | None = None,
    *,
    density: float | None = None,
    nm: tuple[int, int] | None = None,
    block_size: int = 128,
    damp: float = 0.01,
    refit: bool = False,
    box_factor: float | None = None,
) -> LayerRun:
    """SparseGPT on every channel of a layer with a shared ``H``.

    Parameters
    ----------
    H, W0, k, density, nm, box_factor : as in
        :func:`solvers.heuristics.magnitude.magnitude_layer`.
    block_size : int
        Columns per block: the mask of a block is chosen when the block is reached.
    damp : float
        Damping as a fraction of the mean diagonal of ``H``.
    refit : bool
        Exact refit of the kept weights afterwards (not part of the reference method).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> run = sparsegpt_layer(H, np.array([1.0, 0.5]), 1, damp=0.0)
    >>> run.masks.tolist(), round(run.objective, 12)
    ([[True, False]], 0.5)
    """
    H, W0 = check_layer(H, W0)
    k, nm, box_factor = prune_budget(H, W0, k, density, nm, box_factor)
    return _sparsegpt(H, W0, k, nm, block_size=block_size, damp=damp, refit=refit,
                      box_factor=box_factor)


def _sparsegpt(H, W0, k, nm, *, block_size, damp, refit, box_factor) -> LayerRun:
    t0 = time.perf_counter()
    damp = check_damp(damp)
    block_size = check_positive_int(block_size, "block_size")
    C, n = W0.shape
    if nm is not None:
        N, M = nm
        block_size = max(M, block_size // M * M)
    Hd, dead, mean_diag = damped_hessian(H, damp)
    U, damp_used = inverse_cholesky(Hd, mean_diag, damp, "sparsegpt")
    W = W0.copy()
    W[:, dead] = 0.0
    pruned = np.zeros((C, n), dtype=bool)
    rows = np.arange(C)[:, None]
    target = n - k
    removed = 0
    for i1 in range(0, n, block_size):
        i2 = min(i1 + block_size, n)
        count = i2 - i1
        W1 = W[:, i1:i2].copy()
        Q1 = np.zeros_like(W1)
        Err1 = np.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        d1 = np.diag(U1)
        mask1 = np.zeros((C, count), dtype=bool)
        if nm is None:
            r = math.floor(target * i2 / n + 0.5) - removed
            removed += r
            if r > 0:
                scores = W1**2 / d1[None, :] ** 2
                idx = np.argsort(scores, axis=1, kind="stable")[:, :r]
                mask1[rows, idx] = True
        for i in range(count):
            if nm is not None and i % M == 0 and M > N:
                scores = W1[:, i:i + M] ** 2 / d1[None, i:i + M] ** 2
                idx = np.argsort(scores, axis=1, kind="stable")[:, :M - N]
                mask1[rows, i + idx] = True
            w = W1[:, i]
            q = np.where(mask1[:, i], 0.0, w)
            Q1[:, i] = q
            err = (w - q) / U1[i, i]
            W1[:, i:] -= np.outer(err, U1[i, i:])
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        if i2 < n:
            W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    masks = ~pruned
    if refit:
        W = unboxed_refit_rows(H, W0, masks)
    info = {"k": k, "nm": list(nm) if nm else None, "block_size": block_size, "damp": damp,
            "damp_used": damp_used, "refit": bool(refit), "dead_inputs": int(dead.sum())}
    return prune_run("sparsegpt", H, W0, W, masks, box_factor, t0, info)


def sparsegpt(
    problem: PruneProblem,
    *,
    time_limit: float | None = None,
    block_size: int = 128,
    damp: float = 0.01,
    refit: bool = False,
) -> SolveResult:
    """SparseGPT on one channel (registry method ``sparsegpt``); see :func:`sparsegpt_layer`.

    ``time_limit`` is not used (one pass, O(n³) for the factorisation).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import PruneProblem
    >>> p = PruneProblem(np.eye(4), np.array([0.1, -0.9, 0.5, 0.2]), nm=(2, 4))
    >>> sparsegpt(p).mask.tolist()
    [False, True, True, False]
    """
    return _sparsegpt(problem.H, problem.w0[None, :], problem.k, problem.nm,
                      block_size=block_size, damp=damp, refit=refit,
                      box_factor=problem.box_factor).results()[0]
