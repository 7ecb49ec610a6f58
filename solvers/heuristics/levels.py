"""Practical methods for any number format: RTN, GPTQ, Wanda and SparseGPT over level sets.

A format gives every input ``j`` of a channel a sorted level set ``L_j`` (its group's scale and
zero point baked in, :class:`solvers.problem.LevelProblem`, :mod:`solvers.formats`). The
methods here are the practical counterparts of the exact level solver:

* **RTN**: every weight to its nearest level (ties to the lower level, as
  :meth:`solvers.formats.FormatLevels.nearest`).
* **GPTQ** over levels: GPTQ's error feedback (:mod:`solvers.heuristics.gptq`) with
  nearest-level rounding in place of the uniform grid's — with ``H⁻¹ = UᵀU`` the upper Cholesky
  factor of the damped inverse, column ``q`` (in the processing order) is rounded to
  ``Q_q(w_q)`` and ``w_{q:} −= (w_q − Q_q(w_q))/U_qq · U_{q,q:}``. With a diagonal ``H`` no
  error reaches another column, so GPTQ is RTN. ``act_order`` processes the inputs in decreasing
  ``diag(H)``. On a :class:`LevelProblem` the levels are fixed per input, i.e. GPTQ's
  *static groups* (scales chosen from ``W0`` before the pass, the default of llm-compressor's
  ``actorder="weight"``); :func:`gptq_format_layer` also runs GPTQ's *dynamic groups* (the
  reference implementation's default: a group's scale is chosen from the already-updated weights
  when the pass reaches the group's first column, in the processing order, so with act-order a
  group is ``G`` consecutive inputs *of that order* and the input-to-group map ``g_idx`` is
  part of the result, as in GPTQ's and llm-compressor's ``actorder="group"``).
* **Wanda** (:mod:`solvers.heuristics.wanda`): keep the largest ``|w0_j|·√H_jj`` per channel
  (``k`` of them, or ``N`` per group of ``M``), then round the kept weights to their nearest
  levels (``wanda``) or run GPTQ over the kept inputs towards their exact refit
  (``wanda-gptq``).
* **Prune, then quantize** (``prune-gptq``): SparseGPT's mask (:mod:`solvers.heuristics.
  sparsegpt`), then the kept weights' exact refit ``w*_S`` on the undamped ``H`` and GPTQ over
  the kept inputs only, on ``H_SS`` towards ``w*_S`` (for ``w`` supported on ``S``,
  ``(w − w0)ᵀH(w − w0) = (w_S − w*_S)ᵀ H_SS (w_S − w*_S) + const``, so that is the true
  objective); the pruned weights stay exactly 0.
* **SparseGPT's joint pass** (``sparsegpt``): SparseGPT (Frantar & Alistarh 2023, §3.4, "joint
  sparsification and quantization") with each kept weight rounded to its nearest level in the
  same pass: the mask of each block of ``block_size`` columns is chosen on the current weights
  by ``w_q²/U_qq²`` (each row the same share of its ``n − k`` pruned weights per block, as
  :mod:`solvers.heuristics.sparsegpt`; N:M: the ``M − N`` least salient of each group when it
  is reached), then column by column ``q = 0`` if pruned, else the nearest level, and the error
  is fed forward.

Every returned weight is one of its input's levels, at most ``k`` are nonzero (N:M respected),
and the objective is the exact error on the undamped ``H`` (the registry functions build their
:class:`~solvers.result.SolveResult` from :meth:`LevelProblem.check_weights`, which refuses
anything else). Options as the reference code: ``damp`` (0.01 of the mean diagonal),
``block_size`` (128); dead inputs (``H_jj = 0``) take the level nearest 0.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from ..problem import LevelProblem, ProblemError
from ..prune.refit import unboxed_refit
from ..result import SolveResult, Status
from ._layer import (
    check_damp,
    check_layer,
    check_positive_int,
    damped_hessian,
    inverse_cholesky,
)
from .magnitude import magnitude_masks
from .wanda import wanda_masks

#: registry ``levels`` methods that need a nonzero limit / that refuse one
SPARSE_ONLY = ("wanda", "wanda-gptq", "prune-gptq", "sparsegpt")
DENSE_ONLY = ("gptq",)


def nearest_rows(w: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per row ``c``, the level of the sorted row ``T[c]`` nearest ``w[c]`` (ties to the lower).

    Examples
    --------
    >>> import numpy as np
    >>> T = np.array([[-1.0, 0.0, 0.5], [-1.0, 0.0, 2.0]])
    >>> nearest_rows(np.array([0.25, 1.0]), T).tolist()
    [0.0, 0.0]
    """
    L = T.shape[1]
    hi = np.minimum(np.sum(T < w[:, None], axis=1), L - 1)
    lo = np.maximum(hi - 1, 0)
    r = np.arange(T.shape[0])
    a, b = T[r, lo], T[r, hi]
    return np.where(np.abs(w - a) <= np.abs(b - w), a, b)


def _order(H: np.ndarray, act_order: bool) -> np.ndarray:
    n = H.shape[0]
    return np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(n)


def _sequential(H: np.ndarray, W0: np.ndarray, T: np.ndarray, *, damp: float,
                block_size: int, act_order: bool = False, k: int | None = None,
                nm: tuple[int, int] | None = None, regroup: Any = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """The GPTQ / SparseGPT pass over level tables ``T`` (C, n, L), in the processing order.

    ``k``/``nm``: SparseGPT's adaptive mask (joint pass); ``regroup(W, cols)``: dynamic groups
    (returns the (C, len(cols), L) tables of ``cols`` from the weights ``W`` at that point).
    Returns the weights (C, n) in the original input order and the run's figures.
    """
    damp = check_damp(damp)
    block_size = check_positive_int(block_size, "block_size")
    C, n = W0.shape
    Hd, dead, mean_diag = damped_hessian(H, damp)
    perm = _order(Hd, act_order)
    W = W0[:, perm].copy()
    W[:, dead[perm]] = 0.0
    T = T[:, perm, :].copy()
    U, damp_used = inverse_cholesky(Hd[np.ix_(perm, perm)], mean_diag, damp, "gptq-levels")
    if nm is not None:
        block_size = max(nm[1], block_size // nm[1] * nm[1])
    rows = np.arange(C)[:, None]
    Q = np.zeros((C, n))
    removed = 0
    for i1 in range(0, n, block_size):
        i2 = min(i1 + block_size, n)
        if regroup is not None:
            T[:, i1:i2] = regroup(W, i1, i2, T[:, i1:i2])
        W1, E1, U1 = W[:, i1:i2].copy(), np.zeros((C, i2 - i1)), U[i1:i2, i1:i2]
        d1 = np.diag(U1)
        pruned = np.zeros((C, i2 - i1), dtype=bool)
        if k is not None and nm is None:
            r = math.floor((n - k) * i2 / n + 0.5) - removed
            removed += r
            if r > 0:
                idx = np.argsort(W1**2 / d1**2, axis=1, kind="stable")[:, :r]
                pruned[rows, idx] = True
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0 and nm[1] > nm[0]:
                s = W1[:, i:i + nm[1]] ** 2 / d1[i:i + nm[1]] ** 2
                pruned[rows, i + np.argsort(s, axis=1, kind="stable")[:, :nm[1] - nm[0]]] = True
            q = np.where(pruned[:, i], 0.0, nearest_rows(W1[:, i], T[:, i1 + i]))
            Q[:, i1 + i] = q
            E1[:, i] = (W1[:, i] - q) / U1[i, i]
            W1[:, i:] -= np.outer(E1[:, i], U1[i, i:])
        if i2 < n:
            W[:, i2:] -= E1 @ U[i1:i2, i2:]
    out = np.empty_like(Q)
    out[:, perm] = Q
    tables = None
    if regroup is not None:  # the tables the pass used, in input order
        tables = np.empty_like(T)
        tables[:, perm] = T
    return out, {"tables": tables, "damp": damp, "damp_used": damp_used, "block_size": block_size,
                 "act_order": bool(act_order), "dead_inputs": int(dead.sum()), "order": perm}


def _result(problem: LevelProblem, method: str, w: np.ndarray, t0: float,
            info: dict[str, Any]) -> SolveResult:
    """A heuristic result after checking ``w`` against the problem (levels, nonzero limit)."""
    w = problem.check_weights(w)
    info = {k: v for k, v in info.items() if k not in ("order", "tables")}
    return SolveResult(status=Status.HEURISTIC, weights=w, objective=problem.error(w),
                       lower_bound=None, norm=problem.norm, method=method,
                       seconds=time.perf_counter() - t0,
                       mask=None if not problem.sparse else w != 0.0, info=info)


def _need_limit(problem: LevelProblem, method: str, sparse: bool) -> None:
    if sparse and not problem.sparse:
        raise ProblemError(f"levels method {method!r} prunes: it needs a nonzero limit (k or "
                           "N:M); for a dense format use rtn or gptq")
    if not sparse and problem.sparse:
        raise ProblemError(f"levels method {method!r} has no nonzero limit; under k or N:M use "
                           "rtn (magnitude mask), wanda, wanda-gptq, prune-gptq or sparsegpt")


def _kept_gptq(problem: LevelProblem, mask: np.ndarray, *, damp: float, block_size: int,
               act_order: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """GPTQ over the kept inputs ``mask`` towards their exact refit; the others 0."""
    S = np.flatnonzero(mask)
    w = np.zeros(problem.n)
    info: dict[str, Any] = {"kept": int(S.size)}
    if S.size:
        target = unboxed_refit(problem.H, problem.w0, mask)[S]
        HS = np.ascontiguousarray(problem.H[np.ix_(S, S)])
        ws, more = _sequential(HS, target[None, :], problem.table[S][None], damp=damp,
                               block_size=block_size, act_order=act_order)
        w[S] = ws[0]
        info.update(more)
    return w, info


def _mask(problem: LevelProblem, how: str) -> np.ndarray:
    W0 = problem.w0[None, :]
    if how == "magnitude":
        return magnitude_masks(W0, problem.k, problem.nm)[0]
    if how == "wanda":
        return wanda_masks(problem.H, W0, problem.k, problem.nm)[0]
    from .sparsegpt import _sparsegpt

    return _sparsegpt(problem.H, W0, problem.k, problem.nm, block_size=128, damp=0.01,
                      refit=False, box_factor=None).masks[0]


# --------------------------------------------------------------------------------------------
# Registry methods (kind "levels")
# --------------------------------------------------------------------------------------------


def rtn_levels(problem: LevelProblem, *, time_limit: float | None = None) -> SolveResult:
    """Nearest level of every weight (registry ``levels``/``rtn``; ``time_limit`` unused).

    Under a nonzero limit the ``k`` largest ``|w0_j|`` (``N`` per group of ``M``) are kept
    (magnitude pruning) and rounded; the others are 0.

    Examples
    --------
    >>> import numpy as np
    >>> p = LevelProblem(np.eye(3), [0.3, -0.8, 0.05], levels=[-1.0, -0.5, 0.0, 0.5], k=1)
    >>> rtn_levels(p).weights.tolist()
    [0.0, -1.0, 0.0]
    """
    t0 = time.perf_counter()
    w = nearest_rows(problem.w0, problem.table)
    if problem.sparse:
        w = np.where(_mask(problem, "magnitude"), w, 0.0)
    return _result(problem, "rtn", w, t0, {"mask": "magnitude" if problem.sparse else None})


def gptq_levels(problem: LevelProblem, *, time_limit: float | None = None, damp: float = 0.01,
                block_size: int = 128, act_order: bool = False) -> SolveResult:
    """GPTQ with nearest-level rounding (registry ``levels``/``gptq``): static groups, the
    problem's levels; dense problems only (``time_limit`` unused).

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> p = LevelProblem(H, [0.3, 0.2], levels=[0.0, 0.5, 1.0])
    >>> gptq_levels(p, damp=0.0).weights.tolist()  # 0.3 → 0.5; 0.2 + 0.2·H⁻¹₂₁/H⁻¹₁₁ = 0.1 → 0
    [0.5, 0.0]
    """
    t0 = time.perf_counter()
    _need_limit(problem, "gptq", sparse=False)
    w, info = _sequential(problem.H, problem.w0[None, :], problem.table[None], damp=damp,
                          block_size=block_size, act_order=act_order)
    return _result(problem, "gptq", w[0], t0, info)


def wanda_levels(problem: LevelProblem, *, time_limit: float | None = None) -> SolveResult:
    """Wanda's mask, kept weights to their nearest level (registry ``levels``/``wanda``)."""
    t0 = time.perf_counter()
    _need_limit(problem, "wanda", sparse=True)
    w = np.where(_mask(problem, "wanda"), nearest_rows(problem.w0, problem.table), 0.0)
    return _result(problem, "wanda", w, t0, {"mask": "wanda"})


def wanda_gptq(problem: LevelProblem, *, time_limit: float | None = None, damp: float = 0.01,
               block_size: int = 128, act_order: bool = False) -> SolveResult:
    """Wanda's mask, then GPTQ over the kept inputs towards their exact refit (registry
    ``levels``/``wanda-gptq``)."""
    t0 = time.perf_counter()
    _need_limit(problem, "wanda-gptq", sparse=True)
    w, info = _kept_gptq(problem, _mask(problem, "wanda"), damp=damp, block_size=block_size,
                         act_order=act_order)
    return _result(problem, "wanda-gptq", w, t0, {"mask": "wanda", **info})


def prune_gptq(problem: LevelProblem, *, time_limit: float | None = None, damp: float = 0.01,
               block_size: int = 128, act_order: bool = False) -> SolveResult:
    """Prune, then quantize (registry ``levels``/``prune-gptq``): SparseGPT's mask, the kept
    weights' exact refit, GPTQ over the kept inputs.

    Examples
    --------
    >>> import numpy as np
    >>> p = LevelProblem(np.eye(4), [0.1, -0.9, 0.5, 0.2], levels=[-1.0, -0.5, 0.0, 0.5],
    ...                  nm=(2, 4))
    >>> prune_gptq(p).weights.tolist()
    [0.0, -1.0, 0.5, 0.0]
    """
    t0 = time.perf_counter()
    _need_limit(problem, "prune-gptq", sparse=True)
    w, info = _kept_gptq(problem, _mask(problem, "sparsegpt"), damp=damp,
                         block_size=block_size, act_order=act_order)
    return _result(problem, "prune-gptq", w, t0, {"mask": "sparsegpt", **info})


def sparsegpt_levels(problem: LevelProblem, *, time_limit: float | None = None,
                     damp: float = 0.01, block_size: int = 128) -> SolveResult:
    """SparseGPT's joint sparse + quantized pass (registry ``levels``/``sparsegpt``)."""
    t0 = time.perf_counter()
    _need_limit(problem, "sparsegpt", sparse=True)
    w, info = _sequential(problem.H, problem.w0[None, :], problem.table[None], damp=damp,
                          block_size=block_size, k=problem.k, nm=problem.nm)
    return _result(problem, "sparsegpt", w[0], t0, info)


# --------------------------------------------------------------------------------------------
# A whole layer in a format, with GPTQ's dynamic groups
# --------------------------------------------------------------------------------------------


def gptq_format_layer(H: Any, W0: Any, fmt: Any, *, group_size: int | None = None,
                      scale_method: str = "mse", act_order: bool = False,
                      static_groups: bool = False, damp: float = 0.01,
                      block_size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPTQ on a whole layer in format ``fmt`` (a name or :class:`~solvers.formats.FormatSpec`).

    ``static_groups=True`` (or a per-tensor / per-channel format): the levels are
    :func:`solvers.formats.build_levels` of ``W0``, fixed before the pass. Otherwise (GPTQ's
    default for group-wise formats): when the pass reaches position ``i`` of its order with
    ``i % G == 0``, the scale (and zero point) of the group — the ``G`` inputs at positions
    ``i … i + G − 1`` of the order — is chosen by ``scale_method`` from the weights as they are
    at the start of that block (the reference's ``find_params(W[:, i:i+G])``; with
    ``block_size`` a multiple of ``G`` that is the fully updated state). ``block_size`` is
    rounded down to a multiple of ``G``. NV-style FP4 (a tensor scale above the block scales)
    needs ``static_groups=True``. No sparsity here (a format's ``+N:M`` is refused).

    Returns ``(W, tables, g_idx)``: the weights (C, n), each input's levels (C, n, L), and the
    group of each input (n,) (``g_idx``; ``j // G`` unless dynamic with ``act_order``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, W0 = rng.standard_normal((64, 8)), rng.standard_normal((2, 8))
    >>> W, T, g = gptq_format_layer(X.T @ X, W0, "int4-asym-g4", act_order=True)
    >>> bool(np.all(np.any(T == W[:, :, None], axis=2))), sorted(np.bincount(g).tolist())
    (True, [4, 4])
    """
    from ..formats import FormatSpec, build_levels, parse_format

    H, W0 = check_layer(H, W0)
    spec = fmt if isinstance(fmt, FormatSpec) else parse_format(fmt, group_size=group_size)
    if spec.nm is not None:
        raise ProblemError(f"gptq_format_layer has no sparsity: drop +{spec.nm[0]}:"
                           f"{spec.nm[1]} from {spec.name}, or use sparsegpt over the levels")
    C, n = W0.shape
    f = build_levels(W0, spec, scale_method=scale_method)
    T = np.stack([np.broadcast_to(f.levels(c), (n, f.codebook.size)) for c in range(C)])
    dynamic = spec.granularity == "group" and not static_groups
    G = f.group
    perm = _order(damped_hessian(H, check_damp(damp))[0], act_order)
    g_idx = np.empty(n, dtype=np.int64)
    g_idx[perm if dynamic else np.arange(n)] = np.arange(n) // G
    regroup = None
    if dynamic:
        if spec.scale_type == "e4m3":
            raise ProblemError(f"{spec.name}: dynamic groups would give every group its own "
                               "tensor scale; use static_groups=True")
        block_size = max(G, check_positive_int(block_size, "block_size") // G * G)
        one = replace(spec, granularity="channel", group_size=None)

        def regroup(W, i1, i2, old):
            out = old.copy()
            for a in range(i1, i2, G):
                g = build_levels(W[:, a:a + G], one, scale_method=scale_method)
                out[:, a - i1:a - i1 + G] = np.stack([g.levels(c) for c in range(C)])[:, None]
            return out

    W, info = _sequential(H, W0, T, damp=damp, block_size=block_size, act_order=act_order,
                          regroup=regroup)
    return W, (info["tables"] if dynamic else T), g_idx
