"""Round to nearest (RTN): every weight to its nearest grid point, independently.

``z_i = clip(rint(w0_i / s), zmin, zmax)`` (ties to even), ``w = s·z``. RTN ignores ``H``
(it is optimal when ``H`` is diagonal); ``H`` only scores the result. The scale ``s`` is the
problem's, or for :func:`rtn_layer` one of the weights-only range choices of
:mod:`solvers.scales`: ``"minmax"`` (largest magnitude on the last positive level) or ``"mse"``
(MSE-optimal on the weights), per tensor or per channel.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..grid import round_to_grid
from ..problem import ProblemError, QuantProblem
from ..result import SolveResult
from ..scales import minmax_scale, mse_scale
from ._layer import LayerRun, channel_scales, check_bits, check_layer, quant_run

SCALE_CHOICES = ("minmax", "mse")


def rtn_layer(
    H: Any,
    W0: Any,
    scale: float | np.ndarray | str,
    bits: int,
    *,
    per_channel: bool = False,
) -> LayerRun:
    """Round every channel of a layer to nearest.

    Parameters
    ----------
    H : (n, n) array_like
        Shared Hessian (only used for the objectives).
    W0 : (C, n) or (n,) array_like
        Original weights.
    scale : float, (C,) array_like, ``"minmax"`` or ``"mse"``
        Grid step per tensor or per channel, or the range choice to compute it from ``W0``.
    bits : int
        Bit width; codes in ``[-2^(bits-1), 2^(bits-1) - 1]``.
    per_channel : bool
        With a string ``scale``: one scale per channel instead of one for the tensor.

    Returns
    -------
    LayerRun
        ``codes`` (C, n), ``weights = scale·codes``, exact ``objectives`` (C,).

    Examples
    --------
    >>> import numpy as np
    >>> run = rtn_layer(np.eye(2), np.array([[0.3, -0.8]]), 0.5, 2)
    >>> run.codes.tolist(), round(run.objective, 6)
    ([[1, -2]], 0.08)
    """
    bits = check_bits(bits)
    H, W0 = check_layer(H, W0)
    return _rtn(H, W0, _resolve_scale(scale, W0, bits, per_channel), bits)


def _resolve_scale(scale: Any, W0: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    C = W0.shape[0]
    if isinstance(scale, str):
        if scale not in SCALE_CHOICES:
            raise ProblemError(f"unknown scale choice {scale!r}; valid: minmax, mse, a number")
        fn = minmax_scale if scale == "minmax" else mse_scale
        if per_channel:
            return channel_scales(fn(W0, bits, per_channel=True), C)
        return channel_scales(fn(W0, bits), C)
    return channel_scales(scale, C)


def _rtn(H: np.ndarray, W0: np.ndarray, scales: np.ndarray, bits: int) -> LayerRun:
    t0 = time.perf_counter()
    codes = round_to_grid(W0, scales[:, None], bits)
    return quant_run("rtn", H, W0, codes, scales, t0, {"bits": bits})


def rtn(problem: QuantProblem, *, time_limit: float | None = None) -> SolveResult:
    """Round to nearest on one channel (registry method ``rtn``; ``time_limit`` unused).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import QuantProblem
    >>> r = rtn(QuantProblem(np.eye(2), np.array([0.3, -0.8]), scale=0.5, bits=2))
    >>> r.codes.tolist(), r.lower_bound
    ([1, -2], None)
    """
    return _rtn(problem.H, problem.w0[None, :], np.array([problem.scale]), problem.bits
                ).results()[0]
