"""OBQ: quantize greedily the weight whose rounding costs least, with exact OBS updates.

Frantar & Alistarh, *Optimal Brain Compression: A Framework for Accurate Post-Training
Quantization and Pruning*, NeurIPS 2022 (arXiv 2208.11580), Algorithm 3 (OBQ).

Each step, over the inputs ``F`` not yet quantized, with ``H_F⁻¹`` the inverse Hessian restricted
to them::

    q      = argmin_{i∈F} (Q(w_i) − w_i)² / [H_F⁻¹]_ii          (least error increase)
    w_F   −= (w_q − Q(w_q)) / [H_F⁻¹]_qq · (H_F⁻¹)_{:,q},   w_q = Q(w_q)
    H_F⁻¹ ← H_F⁻¹ − (H_F⁻¹)_{:,q} (H_F⁻¹)_{q,:} / [H_F⁻¹]_qq     (removes row and column q)

which is O(n³/3) per channel (each channel carries its own ``H_F⁻¹``, updated on the remaining
block only, in the compiled kernel :func:`solvers.heuristics.kernels.obq_steps`).
As the reference implementation:

* ``H`` is inverted **undamped** by default (``damp = 0``); if it is singular a small damping is
  added automatically (``info["damp_used"]``);
* **outliers**: when some remaining weight lies outside the grid's range by more than half a
  step (``(w − Q(w))² > s²/4``), the one with the largest rounding error is quantized first
  (``outlier=False`` switches this off);
* dead inputs (``H_ii = 0``) get weight 0.

With ``time_limit``, once the time is up the remaining inputs are quantized in their natural
order, still with the exact updates (GPTQ-style); the message says so.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..problem import QuantProblem, grid_limits
from ..result import SolveResult
from ._layer import (
    LayerRun,
    channel_scales,
    check_bits,
    check_damp,
    check_layer,
    damped_hessian,
    inverse,
    quant_run,
)
from .kernels import obq_steps

#: Greedy steps between two looks at the clock.
STEPS_PER_CALL = 64


def obq_layer(
    H: Any,
    W0: Any,
    scale: float | np.ndarray,
    bits: int,
    *,
    damp: float = 0.0,
    outlier: bool = True,
    time_limit: float | None = None,
) -> LayerRun:
    """OBQ on every channel of a layer with a shared ``H``.

    Parameters
    ----------
    H, W0, scale, bits : as in :func:`solvers.heuristics.gptq.gptq_layer`.
    damp : float
        Damping as a fraction of the mean diagonal (default 0: the exact inverse).
    outlier : bool
        Quantize out-of-range weights first, as the reference does.
    time_limit : float, optional
        Seconds for the whole layer; afterwards the remaining inputs go in natural order.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> obq_layer(H, np.array([0.3, 0.4]), 1.0, 4).codes.tolist()
    [[0, 1]]
    """
    bits = check_bits(bits)
    H, W0 = check_layer(H, W0)
    return _obq(H, W0, channel_scales(scale, W0.shape[0]), bits, damp=damp, outlier=outlier,
                time_limit=time_limit)


def _obq(
    H: np.ndarray,
    W0: np.ndarray,
    scales: np.ndarray,
    bits: int,
    *,
    damp: float,
    outlier: bool,
    time_limit: float | None,
) -> LayerRun:
    t0 = time.perf_counter()
    damp = check_damp(damp)
    zmin, zmax = grid_limits(bits)
    C, n = W0.shape
    Hd, dead, mean_diag = damped_hessian(H, damp)
    Hinv0, damp_used = inverse(Hd, mean_diag, damp, "obq")
    floor_d = 1e-300 * max(mean_diag, 1e-300)
    W = W0.copy()
    W[:, dead] = 0.0
    Z = np.zeros((C, n), dtype=np.int64)
    time_limited = False
    for c in range(C):
        w = W[c].copy()
        Hinv = Hinv0.copy()
        act = np.arange(n, dtype=np.int64)
        m = n
        while m > 0:
            greedy = not time_limited
            if greedy and time_limit is not None and time.perf_counter() - t0 > time_limit:
                time_limited, greedy = True, False
            m = obq_steps(w, Hinv, act, m, Z[c], float(scales[c]), float(zmin), float(zmax),
                          bool(outlier), greedy, STEPS_PER_CALL if greedy else m, floor_d)
    message = ""
    if time_limited:
        message = ("time limit reached: the remaining inputs were quantized in natural order "
                   "(exact updates) instead of the greedy one")
    return quant_run("obq", H, W0, Z, scales, t0,
                     {"bits": bits, "damp": damp, "damp_used": damp_used,
                      "outlier": bool(outlier), "dead_inputs": int(dead.sum()),
                      "time_limited": time_limited}, message)


def obq(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    damp: float = 0.0,
    outlier: bool = True,
) -> SolveResult:
    """OBQ on one channel (registry method ``obq``); see :func:`obq_layer`.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import QuantProblem
    >>> p = QuantProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([0.3, 0.4]), scale=1.0,
    ...                  bits=4)
    >>> obq(p).codes.tolist()
    [0, 1]
    """
    return _obq(problem.H, problem.w0[None, :], np.array([problem.scale]), problem.bits,
                damp=damp, outlier=outlier, time_limit=time_limit).results()[0]
