"""OBS greedy: remove the weight whose removal costs least, update the rest exactly, repeat.

Hassibi & Stork, *Second order derivatives for network pruning: Optimal Brain Surgeon*, NIPS
1993; applied one weight at a time with exact inverse updates as in Frantar & Alistarh, *Optimal
Brain Compression*, NeurIPS 2022 (ExactOBS).

With ``F`` the weights still kept and ``H_F⁻¹`` the inverse Hessian restricted to them, each of
the ``n − k`` steps does::

    q      = argmin_{i∈F} w_i² / [H_F⁻¹]_ii                  (exact error increase)
    w_F   −= w_q / [H_F⁻¹]_qq · (H_F⁻¹)_{:,q},   w_q = 0
    H_F⁻¹ ← H_F⁻¹ − (H_F⁻¹)_{:,q} (H_F⁻¹)_{q,:} / [H_F⁻¹]_qq

For an invertible ``H`` the error increases are exact (no damping). A singular ``H`` gets the
smallest damping from ``1e-10·mean(diag H)`` upward that makes it invertible, as an algorithmic
device only (``info["damp_used"]``); dead inputs (``H_ii = 0``) get weight 0 and are removed first
(free). At the end the kept weights are refit exactly on the undamped ``H``
(:func:`solvers.prune.refit.unboxed_refit`; ``refit=False`` keeps the OBS-updated values) and
the objective is recomputed on the undamped ``H``. With an N:M pattern a weight can only be
removed from a group that still keeps more than ``N``. About ``n³/3 − k³/3`` operations per
channel (the update touches the remaining block only; compiled kernel
:func:`solvers.heuristics.kernels.obs_steps`).
A box is respected by clipping the kept weights (message says so).
"""

from __future__ import annotations

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
    damped_hessian,
    inverse,
    prune_budget,
    prune_run,
)
from .kernels import obs_steps


def obs_layer(
    H: Any,
    W0: Any,
    k: int | None = None,
    *,
    density: float | None = None,
    nm: tuple[int, int] | None = None,
    refit: bool = True,
    damp: float = 0.0,
    box_factor: float | None = None,
) -> LayerRun:
    """OBS greedy on every channel of a layer with a shared ``H``.

    Parameters
    ----------
    H, W0, k, density, nm, box_factor : as in
        :func:`solvers.heuristics.magnitude.magnitude_layer`.
    refit : bool
        Final exact refit of the kept weights on the undamped ``H`` (default True).
    damp : float
        Damping (fraction of the mean diagonal) for the greedy phase; default 0 (exact).

    Examples
    --------
    Worked by hand in the tests: ``H = [[1, .9, 0], [.9, 1, 0], [0, 0, 1]]``,
    ``w0 = (1, 1.1, 0.8)``, ``k = 2``: the costs ``w_i²/[H⁻¹]_ii`` are ``0.19, 0.2299, 0.64``,
    so OBS removes ``w_1`` (error 0.19) where magnitude removes ``w_3`` (error 0.64).

    >>> import numpy as np
    >>> H = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> run = obs_layer(H, np.array([1.0, 1.1, 0.8]), 2)
    >>> run.masks.tolist(), round(run.objective, 12)
    ([[False, True, True]], 0.19)
    """
    H, W0 = check_layer(H, W0)
    k, nm, box_factor = prune_budget(H, W0, k, density, nm, box_factor)
    return _obs(H, W0, k, nm, refit=refit, damp=damp, box_factor=box_factor)


def _obs(H, W0, k, nm, *, refit, damp, box_factor) -> LayerRun:
    t0 = time.perf_counter()
    damp = check_damp(damp)
    C, n = W0.shape
    Hd, dead, mean_diag = damped_hessian(H, damp)
    Hinv0, damp_used = inverse(Hd, mean_diag, damp, "obs")
    W = W0.copy()
    W[:, dead] = 0.0
    masks = np.ones((C, n), dtype=bool)
    if nm is not None:
        N, M = nm
        group = np.arange(n, dtype=np.int64) // M
        left0 = np.full(n // M, M - N, dtype=np.int64)
    else:
        group = np.zeros(n, dtype=np.int64)
        left0 = np.array([n - k], dtype=np.int64)
    floor_d = 1e-300 * max(mean_diag, 1e-300)
    for c in range(C):
        w = W[c].copy()
        Hinv = Hinv0.copy()
        act = np.arange(n, dtype=np.int64)
        m = obs_steps(w, Hinv, act, n, group, left0.copy(), n - k, floor_d)
        masks[c] = False
        masks[c, act[:m]] = True
        W[c] = np.where(masks[c], w, 0.0)
    if refit:
        W = unboxed_refit_rows(H, W0, masks)
    info = {"k": k, "nm": list(nm) if nm else None, "refit": bool(refit), "damp": damp,
            "damp_used": damp_used, "dead_inputs": int(dead.sum())}
    return prune_run("obs", H, W0, W, masks, box_factor, t0, info)


def obs_greedy(
    problem: PruneProblem,
    *,
    time_limit: float | None = None,
    refit: bool = True,
    damp: float = 0.0,
) -> SolveResult:
    """OBS greedy on one channel (registry method ``obs``); see :func:`obs_layer`.

    ``time_limit`` is not used (O((n − k)·n²), no search).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import PruneProblem
    >>> p = PruneProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([1.0, 0.5]), k=1)
    >>> r = obs_greedy(p)
    >>> r.weights.round(12).tolist(), round(r.objective, 12)
    ([1.25, 0.0], 0.375)
    """
    return _obs(problem.H, problem.w0[None, :], problem.k, problem.nm, refit=refit, damp=damp,
                box_factor=problem.box_factor).results()[0]
