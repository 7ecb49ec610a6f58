"""AdaRound: learn for every weight whether to round up or down, on the layer objective.

Nagel, Amjad, van Baalen, Louizos & Blankevoort, *Up or Down? Adaptive Rounding for
Post-Training Quantization*, ICML 2020 (arXiv 2004.10568).

Each weight is ``w = s·clip(⌊w0/s⌋ + h(V), zmin, zmax)`` with the rectified sigmoid
``h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1)``, ``ζ = 1.1``, ``γ = −0.1``. ``V`` minimises, by Adam::

    (w − w0)ᵀ H (w − w0) / (s²·mean(diag H))  +  λ Σ_i (1 − |2h(V_i) − 1|^β)

The first term is the layer's output error for this channel (exactly: no data replay is needed
for a linear layer), measured in units of one grid step on an average input so that ``λ`` does
not depend on the units of ``H`` or the weights. The paper's ``λ = 0.01`` multiplies a loss in
the network's own units (output MSE), which have no counterpart here; in these normalised units
``λ = 1`` (the default, with ``lr = 0.03`` and 2000 full-gradient Adam steps) decided every
rounding and did best on the synthetic and MobileNetV2 problems we tried (see
docs/heuristics.md); a weaker ``λ`` leaves many ``h`` undecided near ½ at the end
(``info["undecided_fraction"]``). The regulariser pushes ``h`` to 0 or 1; ``β``
is annealed linearly from 20 to 2 after a warm-up (the first ``warmup`` fraction of the
iterations, without regulariser), as the paper's implementation. ``V`` starts where
``h(V) = w0/s − ⌊w0/s⌋`` (the continuous weight itself); at the end every weight is rounded
hard, up where ``V ≥ 0`` (``h ≥ ½``), and clipped to the grid.

All channels are optimised together (one (C, n) array, one matrix product per iteration).
The method is deterministic (the objective is exact, there are no mini-batches), so it needs
no seed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..problem import ProblemError, QuantProblem, grid_limits
from ..result import SolveResult
from ._layer import (
    LayerRun,
    channel_scales,
    check_bits,
    check_layer,
    check_positive_int,
    quant_run,
)
from .kernels import adaround_adam, adaround_residual

ZETA = 1.1
GAMMA = -0.1
#: Up to this many weights (C·n) a step runs in the fused compiled kernels
#: (:mod:`solvers.heuristics.kernels`); above, numpy's vectorised element-wise ops are faster.
FUSED_MAX_ENTRIES = 16384


def rectified_sigmoid(V: np.ndarray) -> np.ndarray:
    """``h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1)``."""
    return np.clip(_sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _sigmoid(V: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * V))


def initial_v(rest: np.ndarray) -> np.ndarray:
    """``V`` with ``h(V) = rest`` for ``rest ∈ [0, 1)``: ``−log((ζ − γ)/(rest − γ) − 1)``."""
    return -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0)


def beta_schedule(t: int, iters: int, warmup: float, beta: tuple[float, float]) -> float | None:
    """``β`` at iteration ``t`` (``None`` during warm-up: no regulariser)."""
    start = warmup * iters
    if t < start:
        return None
    rel = (t - start) / max(iters - start, 1.0)
    return beta[1] + (beta[0] - beta[1]) * max(0.0, 1.0 - rel)


def adaround_layer(
    H: Any,
    W0: Any,
    scale: float | np.ndarray,
    bits: int,
    *,
    iters: int = 2000,
    lr: float = 3e-2,
    reg_weight: float = 1.0,
    beta: tuple[float, float] = (20.0, 2.0),
    warmup: float = 0.2,
    time_limit: float | None = None,
) -> LayerRun:
    """AdaRound on every channel of a layer with a shared ``H``.

    Parameters
    ----------
    H, W0, scale, bits : as in :func:`solvers.heuristics.gptq.gptq_layer`.
    iters : int
        Adam iterations (the paper used 10 000 mini-batch steps; with the exact objective far
        fewer suffice).
    lr : float
        Adam learning rate on ``V``.
    reg_weight : float
        ``λ``, the weight of the rounding regulariser.
    beta : (float, float)
        Start and end of the linear ``β`` annealing.
    warmup : float
        Fraction of the iterations without regulariser, in ``[0, 1)``.
    time_limit : float, optional
        Stop iterating after this many seconds and round where ``V`` is (message says so).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> run = adaround_layer(H, np.array([0.3, 0.4]), 1.0, 4, iters=300)
    >>> run.codes.tolist(), round(run.objective, 9)
    ([[0, 1]], 0.54)
    """
    bits = check_bits(bits)
    H, W0 = check_layer(H, W0)
    return _adaround(H, W0, channel_scales(scale, W0.shape[0]), bits, iters=iters, lr=lr,
                     reg_weight=reg_weight, beta=beta, warmup=warmup, time_limit=time_limit)


def _numpy_step(V, F, s, zmin, zmax, W0, H, grad_scale, reg_weight, bt, m, v, lr, b1, b2, eps,
                t):
    """The same Adam step as the fused kernels, with numpy's vectorised element-wise ops (faster
    than the compiled loop once the (C, n) block is large)."""
    sig = _sigmoid(V)
    raw = sig * (ZETA - GAMMA) + GAMMA
    h = np.clip(raw, 0.0, 1.0)
    x = F + h
    D = np.clip(x, zmin, zmax) * s - W0
    g = (D @ H) * grad_scale * ((x >= zmin) & (x <= zmax))
    if bt is not None and reg_weight > 0:
        u = 2.0 * h - 1.0
        g -= reg_weight * 2.0 * bt * np.abs(u) ** (bt - 1.0) * np.sign(u)
    g *= ((ZETA - GAMMA) * sig * (1.0 - sig)) * ((raw > 0.0) & (raw < 1.0))
    m *= b1
    m += (1.0 - b1) * g
    v *= b2
    v += (1.0 - b2) * g * g
    V -= lr * (m / (1.0 - b1**t)) / (np.sqrt(v / (1.0 - b2**t)) + eps)


def _check_options(iters, lr, reg_weight, beta, warmup):
    iters = check_positive_int(iters, "iters")
    lr, reg_weight, warmup = float(lr), float(reg_weight), float(warmup)
    if not np.isfinite(lr) or lr <= 0:
        raise ProblemError(f"lr must be > 0, got {lr!r}")
    if not np.isfinite(reg_weight) or reg_weight < 0:
        raise ProblemError(f"reg_weight must be >= 0, got {reg_weight!r}")
    if not 0.0 <= warmup < 1.0:
        raise ProblemError(f"warmup must lie in [0, 1), got {warmup!r}")
    try:
        b0, b1 = (float(b) for b in beta)
    except (TypeError, ValueError):
        raise ProblemError(f"beta must be a pair (start, end), got {beta!r}") from None
    if not (b0 >= b1 >= 1.0):
        raise ProblemError(f"beta must satisfy start >= end >= 1, got {beta!r}")
    return iters, lr, reg_weight, (b0, b1), warmup


def _adaround(H, W0, scales, bits, *, iters, lr, reg_weight, beta, warmup, time_limit):
    t0 = time.perf_counter()
    iters, lr, reg_weight, beta, warmup = _check_options(iters, lr, reg_weight, beta, warmup)
    zmin, zmax = grid_limits(bits)
    s = scales[:, None]
    mean_diag = float(np.mean(np.diag(H)))
    unit = s[:, 0] ** 2 * (mean_diag if mean_diag > 0 else 1.0)  # (C,)
    X = W0 / s
    F = np.floor(X)
    V = initial_v(X - F)
    m = np.zeros_like(V)
    v = np.zeros_like(V)
    b1, b2, eps = 0.9, 0.999, 1e-8
    grad_scale = np.ascontiguousarray(2.0 / unit * s[:, 0])  # d(rec)/dw · dw/dx per channel
    sv = np.ascontiguousarray(s[:, 0])
    D = np.empty_like(V)
    fused = V.size <= FUSED_MAX_ENTRIES
    done = 0
    stopped = False
    for t in range(iters):
        if time_limit is not None and (t & 15) == 0 and time.perf_counter() - t0 > time_limit:
            stopped = True
            break
        bt = beta_schedule(t, iters, warmup, beta)
        if fused:
            adaround_residual(V, F, sv, float(zmin), float(zmax), W0, ZETA, GAMMA, D)
            adaround_adam(V, D @ H, F, grad_scale, float(zmin), float(zmax), ZETA, GAMMA,
                          reg_weight, -1.0 if bt is None else bt, m, v, lr, b1, b2, eps,
                          float(t + 1))
        else:
            _numpy_step(V, F, s, zmin, zmax, W0, H, grad_scale[:, None], reg_weight, bt, m, v,
                        lr, b1, b2, eps, t + 1)
        done = t + 1
    Z = np.clip(F + (V >= 0.0), zmin, zmax).astype(np.int64)
    h_final = rectified_sigmoid(V)
    undecided = float(np.mean((h_final > 0.01) & (h_final < 0.99)))
    message = f"time limit reached after {done} of {iters} iterations" if stopped else ""
    return quant_run("adaround", H, W0, Z, scales, t0,
                     {"bits": bits, "iters": iters, "iters_done": done, "lr": lr,
                      "reg_weight": reg_weight, "beta": list(beta), "warmup": warmup,
                      "undecided_fraction": undecided}, message)


def adaround(
    problem: QuantProblem,
    *,
    time_limit: float | None = None,
    iters: int = 2000,
    lr: float = 3e-2,
    reg_weight: float = 1.0,
    beta: tuple[float, float] = (20.0, 2.0),
    warmup: float = 0.2,
) -> SolveResult:
    """AdaRound on one channel (registry method ``adaround``); see :func:`adaround_layer`.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import QuantProblem
    >>> p = QuantProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([0.3, 0.4]), scale=1.0,
    ...                  bits=4)
    >>> adaround(p, iters=300).codes.tolist()
    [0, 1]
    """
    return _adaround(problem.H, problem.w0[None, :], np.array([problem.scale]), problem.bits,
                     iters=iters, lr=lr, reg_weight=reg_weight, beta=beta, warmup=warmup,
                     time_limit=time_limit).results()[0]
