"""Certified bounds for a whole output channel from its chunk-sized block problems.

The paper solves each ``opt_dim`` chunk as its own problem, dropping the cross terms between
chunks, so summed chunk bounds do not bound the channel's error. Here they do, in two steps:
:func:`block_split` builds block problems ``B_i`` from the channel's ``H`` and its chunk ranges;
once a certified method has bounded each block problem, :func:`block_sum_bound` (quantization,
N:M pruning) or :func:`budget_bound` (pruning to ``K`` nonzeros in total) turn the block bounds
into a certified bound on the whole channel. Everything here is numpy on arrays; which rows
of a results store hold the block bounds is the caller's business.

The construction
----------------
Let ``H`` (n×n, PSD) be a channel's full Hessian and ``H_ii`` its diagonal blocks over the chunks
``I_1, …, I_m``; ``Bd = blockdiag(H_11, …, H_mm)`` and ``O = H − Bd`` the off-block part. We pick a
block-diagonal ``B = blockdiag(B_1, …, B_m)`` with

    (1) every ``B_i ⪰ 0``               (each block problem is a valid problem), and
    (2) ``H − B ⪰ 0``                    (the remainder is PSD).

Then for every ``w`` (``d = w − w0``)::

    dᵀ H d = dᵀ B d + dᵀ (H − B) d ≥ dᵀ B d = Σ_i d_iᵀ B_i d_i.

* **Quantization** (the grid is a product over coordinates):
  ``min_w dᵀHd ≥ Σ_i min_{w_i} d_iᵀB_i d_i``, so the sum of the block problems' *certified
  lower bounds* is a certified lower bound on the whole channel's optimum
  (:func:`block_sum_bound`).
* **Pruning** (at most ``K`` nonzeros in total): any feasible ``w`` keeps ``k_i`` weights in block
  ``i`` with ``Σ k_i ≤ K``, so ``opt ≥ min_{Σk_i ≤ K} Σ_i L_i(k_i)`` where ``L_i(k)`` is a certified
  lower bound of block ``i`` at budget ``k``; the minimum is found exactly by dynamic programming
  (:func:`allocate_budget`, called by :func:`budget_bound`). The block optimum ``f_i(k)`` is
  non-increasing in ``k``, so ``f_i(k) ≥ max_{j ≥ k} L_i(j)``: the tables are tightened by a
  suffix maximum, and budgets that were not solved fall back on the next solved one
  (``L_i(n_i) = 0`` always holds; ``L_i(0)`` is the block error of ``w_i = 0``, see the margins).
  An N:M pattern whose groups never straddle a chunk boundary decomposes over the blocks exactly,
  so its bound is again the sum of block bounds.

Three choices of ``B`` (all satisfy (1) and (2); ``construction="auto"`` builds every valid one and
keeps the best):

* **shift**: ``B_i = H_ii − t·I`` with ``t = max(0, −λ_min(O)) + δ``: then
  ``H − B = O + t·I ⪰ δ·I``. Valid only when every ``λ_min(H_ii) ≥ t``, otherwise a block would be
  indefinite (and no PSD ``B_i ⪯ H_ii − t·I`` exists).
* **scale**: ``B_i = α·H_ii`` with ``α = λ_min(Bd^{+½} H Bd^{+½}) − δ'`` (the least generalised
  eigenvalue of the pencil (H, Bd) on the range of Bd; ``0 ≤ α ≤ 1``). Always valid: blocks are PSD
  for any ``α ≥ 0``, and ``H − α·Bd ⪰ 0`` by the choice of ``α`` (the null space of ``Bd`` lies in
  that of ``H`` when ``H = XᵀX``; the residual is checked numerically either way).
* **schur**: ``B_i = S_i / m`` with ``S_i = H_ii − H_{i,r} H_{r,r}^+ H_{r,i}`` the Schur complement
  of the other blocks ``r`` (for PD ``H``, ``S_i = ((H⁻¹)_ii)⁻¹``). Valid: ``xᵀHx ≥ x_iᵀ S_i x_i``
  for every ``x`` (minimise over the other coordinates), so each ``E_i S_i E_iᵀ ⪯ H`` and their
  average ``B`` is too; each ``S_i ⪰ 0``. It keeps what block ``i`` cannot borrow from the
  others, which is far more than the scale keeps when inputs correlate *across* chunks (on
  MobileNetV2's ``features.2.conv.2``: 4 % of the trace against 0.2 %, and a 4-bit block bound
  80× larger).

``auto`` keeps the valid candidate that retains the most trace (``tr B``; for an error spread
evenly over the coordinates, as quantization noise is, the bound is about proportional to it).
If ``H`` is block-diagonal already (``O = 0``), ``B = Bd`` (construction ``"exact"``).

Margins (every number below that is not an exact identity)
----------------------------------------------------------
``u = 2⁻⁵³`` is the unit roundoff and ``γ_k = k·u / (1 − k·u)`` (Higham's notation).

* **split margin** ``δ = rtol·λ_max(H)`` (shift) and ``δ' = rtol`` (scale), ``rtol =``
  :data:`SPLIT_RTOL` ``= 1e-9``: the constructions aim ``λ_min(H − B)`` at a positive value, so
  that the check below passes without repair.
* **split check** (what makes ``H − B ⪰ 0`` a proof, not a hope): inputs whose row of ``H`` is
  exactly zero (dead inputs) must have exactly zero rows in ``B`` too, and leave the check (their
  terms of ``dᵀ(H − B)d`` are exactly zero). On the live inputs the residual ``R = fl(H − B)`` is
  formed elementwise (error at most ``u·(|H| + |B|)``), and LAPACK's symmetric eigensolver is
  backward stable (the computed ``λ_min`` is an eigenvalue of ``R + E`` with
  ``‖E‖₂ ≤ c·n·u·‖R‖₂``). Let ``μ = 10·n·u·(‖H‖_F + ‖B‖_F)`` (:func:`residual_margin`), which
  covers both errors with room to spare, so that by Weyl's inequality the true
  ``λ_min(H − B) ≥ λ̂_min(R) − μ``. A split is **strict** when ``λ̂_min(R) ≥ μ`` (so
  ``H − B ⪰ 0``) or when ``R`` is exactly zero (the ``exact`` construction: no arithmetic was
  done). A candidate that falls short is first repaired: every block's eigenvalues are lowered by
  ``τ`` and clipped at 0 (``B_i ← V·max(Λ − τ, 0)·Vᵀ``, which keeps ``B_i ⪰ 0``), ``τ`` growing
  from ``μ − λ̂_min(R)`` by factors of 4, at most :data:`REPAIR_TRIES` times
  (:attr:`BlockSplit.repair` records ``τ``). When ``H`` is singular on its live inputs (fewer
  calibration rows than inputs) no split can be strict — ``H − B`` shares ``H``'s null vectors —
  and the split is accepted with a **slack** ``η = μ − λ̂_min(R) > 0`` as long as
  ``λ̂_min(R) ≥ −rtol·λ_max(H)``: then ``dᵀHd ≥ dᵀBd − η‖d‖²`` for every ``d``, and the bounds
  below subtract ``η·D²``, where ``D² ≥ ‖w − w0‖²`` over the feasible set is the caller's
  (:func:`grid_dist2` for a quantization grid, :func:`box_dist2` for pruning with the paper's box).
  Without such a ``D²`` (pruning with free kept weights) a slack split certifies nothing: the
  bound functions return ``None``.
* **budget 0**: ``L_i(0) = w_iᵀ B_i w_i`` (the only feasible block point is ``w_i = 0``) is a
  computed quadratic form, at most ``γ_{n_i+2}·|w_i|ᵀ|B_i||w_i|`` away from the true value; it
  enters the tables as ``max(0, fl(w_iᵀB_iw_i) − 2·γ_{n_i+2}·fl(|w_i|ᵀ|B_i||w_i|))``
  (:func:`zero_budget_bound`; the factor 2 covers the rounding of the second product).
* **sums**: a computed sum of ``m`` terms is within ``γ_{m−1}·Σ|x_i|`` of the true sum, so the sum
  of block bounds (:func:`block_sum_bound`) is lowered by ``γ_m·Σ_i|LB_i|``, and the budget DP's
  minimum over allocations (sums of ``m`` non-negative table entries) is multiplied by
  ``1 − γ_{m+1}``.
* **clamp**: a whole-channel bound above a feasible whole-channel objective the caller knows
  is replaced by that objective (``opt ≤ objective`` for any feasible point) and the value it
  replaced is kept as ``info["clamped_from"]``; it cannot happen for valid bounds beyond
  rounding.
* The block bounds themselves carry the margins of the certified method that produced them.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).standard_normal((40, 6))
>>> split = block_split(X.T @ X, [(0, 3), (3, 6)])
>>> split.residual_min_eig >= 0
True
>>> round(block_sum_bound([1.5, 2.0], split)[0], 12)  # 3.5 less the rounding of the sum
3.5
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .problem import ProblemError

log = logging.getLogger(__name__)

#: Relative safety margin of the split (see the module docstring).
SPLIT_RTOL = 1e-9
#: Unit roundoff of float64.
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps) / 2
#: Repairs tried on a split that misses the check (``τ`` grows by 4 each time).
REPAIR_TRIES = 8
CONSTRUCTIONS = ("auto", "shift", "scale", "schur")
#: Largest n for the pseudo-inverse path of the Schur construction (singular H).
SCHUR_PINV_MAX_N = 768


@dataclass(frozen=True)
class BlockSplit:
    """``H = B + (H − B)`` with ``B = blockdiag(blocks)`` PSD and ``H − B ⪰ 0``.

    Attributes
    ----------
    blocks : list of (n_i, n_i) arrays, the ``B_i``.
    ranges : list of (start, stop), the chunks' input ranges.
    construction : ``"shift"``, ``"scale"``, ``"schur"`` or ``"exact"``.
    shift : float, ``t`` (0 unless ``shift``).
    alpha : float, ``α`` (1 unless ``scale``).
    residual_min_eig : float, computed ``λ_min(H − B)`` (≥ ``margin``, or exactly 0 when
        ``H − B`` is exactly zero).
    block_min_eigs : list of float, computed ``λ_min(B_i)``.
    margin : float, the ``μ`` of the split check.
    repair : float, the ``τ`` the blocks were lowered by (0: no repair).
    slack : float, ``η`` (0 for a strict split): ``H − B ⪰ −η·I`` is what is proved.
    """

    blocks: list[np.ndarray]
    ranges: list[tuple[int, int]]
    construction: str
    shift: float = 0.0
    alpha: float = 1.0
    residual_min_eig: float = 0.0
    block_min_eigs: list[float] = field(default_factory=list)
    margin: float = 0.0
    repair: float = 0.0
    slack: float = 0.0

    @property
    def strict(self) -> bool:
        """``H − B ⪰ 0`` proved (no slack)."""
        return self.slack == 0.0

    def info(self) -> dict[str, Any]:
        """The split's figures as a JSON-able dict (stored with every whole-channel bound)."""
        return {
            "construction": self.construction, "shift": self.shift, "alpha": self.alpha,
            "residual_min_eig": self.residual_min_eig,
            "block_min_eig": min(self.block_min_eigs) if self.block_min_eigs else None,
            "blocks": len(self.blocks), "check_margin": self.margin, "repair": self.repair,
            "slack": self.slack,
        }


def block_split(
    H: np.ndarray,
    ranges: Sequence[tuple[int, int]],
    *,
    construction: str = "auto",
    rtol: float = SPLIT_RTOL,
) -> BlockSplit:
    """Build the split of the module docstring for ``H`` over the chunks ``ranges``.

    Parameters
    ----------
    H : (n, n) array
        The channel's full Hessian (symmetric PSD).
    ranges : sequence of (start, stop)
        Consecutive input ranges that tile ``0..n`` (the chunks).
    construction : {"auto", "shift", "scale", "schur"}
        ``auto`` keeps the valid candidate with the largest ``tr B``.
    rtol : float
        The split margin and check tolerance (see the module docstring).

    Raises
    ------
    ProblemError
        Unknown construction, ranges that do not tile ``0..n``, a ``shift`` that would make a
        block indefinite, or a split that fails its numerical check.
    """
    if construction not in CONSTRUCTIONS:
        raise ProblemError(f"unknown construction {construction!r}; valid: {CONSTRUCTIONS}")
    H = np.asarray(H, dtype=np.float64)
    n = H.shape[0]
    ranges = [(int(a), int(b)) for a, b in ranges]
    if ranges[0][0] != 0 or ranges[-1][1] != n or any(
            r0[1] != r1[0] for r0, r1 in zip(ranges, ranges[1:], strict=False)):
        raise ProblemError(f"chunk ranges {ranges} do not tile 0..{n}")
    Hd = [H[a:b, a:b].copy() for a, b in ranges]
    Bd = np.zeros_like(H)
    for (a, b), blk in zip(ranges, Hd, strict=True):
        Bd[a:b, a:b] = blk
    O = H - Bd
    lam_max = max(float(np.linalg.eigvalsh(H)[-1]), np.finfo(float).tiny)
    delta = rtol * lam_max
    if not np.any(O):
        return _finish(H, Hd, ranges, "exact", 0.0, 1.0, lam_max, rtol)

    block_eigs = [np.linalg.eigh(blk) for blk in Hd]
    candidates: list[BlockSplit] = []
    t = max(0.0, -float(np.linalg.eigvalsh(O)[0])) + delta
    if construction in ("auto", "shift"):
        if all(float(ev[0]) >= t for ev, _ in block_eigs):
            blocks = [blk - t * np.eye(blk.shape[0]) for blk in Hd]
            candidates.append(_finish(H, blocks, ranges, "shift", t, 1.0, lam_max, rtol))
        elif construction == "shift":
            raise ProblemError(
                f"shift construction invalid: t = {t:.3g} exceeds the least block eigenvalue "
                f"{min(float(ev[0]) for ev, _ in block_eigs):.3g} (use 'scale' or 'auto')"
            )
    if construction in ("auto", "schur"):
        blocks = _schur_blocks(H, ranges)
        if blocks is not None:
            try:
                candidates.append(_finish(H, blocks, ranges, "schur", 0.0, 1.0, lam_max,
                                          rtol))
            except ProblemError as exc:
                if construction == "schur":
                    raise
                log.debug("schur split rejected: %s", exc)
        elif construction == "schur":
            raise ProblemError(f"schur construction needs a PD H or n <= {SCHUR_PINV_MAX_N}")
    if construction in ("auto", "scale"):
        alpha = _scale_alpha(H, ranges, block_eigs, rtol)
        candidates.append(_finish(H, [alpha * blk for blk in Hd], ranges, "scale", 0.0, alpha,
                                  lam_max, rtol))
    # a strict split before one with a slack, then the most trace
    return max(candidates,
               key=lambda sp: (sp.strict, sum(float(np.trace(b)) for b in sp.blocks)))


def _schur_blocks(H: np.ndarray, ranges: list[tuple[int, int]]) -> list[np.ndarray] | None:
    """``S_i / m``: each block's Schur complement of the rest, averaged over the ``m`` blocks."""
    n = H.shape[0]
    m = len(ranges)
    S = None
    try:
        L = np.linalg.cholesky(H)
        Linv = np.linalg.solve(L, np.eye(n))
        Hinv = Linv.T @ Linv
        if np.all(np.isfinite(Hinv)):
            S = [np.linalg.inv(0.5 * (Hinv[a:b, a:b] + Hinv[a:b, a:b].T)) for a, b in ranges]
    except np.linalg.LinAlgError:
        S = None
    if S is None:
        if n > SCHUR_PINV_MAX_N:
            return None
        S = []
        idx = np.arange(n)
        for a, b in ranges:
            r = np.concatenate([idx[:a], idx[b:]])
            Hri = H[np.ix_(r, idx[a:b])]
            P = np.linalg.pinv(H[np.ix_(r, r)], rcond=1e-12, hermitian=True)
            S.append(H[a:b, a:b] - Hri.T @ P @ Hri)
    out = []
    for s in S:
        ev, V = np.linalg.eigh(0.5 * (s + s.T))
        out.append((V * np.maximum(ev, 0.0)) @ V.T / m)
    return out


def _scale_alpha(H: np.ndarray, ranges: list[tuple[int, int]], block_eigs: list, rtol: float
                 ) -> float:
    """Least eigenvalue of ``Bd^{+½} H Bd^{+½}`` on the range of ``Bd``, minus ``rtol``."""
    cols = []
    n = H.shape[0]
    for (a, _b), (ev, V) in zip(ranges, block_eigs, strict=True):
        keep = ev > rtol * max(float(ev[-1]), np.finfo(float).tiny) * len(ev)
        if not np.any(keep):
            continue
        P = np.zeros((n, int(keep.sum())))
        P[a:a + V.shape[0]] = V[:, keep] / np.sqrt(ev[keep])
        cols.append(P)
    if not cols:
        return 0.0
    P = np.hstack(cols)
    M = P.T @ H @ P
    M = 0.5 * (M + M.T)
    return float(np.clip(np.linalg.eigvalsh(M)[0] - rtol, 0.0, 1.0))


def residual_margin(H: np.ndarray, B: np.ndarray) -> float:
    """``μ = 10·n·u·(‖H‖_F + ‖B‖_F)``: a computed ``λ_min(fl(H − B)) ≥ μ`` proves ``H − B ⪰ 0``.

    Examples
    --------
    >>> 0 < residual_margin(np.eye(3), np.zeros((3, 3))) < 1e-13
    True
    """
    n = H.shape[0]
    return 10.0 * n * UNIT_ROUNDOFF * (float(np.linalg.norm(H)) + float(np.linalg.norm(B)))


def _finish(H: np.ndarray, blocks: list[np.ndarray], ranges: list[tuple[int, int]],
            construction: str, t: float, alpha: float, lam_max: float, rtol: float
            ) -> BlockSplit:
    """The split check of the module docstring, with its repair and slack; package the split."""
    blocks = [0.5 * (blk + blk.T) for blk in blocks]
    live = np.flatnonzero(np.any(H != 0.0, axis=1))
    tau = 0.0
    first: tuple[list[np.ndarray], float, float] | None = None
    for attempt in range(REPAIR_TRIES + 1):
        if attempt:
            blocks = [_lower(blk, tau) for blk in first[0]]
        B = np.zeros_like(H)
        for (a, b), blk in zip(ranges, blocks, strict=True):
            B[a:b, a:b] = blk
        R = H - B
        dead = np.setdiff1d(np.arange(H.shape[0]), live)
        if dead.size and (np.any(R[dead]) or np.any(R[:, dead])):
            raise ProblemError(f"block split ({construction}) failed its check: a dead input "
                               "(zero row of H) has a nonzero row in B")
        Rl = R[np.ix_(live, live)]
        mu = residual_margin(H, B)
        exact_zero = not np.any(Rl)
        res = 0.0 if exact_zero else float(np.linalg.eigvalsh(0.5 * (Rl + Rl.T))[0])
        if exact_zero or res >= mu:
            return _split(blocks, ranges, construction, t, alpha, res, mu, tau, 0.0)
        if first is None:
            first = (blocks, res, mu)
        tau = max(4.0 * tau, mu - res)
    blocks, res, mu = first
    if res >= -rtol * lam_max:  # singular H: accepted with a slack (see the module docstring)
        return _split(blocks, ranges, construction, t, alpha, res, mu, 0.0, mu - res)
    raise ProblemError(
        f"block split ({construction}) failed its check: λ_min(H − B) = {res:.3g} < "
        f"-{rtol * lam_max:.3g}, and lowering the blocks by up to {tau:.3g} did not make it "
        f"at least the certified margin {mu:.3g}"
    )


def _split(blocks, ranges, construction, t, alpha, res, mu, tau, slack) -> BlockSplit:
    block_min = [float(np.linalg.eigvalsh(blk)[0]) for blk in blocks]
    return BlockSplit(blocks, ranges, construction, t, alpha, res, block_min, mu, tau, slack)


def _lower(B: np.ndarray, tau: float) -> np.ndarray:
    """``V·max(Λ − τ, 0)·Vᵀ`` for ``B = VΛVᵀ``: ``B`` lowered by ``τ``, still PSD."""
    ev, V = np.linalg.eigh(B)
    out = (V * np.maximum(ev - tau, 0.0)) @ V.T
    return 0.5 * (out + out.T)


# --------------------------------------------------------------------------------------------
# From block bounds to a whole-channel bound
# --------------------------------------------------------------------------------------------


def block_sum_bound(block_bounds: Sequence[float], split: BlockSplit | None = None, *,
                    objective: float | None = None, dist2: float | None = None
                    ) -> tuple[float | None, dict[str, Any]]:
    """``Σ_i LB_i``: the whole-channel bound when the feasible set is a product over blocks.

    Holds for quantization (the grid is a product over coordinates) and for N:M pruning whose
    groups never straddle a chunk boundary.

    Parameters
    ----------
    block_bounds : sequence of float
        A certified lower bound of each block problem ``B_i`` of ``split``, in chunk order.
    split : BlockSplit, optional
        The split the blocks come from; ``None`` for a channel of one chunk, whose block is the
        channel itself (``B = H``): the bound is then that chunk's bound.
    objective : float, optional
        The error of a feasible whole-channel solution: the bound is clamped to it (see the
        module docstring).
    dist2 : float, optional
        ``D² ≥ ‖w − w0‖²`` over the feasible set (:func:`grid_dist2`, :func:`box_dist2`); needed
        only when the split has a slack, which then costs ``η·D²``.

    Returns
    -------
    (lower_bound, info) : the certified bound (``None`` for a slack split without ``dist2``) and a
        JSON-able record of how it was made (the split's :meth:`BlockSplit.info` and
        ``block_bounds``; ``slack_cost`` when a slack was paid; ``clamped_from`` if clamped).

    Examples
    --------
    >>> block_sum_bound([2.0])
    (2.0, {'construction': 'single chunk (B = H)'})
    >>> block_sum_bound([2.0], objective=1.5)[1]["clamped_from"]
    2.0
    """
    if split is None:
        if len(block_bounds) != 1:
            raise ProblemError(f"without a split the channel is one block, got "
                               f"{len(block_bounds)} block bounds")
        return _clamp(float(block_bounds[0]), {"construction": "single chunk (B = H)"},
                      objective)
    if len(block_bounds) != len(split.blocks):
        raise ProblemError(f"{len(block_bounds)} block bounds for a split into "
                           f"{len(split.blocks)} blocks")
    lbs = [float(v) for v in block_bounds]
    info = dict(split.info())
    info["block_bounds"] = lbs
    return _pay_slack(certified_sum(lbs), split, dist2, info, objective)


def certified_sum(values: Sequence[float]) -> float:
    """A lower bound on the exact sum of ``values``: ``fl(Σ x_i) − γ_m·Σ|x_i|``.

    Examples
    --------
    >>> 0 < 3.0 - certified_sum([1.0, 2.0]) < 1e-15
    True
    """
    x = np.asarray(values, dtype=np.float64)
    return float(x.sum()) - _gamma(x.size) * float(np.abs(x).sum())


def _gamma(k: int) -> float:
    """``γ_k = k·u / (1 − k·u)``."""
    return k * UNIT_ROUNDOFF / (1.0 - k * UNIT_ROUNDOFF)


def budget_bound(split: BlockSplit, w0: np.ndarray, solved: Sequence[Mapping[int, float]],
                 budget: int, *, objective: float | None = None, dist2: float | None = None
                 ) -> tuple[float | None, dict[str, Any]]:
    """``min_{Σ k_i ≤ K} Σ_i L_i(k_i)``: the whole-channel bound for pruning to ``K`` nonzeros.

    Parameters
    ----------
    split : BlockSplit
        The split of the channel's ``H``.
    w0 : (n,) array
        The channel's original weights.
    solved : sequence of mappings, one per block
        ``solved[i][k]``: a certified lower bound of block ``i`` kept to ``k`` nonzeros, for the
        budgets ``1 ≤ k < n_i`` that were solved (others are ignored; missing budgets fall back
        on the next solved one). ``L_i(0) = w_iᵀB_iw_i`` (with its margin) and ``L_i(n_i) = 0``
        are filled in here.
    budget : int
        ``K``, the nonzeros allowed in the whole channel.
    objective : float, optional
        The error of a feasible whole-channel solution (clamp, see the module docstring).
    dist2 : float, optional
        As in :func:`block_sum_bound` (pruning with the paper's box: :func:`box_dist2`).

    Returns
    -------
    (lower_bound, info) : the certified bound (``None`` for a slack split without ``dist2``);
        ``info`` holds the split's figures, ``budget`` and the ``allocation`` attaining the
        minimum.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.diag([1.0, 2.0, 3.0, 4.0])
    >>> split = block_split(H, [(0, 2), (2, 4)])
    >>> value, info = budget_bound(split, np.ones(4), [{1: 1.0}, {1: 3.0}], 2)
    >>> round(value, 9), info["allocation"]  # 3.0 less the rounding of the DP's sums
    (3.0, [0, 2])
    """
    if len(solved) != len(split.blocks):
        raise ProblemError(f"{len(solved)} budget tables for a split into "
                           f"{len(split.blocks)} blocks")
    tables = []
    for (a, b), B, known in zip(split.ranges, split.blocks, solved, strict=True):
        n_i = b - a
        L: list[float | None] = [None] * (n_i + 1)
        L[0] = zero_budget_bound(B, w0[a:b])
        L[n_i] = 0.0
        for k in range(1, n_i):
            v = known.get(k)
            if v is not None:
                L[k] = float(v)
        tables.append(L)
    value, alloc = allocate_budget(tables, budget)
    value *= 1.0 - _gamma(len(tables) + 1)  # the DP's sums of non-negative entries (margins)
    info = dict(split.info())
    info.update({"budget": budget, "allocation": alloc})
    return _pay_slack(value, split, dist2, info, objective)


def zero_budget_bound(B: np.ndarray, w: np.ndarray) -> float:
    """``L(0)``: the block error of ``w = 0``, ``wᵀBw``, less its rounding (see the margins).

    Examples
    --------
    >>> 0 < 2.0 - zero_budget_bound(np.eye(2), np.array([1.0, 1.0])) < 1e-14
    True
    """
    w = np.asarray(w, dtype=np.float64)
    q = float(w @ B @ w)
    a = np.abs(w)
    return max(0.0, q - 2.0 * _gamma(w.size + 2) * float(a @ np.abs(B) @ a))


def grid_dist2(w0: np.ndarray, scale: float, lo: int, hi: int) -> float:
    """``D² = Σ_j max_{z ∈ [lo, hi]} (s·z − w0_j)²``, over the quantization grid (rounded up).

    Examples
    --------
    >>> grid_dist2(np.array([0.0, 1.0]), 1.0, -2, 1) >= 4.0 + 9.0
    True
    """
    w0 = np.asarray(w0, dtype=np.float64)
    far = np.maximum(np.abs(scale * lo - w0), np.abs(scale * hi - w0))
    return float(far @ far) * (1.0 + _gamma(w0.size + 2))


def box_dist2(w0: np.ndarray, box: float) -> float:
    """``D² = Σ_j (box + |w0_j|)²``: pruning with kept weights in ``[−box, box]`` (rounded up).

    Examples
    --------
    >>> box_dist2(np.array([1.0, -1.0]), 2.0) >= 18.0
    True
    """
    far = float(box) + np.abs(np.asarray(w0, dtype=np.float64))
    return float(far @ far) * (1.0 + _gamma(far.size + 2))


def _pay_slack(lb: float, split: BlockSplit, dist2: float | None, info: dict[str, Any],
               objective: float | None) -> tuple[float | None, dict[str, Any]]:
    """``lb − η·D²`` for a slack split (``None`` without ``D²``), then the clamp."""
    if split.slack > 0.0:
        if dist2 is None:
            info["no_bound"] = ("singular H: the split holds only up to a slack, and the "
                                "feasible set is unbounded")
            return None, info
        cost = split.slack * float(dist2) * (1.0 + 4.0 * UNIT_ROUNDOFF)
        info["slack_cost"] = cost
        lb = max(0.0, lb - cost)
    return _clamp(lb, info, objective)


def _clamp(lb: float, info: dict[str, Any], objective: float | None
           ) -> tuple[float, dict[str, Any]]:
    if objective is not None and lb > objective:
        # Cannot happen for valid bounds beyond rounding; never report lb > objective.
        info["clamped_from"] = lb
        lb = objective
    return lb, info


# --------------------------------------------------------------------------------------------
# Pruning: allocate the shared budget across blocks
# --------------------------------------------------------------------------------------------


def monotone_table(table: Sequence[float | None]) -> np.ndarray:
    """Tighten a block's lower-bound table ``L(0..n_b)`` using ``f(k) ≥ max_{j≥k} L(j)``.

    Missing entries (``None``/NaN) take the next known value to their right; ``L(n_b)`` is 0
    when missing (keeping every weight reproduces ``w0`` exactly).

    Examples
    --------
    >>> monotone_table([5.0, None, 2.0, 3.0, None]).tolist()
    [5.0, 3.0, 3.0, 3.0, 0.0]
    """
    L = np.array([np.nan if v is None else float(v) for v in table], dtype=float)
    if np.isnan(L[-1]):
        L[-1] = 0.0
    L = np.maximum(np.nan_to_num(L, nan=-np.inf), 0.0)
    return np.maximum.accumulate(L[::-1])[::-1]


def allocate_budget(tables: Sequence[Sequence[float | None]], K: int
                    ) -> tuple[float, list[int]]:
    """``min Σ_i L_i(k_i)`` over ``Σ k_i ≤ K``, ``0 ≤ k_i ≤ n_i``, by dynamic programming.

    Parameters
    ----------
    tables : one sequence per block, ``tables[i][k]`` a certified lower bound of block ``i``
        with budget ``k`` (``k = 0..n_i``), ``None`` where unknown.
    K : the shared budget.

    Returns
    -------
    (value, allocation) : the least total and one allocation attaining it.

    Examples
    --------
    >>> allocate_budget([[5.0, 1.0, 0.0], [4.0, 3.0, 0.0]], 2)
    (4.0, [1, 1])
    """
    if K < 0:
        raise ProblemError(f"budget K must be >= 0, got {K}")
    mono = [monotone_table(t) for t in tables]
    INF = np.inf
    best = np.full(K + 1, INF)
    best[0] = 0.0  # best[j]: least total with exactly j kept so far
    choice: list[np.ndarray] = []
    for L in mono:
        nxt = np.full(K + 1, INF)
        arg = np.zeros(K + 1, dtype=int)
        for j in range(K + 1):
            if best[j] == INF:
                continue
            for k in range(min(len(L) - 1, K - j) + 1):
                v = best[j] + L[k]
                if v < nxt[j + k]:
                    nxt[j + k] = v
                    arg[j + k] = k
        choice.append(arg)
        best = nxt
    j = int(np.argmin(best))
    value = float(best[j])
    alloc = []
    for arg in reversed(choice):
        k = int(arg[j])
        alloc.append(k)
        j -= k
    return value, alloc[::-1]
