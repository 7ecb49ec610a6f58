"""What every heuristic shares: layer inputs, damping, the inverse Hessian, the layer result.

The heuristics work on a whole layer at once: a shared Hessian ``H`` (n×n) and the weights of
all ``C`` output channels ``W0`` (C×n). The per-channel registry functions call the same code
with ``C = 1``, so there is one implementation, not two.

Damping and dead inputs (as the GPTQ / SparseGPT reference code does):

* an input with ``H_ii = 0`` ("dead": no calibration sample ever activates it) gets ``H_ii = 1``
  and weight 0 before the algorithm runs; its weight does not affect the error at all;
* ``damp`` is a fraction of the mean diagonal added to the diagonal, ``H + damp·mean(diag H)·I``;
* if the Cholesky factorisation still fails (a singular ``H`` with ``damp = 0``), the damping is
  raised in decades from ``1e-10·mean(diag H)`` until it succeeds; the value used is reported in
  ``info["damp_used"]`` (relative to the mean diagonal).

Damping is an algorithmic device only: every objective is recomputed on the *undamped* ``H``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from ..problem import ProblemError, validate_bits, validate_hessian, validate_scale
from ..result import SolveResult, Status, sqnr_db

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def check_layer(H: Any, W0: Any, *, validate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``H`` as a validated (n, n) float64 matrix and ``W0`` as (C, n) float64.

    A vector ``W0`` (n,) is one channel. ``validate=False`` skips the PSD check of ``H`` (the
    caller already validated it, e.g. a :class:`~solvers.problem.QuantProblem`).
    """
    W0 = np.asarray(W0, dtype=np.float64)
    if W0.ndim == 1:
        W0 = W0[None, :]
    if W0.ndim != 2:
        raise ProblemError(f"W0 must be (channels, n) or (n,), got shape {W0.shape}")
    if W0.shape[0] == 0 or W0.shape[1] == 0:
        raise ProblemError(f"W0 is empty (shape {W0.shape})")
    if not np.all(np.isfinite(W0)):
        raise ProblemError("W0 contains NaN or infinite entries")
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2:
        raise ProblemError(
            f"the layer heuristics take one shared H (n, n), got shape {H.shape}; "
            "for per-channel Hessians run the per-channel functions"
        )
    if validate:
        H = validate_hessian(H)
    if H.shape[0] != W0.shape[1]:
        raise ProblemError(f"H is {H.shape} but W0 rows have n = {W0.shape[1]}")
    return H, W0


def channel_scales(scale: Any, C: int) -> np.ndarray:
    """A scalar or per-channel scale as a (C,) array of validated positive floats."""
    s = np.asarray(scale, dtype=np.float64)
    if s.ndim == 0:
        return np.full(C, validate_scale(float(s)))
    s = s.ravel()
    if s.shape[0] != C:
        raise ProblemError(f"scale must be a scalar or have one entry per channel ({C}), "
                           f"got {s.shape[0]}")
    for v in s:
        validate_scale(v)
    return s.copy()


def check_bits(bits: Any) -> int:
    return validate_bits(bits)


def check_positive_int(value: Any, name: str) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ProblemError(f"{name} must be a positive integer, got {value!r}") from None
    if v != value or v < 1:
        raise ProblemError(f"{name} must be a positive integer, got {value!r}")
    return v


def check_damp(damp: Any) -> float:
    try:
        d = float(damp)
    except (TypeError, ValueError):
        raise ProblemError(f"damp must be a number >= 0, got {damp!r}") from None
    if not math.isfinite(d) or d < 0.0:
        raise ProblemError(f"damp must be finite and >= 0, got {damp!r}")
    return d


# --------------------------------------------------------------------------------------------
# Damping and the inverse Hessian
# --------------------------------------------------------------------------------------------


def dead_inputs(H: np.ndarray) -> np.ndarray:
    """Inputs with ``H_ii <= 0`` (never activated); their rows and columns of ``H`` are zero."""
    return np.diag(H) <= 0.0


def damped_hessian(H: np.ndarray, damp: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``(Hd, dead, mean_diag)``: dead inputs get ``H_ii = 1``, then ``damp·mean(diag)`` is added.

    ``mean_diag`` is the mean diagonal *after* the dead inputs were set to 1 (as the reference).
    """
    Hd = np.array(H, dtype=np.float64, copy=True)
    dead = dead_inputs(Hd)
    idx = np.flatnonzero(dead)
    Hd[idx, idx] = 1.0
    mean_diag = float(np.mean(np.diag(Hd)))
    if damp > 0.0:
        Hd[np.diag_indices_from(Hd)] += damp * mean_diag
    return Hd, dead, mean_diag


def _escalate(Hd: np.ndarray, mean_diag: float, damp: float, factor, what: str):
    """Run ``factor(Hd)``; on failure add damping in decades from 1e-10·mean_diag."""
    try:
        return factor(Hd), damp
    except (np.linalg.LinAlgError, linalg.LinAlgError, ValueError):
        pass
    extra = 1e-10
    while extra <= 1e3:
        H2 = Hd.copy()
        H2[np.diag_indices_from(H2)] += extra * mean_diag
        try:
            out = factor(H2)
        except (np.linalg.LinAlgError, linalg.LinAlgError, ValueError):
            extra *= 10.0
            continue
        log.debug("%s: H singular with damp=%g, used extra damping %g·mean(diag)",
                 what, damp, extra)
        return out, damp + extra
    raise ProblemError(f"{what}: could not factorise H even with heavy damping")


def _upper_cholesky_of_inverse(Hd: np.ndarray) -> np.ndarray:
    """``U`` upper triangular with ``Hd⁻¹ = UᵀU`` (positive diagonal), in ``2n³/3`` flops.

    With ``J`` the reversal permutation and ``J Hd J = M Mᵀ`` (lower Cholesky), ``R = J M J`` is
    upper triangular with ``Hd = R Rᵀ``, so ``Hd⁻¹ = R⁻ᵀ R⁻¹`` and ``U = R⁻¹ = J M⁻¹ J``: one
    Cholesky and one triangular inverse, instead of the reference's Cholesky, full inverse and
    second Cholesky (same factor up to rounding).
    """
    M = linalg.cholesky(Hd[::-1, ::-1], lower=True, check_finite=False)
    Minv, info = lapack.dtrtri(M, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("singular triangular factor")
    U = np.ascontiguousarray(Minv[::-1, ::-1])
    if not np.all(np.isfinite(U)) or np.any(np.diag(U) <= 0.0):
        raise np.linalg.LinAlgError("non-positive pivot")
    return U


def _inverse(Hd: np.ndarray) -> np.ndarray:
    L = linalg.cholesky(Hd, lower=True, check_finite=False)
    T, info = lapack.dpotri(L, lower=1)  # the inverse from the factor, lower triangle
    if info != 0:
        raise np.linalg.LinAlgError("singular factor")
    Hinv = np.tril(T) + np.tril(T, -1).T
    if not np.all(np.isfinite(Hinv)) or np.any(np.diag(Hinv) <= 0.0):
        raise np.linalg.LinAlgError("non-positive diagonal of the inverse")
    return Hinv


def inverse_cholesky(Hd: np.ndarray, mean_diag: float, damp: float, what: str):
    """``(U, damp_used)`` with ``U`` upper triangular and ``Hd⁻¹ = UᵀU`` (GPTQ's ``Hinv``)."""
    return _escalate(Hd, mean_diag, damp, _upper_cholesky_of_inverse, what)


def inverse(Hd: np.ndarray, mean_diag: float, damp: float, what: str):
    """``(Hd⁻¹, damp_used)`` by Cholesky, with the same escalation."""
    return _escalate(Hd, mean_diag, damp, _inverse, what)


# --------------------------------------------------------------------------------------------
# Objectives and the layer result
# --------------------------------------------------------------------------------------------


def layer_errors(H: np.ndarray, W0: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per-channel ``(w_c − w0_c)ᵀ H (w_c − w0_c)`` on the given (undamped) ``H``, clamped at 0."""
    D = np.asarray(W, dtype=np.float64) - W0
    return np.maximum(0.0, np.einsum("ci,ci->c", D @ H, D))


def layer_norms(H: np.ndarray, W0: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, np.einsum("ci,ci->c", W0 @ H, W0))


@dataclass(frozen=True)
class LayerRun:
    """A heuristic run on a whole layer (shared ``H``): one row per output channel.

    Attributes
    ----------
    method : str
        Registry name (``"gptq"``, ``"sparsegpt"``, …).
    weights : (C, n) float64
        The solutions (quantized weights ``scale·codes``, or pruned weights).
    objectives : (C,) float64
        Exact errors ``(w − w0)ᵀ H (w − w0)`` on the *undamped* ``H``.
    norms : (C,) float64
        ``w0ᵀ H w0`` per channel.
    seconds : float
        Wall-clock time of the whole layer run.
    codes : (C, n) int64 or None
        Grid codes (quantization); ``weights == scales[:, None] * codes``.
    masks : (C, n) bool or None
        Kept weights (pruning).
    scales : (C,) float64 or None
        The grid step of each channel (quantization).
    message : str
        Notes that apply to every channel (box handling, damping raised, …).
    info : dict
        Options and figures of the run (``damp_used``, ``block_size``, ``order``, …).
    """

    method: str
    weights: np.ndarray
    objectives: np.ndarray
    norms: np.ndarray
    seconds: float
    codes: np.ndarray | None = None
    masks: np.ndarray | None = None
    scales: np.ndarray | None = None
    message: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def objective(self) -> float:
        """Layer error: the sum over channels."""
        return float(np.sum(self.objectives))

    @property
    def sqnr_db(self) -> float | None:
        """Layer SQNR ``10·log10(Σ norm / Σ error)``."""
        return sqnr_db(float(np.sum(self.norms)), self.objective)

    def results(self) -> list[SolveResult]:
        """One :class:`SolveResult` per channel (status ``heuristic``, no lower bound).

        Each channel's ``seconds`` is its share of the layer time (``seconds / C``).
        """
        return layer_results(self)


def layer_results(run: LayerRun) -> list[SolveResult]:
    """Turn a :class:`LayerRun` into per-channel :class:`SolveResult` objects."""
    C = run.channels
    share = run.seconds / max(C, 1)
    out = []
    for c in range(C):
        info = dict(run.info)
        if run.scales is not None:
            info["scale"] = float(run.scales[c])
        out.append(
            SolveResult(
                status=Status.HEURISTIC,
                weights=run.weights[c].copy(),
                objective=float(run.objectives[c]),
                lower_bound=None,
                norm=float(run.norms[c]),
                method=run.method,
                nodes=0,
                seconds=share,
                codes=None if run.codes is None else run.codes[c].copy(),
                mask=None if run.masks is None else run.masks[c].copy(),
                message=run.message,
                info=info,
            )
        )
    return out


def join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def quant_run(
    method: str,
    H: np.ndarray,
    W0: np.ndarray,
    codes: np.ndarray,
    scales: np.ndarray,
    t0: float,
    info: dict[str, Any],
    message: str = "",
) -> LayerRun:
    """The :class:`LayerRun` of a quantization heuristic: ``weights = scales·codes``, objectives
    on the undamped ``H``, ``seconds`` since ``t0`` (``time.perf_counter``)."""
    return _run(method, H, W0, codes * scales[:, None], t0, info, message, codes=codes,
                scales=scales)


def _run(method: str, H: np.ndarray, W0: np.ndarray, W: np.ndarray, t0: float,
         info: dict[str, Any], message: str, **arrays: Any) -> LayerRun:
    """A :class:`LayerRun` of the weights ``W``: exact objectives and norms, time since ``t0``."""
    import time

    return LayerRun(method=method, weights=W, objectives=layer_errors(H, W0, W),
                    norms=layer_norms(H, W0), seconds=time.perf_counter() - t0,
                    message=message, info=info, **arrays)


# --------------------------------------------------------------------------------------------
# Pruning: budget, box, the pruned layer result
# --------------------------------------------------------------------------------------------


def prune_budget(
    H: np.ndarray,
    W0: np.ndarray,
    k: int | None,
    density: float | None,
    nm: tuple[int, int] | None,
    box_factor: float | None,
) -> tuple[int, tuple[int, int] | None, float | None]:
    """``(k, nm, box_factor)`` validated by :class:`~solvers.problem.PruneProblem` itself."""
    from ..problem import PruneProblem, density_to_k

    if density is not None:
        if k is not None:
            raise ProblemError("give k or density, not both")
        k = density_to_k(density, W0.shape[1])
    p = PruneProblem.unchecked(H, W0[0], k=k, nm=nm, box_factor=box_factor)
    return p.k, p.nm, p.box_factor


def clip_to_box(W: np.ndarray, W0: np.ndarray, box_factor: float | None) -> tuple[np.ndarray, int]:
    """Clip each row to ``±box_factor·max|w0_row|``; returns the weights and how many moved."""
    if box_factor is None:
        return W, 0
    box = box_factor * np.max(np.abs(W0), axis=1, keepdims=True)
    Wc = np.clip(W, -box, box)
    return Wc, int(np.count_nonzero(Wc != W))


def prune_run(
    method: str,
    H: np.ndarray,
    W0: np.ndarray,
    W: np.ndarray,
    masks: np.ndarray,
    box_factor: float | None,
    t0: float,
    info: dict[str, Any],
    message: str = "",
) -> LayerRun:
    """The :class:`LayerRun` of a pruning heuristic: zero outside the masks, clip to the box,
    objectives on the undamped ``H``."""
    W = np.where(masks, W, 0.0)
    W, moved = clip_to_box(W, W0, box_factor)
    if box_factor is not None:
        message = join(message, f"box ±{box_factor:g}·max|w0| respected by clipping the kept "
                       f"weights ({moved} clipped); the method itself ignores the box")
        info = dict(info, box_clipped=moved)
    return _run(method, H, W0, W, t0, info, message, masks=masks.astype(bool))
