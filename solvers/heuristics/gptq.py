"""GPTQ: quantize the inputs one after another, feeding each rounding error back through ``H⁻¹``.

Frantar, Ashkboos, Hoefler & Alistarh, *GPTQ: Accurate Post-Training Quantization for Generative
Pre-trained Transformers*, ICLR 2023 (arXiv 2210.17323), Algorithm 1.

With ``F`` the inputs not yet quantized, quantizing input ``q`` to ``Q(w_q)`` and re-optimising
the rest is the OBS update ``δ_F = −(w_q − Q(w_q)) / [H_F⁻¹]_qq · (H_F⁻¹)_{:,q}``. GPTQ takes the
inputs in a fixed order and reads every ``H_F⁻¹`` row it needs from one factorisation: with
``H⁻¹ = UᵀU`` (``U`` the upper Cholesky factor of the inverse of the damped ``H``), the row of
``H_F⁻¹`` for the first remaining input ``q`` is ``U_qq·U_{q,q:}``, so the update is::

    err = (w_q − Q(w_q)) / U_qq,     w_{q:} −= err · U_{q,q:}

Updates are applied lazily: inside a block of ``block_size`` columns at once, to the columns after
the block by one matrix product ``W[:, i2:] −= Err · U[i1:i2, i2:]`` (the result is the same as
column by column, up to rounding). Options, as the reference implementation:

* ``damp`` (default 0.01): ``H + damp·mean(diag H)·I`` before inverting;
* ``act_order``: inputs in decreasing ``diag(H)`` (the "activation order" heuristic);
* dead inputs (``H_ii = 0``) get ``H_ii = 1`` and weight 0 (quantized to 0).

The objective is the exact error on the undamped ``H``. ``Q`` is round-to-nearest on the signed
grid with clipping (``zmin ≤ z ≤ zmax``), so weights pushed out of range are clipped.
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
    check_positive_int,
    damped_hessian,
    inverse_cholesky,
    quant_run,
)


def gptq_layer(
    H: Any,
    W0: Any,
    scale: float | np.ndarray,
    bits: int,
    *,
    damp: float = 0.01,
    block_size: int = 128,
    act_order: bool = False,
) -> LayerRun:
    """GPTQ on every channel of a layer with a shared ``H``.

    Parameters
    ----------
    H : (n, n) array_like
        Shared Hessian ``XᵀX``.
    W0 : (C, n) or (n,) array_like
        Original weights.
    scale : float or (C,) array_like
        Grid step, per tensor or per channel.
    bits : int
        Bit width; codes in ``[-2^(bits-1), 2^(bits-1) - 1]``.
    damp : float
        Damping as a fraction of the mean diagonal of ``H`` (GPTQ's ``percdamp``), ``>= 0``.
    block_size : int
        Columns per lazy-update block (the result does not depend on it beyond rounding).
    act_order : bool
        Quantize inputs in decreasing ``diag(H)`` instead of their natural order.

    Returns
    -------
    LayerRun
        ``codes`` (C, n), ``weights``, exact per-channel ``objectives`` on the undamped ``H``;
        ``info`` has ``damp_used`` (raised automatically if ``H + damp`` was singular).

    Examples
    --------
    A 2×2 case worked by hand (``damp=0``): ``w0 = (0.3, 0.4)`` rounds ``w_1`` to 0, the error
    feedback moves ``w_2`` to ``0.4 + 0.3·H_21/H_22 = 0.55``, which rounds to 1.

    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> run = gptq_layer(H, np.array([0.3, 0.4]), 1.0, 4, damp=0.0)
    >>> run.codes.tolist(), round(run.objective, 12)
    ([[0, 1]], 0.54)
    """
    bits = check_bits(bits)
    H, W0 = check_layer(H, W0)
    return _gptq(H, W0, channel_scales(scale, W0.shape[0]), bits, damp=damp,
                 block_size=block_size, act_order=act_order)


def _gptq(
    H: np.ndarray,
    W0: np.ndarray,
    scales: np.ndarray,
    bits: int,
    *,
    damp: float,
    block_size: int,
    act_order: bool,
) -> LayerRun:
    t0 = time.perf_counter()
    damp = check_damp(damp)
    block_size = check_positive_int(block_size, "block_size")
    zmin, zmax = grid_limits(bits)
    C, n = W0.shape
    Hd, dead, mean_diag = damped_hessian(H, damp)
    W = W0.copy()
    W[:, dead] = 0.0
    perm = None
    if act_order:
        perm = np.argsort(-np.diag(Hd), kind="stable")
        W = W[:, perm]
        Hd = Hd[np.ix_(perm, perm)]
    U, damp_used = inverse_cholesky(Hd, mean_diag, damp, "gptq")
    Z = np.zeros((C, n), dtype=np.int64)
    for i1 in range(0, n, block_size):
        i2 = min(i1 + block_size, n)
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros((C, i2 - i1))
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w = W1[:, i]
            z = np.clip(np.rint(w / scales), zmin, zmax)
            Z[:, i1 + i] = z
            err = (w - z * scales) / U1[i, i]
            W1[:, i:] -= np.outer(err, U1[i, i:])
            Err1[:, i] = err
        if i2 < n:
            W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    if perm is not None:
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n)
        Z = Z[:, inv]
    return quant_run("gptq", H, W0, Z, scales, t0,
                     {"bits": bits, "damp": damp, "damp_used": damp_used,
                      "block_size": block_size, "act_order": bool(act_order),
                      "dead_inputs": int(dead.sum())})


def gptq(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    damp: float = 0.01,
    block_size: int = 128,
    act_order: bool = False,
) -> SolveResult:
    """GPTQ on one channel (registry method ``gptq``); see :func:`gptq_layer` for the options.

    ``time_limit`` is not used (GPTQ is one pass, O(n³) for the factorisation).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import QuantProblem
    >>> p = QuantProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([0.3, 0.4]), scale=1.0,
    ...                  bits=4)
    >>> r = gptq(p, damp=0.0)
    >>> r.codes.tolist(), round(r.objective, 12), r.lower_bound
    ([0, 1], 0.54, None)
    """
    return _gptq(problem.H, problem.w0[None, :], np.array([problem.scale]), problem.bits,
                 damp=damp, block_size=block_size, act_order=act_order).results()[0]
