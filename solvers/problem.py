"""The problem types, validated once at construction.

Every entry point (Python API, CLI, problem-file loader) builds one of these, so every bad input
gets the same clear :class:`ProblemError`. The math (DESIGN.md)::

    error(w) = (w - w0)ᵀ H (w - w0),   norm = w0ᵀ H w0,   H symmetric PSD (n×n, float64)

* :class:`QuantProblem`: ``w = scale·z`` with integer ``z`` in ``[zmin, zmax]``, the signed
  ``bits``-bit grid ``zmin = -2^(bits-1)``, ``zmax = 2^(bits-1) - 1``.
* :class:`PruneProblem`: at most ``k`` nonzeros (or the N:M pattern: at most N kept in each
  group of M consecutive inputs), kept weights free or, with ``box_factor = c``, limited to
  ``|w_i| <= c·max|w0|`` (the paper's big-M box).
* :class:`LevelProblem`: every ``w_j`` one of a finite sorted set of levels ``L_j`` (shared by
  all inputs, or one set per input with group-wise scales and zero points baked in), optionally
  with at most ``k`` nonzeros or an N:M pattern (zero must then be a level of every input). The
  general scalar format (DESIGN.md, "One problem behind every format"); a ``QuantProblem`` is the
  case ``L_j = s·{zmin, …, zmax}`` (:meth:`LevelProblem.from_quant`).
* :class:`LayerProblem`: all output channels of one layer chunk, ``W0`` (C×n) with a shared
  ``H`` (n×n) or one per channel (C×n×n, grouped and depthwise convs); it hands out the
  per-channel problems without validating ``H`` again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Relative tolerance on ``|H - Hᵀ|`` (against ``max|H|``).
SYMMETRY_RTOL = 1e-9
#: Relative tolerance on negative eigenvalues of ``H`` (against ``max diag H``).
PSD_RTOL = 1e-9


class ProblemError(ValueError):
    """Malformed problem data; the message names the problem."""


# --------------------------------------------------------------------------------------------
# Validation helpers (the one place that checks inputs)
# --------------------------------------------------------------------------------------------


def hessian_exponent(H: np.ndarray, limit: int = 200) -> int:
    """The power of two ``e`` that the exact solvers divide ``H`` by (only exponents change:
    results are the same up to the factor ``2^e``) so that its largest diagonal entry is about
    1, or 0 when that entry already lies within ``2^±limit``. Beyond that range squares and
    products of ``H``'s entries in the certificates overflow (``H ≈ 1e300``) or underflow
    (``H ≈ 1e-300``).

    >>> hessian_exponent(np.eye(2)), hessian_exponent(np.eye(2) * 1e300)
    (0, 997)
    """
    top = float(np.max(np.diagonal(H))) if H.size else 0.0
    if not (top > 0.0 and math.isfinite(top)):
        return 0
    e = math.frexp(top)[1]
    return e if abs(e) > limit else 0


def validate_hessian(H: Any, *, name: str = "H") -> np.ndarray:
    """Check that ``H`` is a finite, square, symmetric, PSD matrix; return it symmetrised.

    Symmetry within ``SYMMETRY_RTOL·max|H|``; PSD within ``PSD_RTOL·max(diag H)`` (checked by a
    Cholesky factorisation of ``H + tol·I``, the eigenvalues only computed for the message).
    """
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ProblemError(f"{name} must be a square matrix, got shape {H.shape}")
    if H.shape[0] == 0:
        raise ProblemError(f"{name} is empty (n = 0)")
    if not np.all(np.isfinite(H)):
        raise ProblemError(f"{name} contains NaN or infinite entries")
    scale = float(np.max(np.abs(H))) if H.size else 0.0
    asym = float(np.max(np.abs(H - H.T))) if H.size else 0.0
    if asym > SYMMETRY_RTOL * max(scale, np.finfo(float).tiny):
        raise ProblemError(
            f"{name} is not symmetric: max |H - Hᵀ| = {asym:.3g} vs max |H| = {scale:.3g}"
        )
    H = 0.5 * (H + H.T)
    diag = np.diag(H)
    if np.any(diag < -PSD_RTOL * max(scale, np.finfo(float).tiny)):
        raise ProblemError(f"{name} is not positive semidefinite: negative diagonal entries")
    tol = PSD_RTOL * max(float(diag.max()), np.finfo(float).tiny) * max(1, H.shape[0])
    try:
        np.linalg.cholesky(H + tol * np.eye(H.shape[0]))
    except np.linalg.LinAlgError:
        lam = float(np.linalg.eigvalsh(H)[0])
        raise ProblemError(
            f"{name} is not positive semidefinite: smallest eigenvalue {lam:.3g} "
            f"(tolerance {-tol:.3g})"
        ) from None
    return H


def validate_vector(v: Any, n: int, *, name: str) -> np.ndarray:
    """A finite float64 vector of length ``n``."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1 or v.shape[0] != n:
        raise ProblemError(f"{name} must be a vector of length {n}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ProblemError(f"{name} contains NaN or infinite entries")
    return v


def validate_bits(bits: Any) -> int:
    """An integer bit width in 1..16."""
    try:
        b = int(bits)
    except (TypeError, ValueError):
        raise ProblemError(f"bits must be an integer in 1..16, got {bits!r}") from None
    if b != bits or not 1 <= b <= 16:
        raise ProblemError(f"bits must be an integer in 1..16, got {bits!r}")
    return b


def validate_scale(scale: Any) -> float:
    """A finite, strictly positive scale."""
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise ProblemError(f"scale must be a positive number, got {scale!r}") from None
    if not math.isfinite(s) or s <= 0.0:
        raise ProblemError(f"scale must be finite and > 0, got {scale!r}")
    return s


def grid_limits(bits: int) -> tuple[int, int]:
    """Signed ``bits``-bit integer grid: ``(-2^(bits-1), 2^(bits-1) - 1)``."""
    b = validate_bits(bits)
    return -(1 << (b - 1)), (1 << (b - 1)) - 1


def density_to_k(density: float, n: int) -> int:
    """``k = round(density·n)`` (halves round up), checking ``0 <= density <= 1``."""
    d = float(density)
    if not math.isfinite(d) or not 0.0 <= d <= 1.0:
        raise ProblemError(f"density must lie in [0, 1], got {density!r}")
    return int(math.floor(d * n + 0.5))


def validate_sparsity(k: Any, nm: Any, n: int) -> tuple[int | None, tuple[int, int] | None]:
    """Check a nonzero limit ``k`` and/or an N:M pattern for ``n`` inputs.

    Returns ``(k, nm)``: with an N:M pattern (at most ``N`` nonzero in each group of ``M``
    consecutive inputs; ``M`` must divide ``n``) ``k = n·N/M`` (a given ``k`` must agree);
    ``(None, None)`` when neither is given.
    """
    if nm is not None:
        try:
            N, M = (int(v) for v in nm)
        except (TypeError, ValueError):
            raise ProblemError(f"nm must be a pair (N, M), got {nm!r}") from None
        if M < 1 or not 0 <= N <= M:
            raise ProblemError(f"N:M pattern needs 0 <= N <= M and M >= 1, got {N}:{M}")
        if n % M:
            raise ProblemError(f"N:M pattern {N}:{M} needs M to divide n = {n}")
        nm_k = n // M * N
        if k is not None and int(k) != nm_k:
            raise ProblemError(f"k = {k} contradicts the N:M pattern {N}:{M} (k = {nm_k})")
        k, nm = nm_k, (N, M)
    if k is None:
        return None, None
    try:
        ok = int(k) == k and 0 <= int(k) <= n
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ProblemError(f"k must be an integer in [0, n = {n}], got {k!r}")
    return int(k), nm


def validate_levels(levels: Any, n: int) -> np.ndarray:
    """Sorted level sets: ``(L,)`` shared by all ``n`` inputs or ``(n, L)`` one row per input.

    Every row must be finite, non-empty and strictly increasing (no repeats). Returns float64.
    """
    try:
        lv = np.asarray(levels, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProblemError(f"levels must be an array of numbers, got {levels!r}") from None
    if lv.ndim == 1:
        rows = lv[None, :]
    elif lv.ndim == 2:
        if lv.shape[0] != n:
            raise ProblemError(
                f"per-input levels must have shape (n, L) = ({n}, L), got {lv.shape}")
        rows = lv
    else:
        raise ProblemError(f"levels must have shape (L,) or (n, L) = ({n}, L), got {lv.shape}")
    if rows.shape[1] == 0:
        raise ProblemError("levels are empty: every input needs at least one level")
    if not np.all(np.isfinite(rows)):
        raise ProblemError("levels contain NaN or infinite entries")
    steps = np.diff(rows, axis=1)
    bad = np.flatnonzero(np.any(steps <= 0.0, axis=1))
    if bad.size:
        r = int(bad[0])
        what = "repeated" if np.any(steps[r] == 0.0) else "not sorted"
        where = "" if lv.ndim == 1 else f" of input {r}"
        raise ProblemError(f"levels{where} are {what}: levels must be strictly increasing "
                           f"(sort them and drop repeats), got {rows[r].tolist()[:8]}"
                           + (" …" if rows.shape[1] > 8 else ""))
    return lv


def quadratic_error(H: np.ndarray, w0: np.ndarray, w: np.ndarray) -> float:
    """``(w - w0)ᵀ H (w - w0)``, clamped at 0 (H is PSD; tiny negatives are rounding)."""
    d = np.asarray(w, dtype=np.float64) - w0
    return max(0.0, float(d @ (H @ d)))


# --------------------------------------------------------------------------------------------
# Per-channel problems
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _ChannelProblem:
    H: np.ndarray
    w0: np.ndarray

    @property
    def n(self) -> int:
        return int(self.w0.shape[0])

    @property
    def norm(self) -> float:
        """``w0ᵀ H w0``, the error of the all-zero solution (the SQNR reference)."""
        return max(0.0, float(self.w0 @ (self.H @ self.w0)))

    def error(self, w: Any) -> float:
        """Exact error ``(w - w0)ᵀ H (w - w0)`` of a candidate ``w``."""
        return quadratic_error(self.H, self.w0, w)

    def __post_init__(self) -> None:
        # validate H and w0, then the subclass's own fields (``_finish``)
        H = validate_hessian(self.H)
        object.__setattr__(self, "H", H)
        self._finish(validate_vector(self.w0, H.shape[0], name="w0"))

    def _finish(self, w0: np.ndarray) -> None:  # pragma: no cover - every subclass has one
        object.__setattr__(self, "w0", w0)


@dataclass(frozen=True, eq=False)
class QuantProblem(_ChannelProblem):
    """``min (s·z - w0)ᵀ H (s·z - w0)`` over integer ``z`` in the signed ``bits``-bit grid.

    Parameters
    ----------
    H : (n, n) array_like
        Symmetric PSD Hessian ``XᵀX``.
    w0 : (n,) array_like
        Original weights.
    scale : float
        Grid step ``s > 0``.
    bits : int
        Bit width in 1..16; ``z ∈ {-2^(bits-1), …, 2^(bits-1) - 1}``.

    Examples
    --------
    >>> import numpy as np
    >>> p = QuantProblem(np.eye(2), np.array([0.3, -0.8]), scale=0.5, bits=2)
    >>> p.zmin, p.zmax
    (-2, 1)
    >>> round(p.error(p.scale * np.array([1, -2])), 12)     # (0.5 − 0.3)² + (−1 + 0.8)²
    0.08
    """

    scale: float = 1.0
    bits: int = 4

    def __post_init__(self) -> None:
        H = validate_hessian(self.H)
        object.__setattr__(self, "H", H)
        object.__setattr__(self, "w0", validate_vector(self.w0, H.shape[0], name="w0"))
        object.__setattr__(self, "scale", validate_scale(self.scale))
        object.__setattr__(self, "bits", validate_bits(self.bits))

    @classmethod
    def unchecked(cls, H: np.ndarray, w0: np.ndarray, scale: float, bits: int) -> QuantProblem:
        """Build without validating ``H`` again (the caller validated it, e.g. a layer)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "H", H)
        object.__setattr__(obj, "w0", validate_vector(w0, H.shape[0], name="w0"))
        object.__setattr__(obj, "scale", validate_scale(scale))
        object.__setattr__(obj, "bits", validate_bits(bits))
        return obj

    @property
    def zmin(self) -> int:
        return grid_limits(self.bits)[0]

    @property
    def zmax(self) -> int:
        return grid_limits(self.bits)[1]

    def weights(self, codes: Any) -> np.ndarray:
        """``scale·codes`` after checking the codes lie on the grid."""
        z = np.asarray(codes)
        if z.shape != (self.n,):
            raise ProblemError(f"codes must have shape ({self.n},), got {z.shape}")
        if np.any(z != np.round(z)) or np.any(z < self.zmin) or np.any(z > self.zmax):
            raise ProblemError(f"codes must be integers in [{self.zmin}, {self.zmax}]")
        return self.scale * z.astype(np.float64)


@dataclass(frozen=True, eq=False)
class PruneProblem(_ChannelProblem):
    """``min (w - w0)ᵀ H (w - w0)`` over ``w`` with at most ``k`` nonzeros.

    Parameters
    ----------
    H, w0 : as in :class:`QuantProblem`.
    k : int, optional
        Number of weights kept, ``0 <= k <= n``. Derived from ``nm`` when that is given.
    nm : (N, M), optional
        Semi-structured sparsity: at most ``N`` kept in each group of ``M`` consecutive inputs
        (``M`` must divide ``n``); then ``k = n·N/M``.
    box_factor : float, optional
        The paper's box: kept weights limited to ``|w_i| <= box_factor·max|w0|``.

    Use :meth:`from_density` for ``k = round(density·n)``.
    """

    k: int | None = None
    nm: tuple[int, int] | None = None
    box_factor: float | None = None

    def _finish(self, w0: np.ndarray) -> None:
        n = w0.shape[0]
        object.__setattr__(self, "w0", w0)
        if self.k is None and self.nm is None:
            raise ProblemError("a pruning problem needs k (or density, or an N:M pattern)")
        k, nm = validate_sparsity(self.k, self.nm, n)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "nm", nm)
        if self.box_factor is not None:
            c = float(self.box_factor)
            if not math.isfinite(c) or c <= 0.0:
                raise ProblemError(f"box_factor must be finite and > 0, got {self.box_factor!r}")
            object.__setattr__(self, "box_factor", c)

    @classmethod
    def unchecked(cls, H: np.ndarray, w0: np.ndarray, **kw: Any) -> PruneProblem:
        """Build without validating ``H`` again (the caller validated it)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "H", H)
        for name in ("k", "nm", "box_factor"):
            object.__setattr__(obj, name, kw.pop(name, None))
        if kw:
            raise TypeError(f"unexpected arguments {sorted(kw)}")
        obj._finish(validate_vector(w0, H.shape[0], name="w0"))
        return obj

    @classmethod
    def from_density(cls, H: Any, w0: Any, density: float, **kw: Any) -> PruneProblem:
        """``k = round(density·n)``."""
        n = np.asarray(w0).shape[0]
        return cls(H, w0, k=density_to_k(density, n), **kw)

    @property
    def density(self) -> float:
        return self.k / self.n

    @property
    def box(self) -> float | None:
        """Absolute bound ``box_factor·max|w0|`` on kept weights, or ``None``."""
        if self.box_factor is None:
            return None
        return self.box_factor * float(np.max(np.abs(self.w0)))

    def check_mask(self, mask: Any) -> np.ndarray:
        """The mask as bool, after checking it respects ``k`` (and the N:M pattern)."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != (self.n,):
            raise ProblemError(f"mask must have shape ({self.n},), got {m.shape}")
        if int(m.sum()) > self.k:
            raise ProblemError(f"mask keeps {int(m.sum())} weights, more than k = {self.k}")
        if self.nm is not None:
            N, M = self.nm
            if np.any(m.reshape(-1, M).sum(axis=1) > N):
                raise ProblemError(f"mask breaks the {N}:{M} pattern")
        return m


@dataclass(frozen=True, eq=False)
class LevelProblem(_ChannelProblem):
    """``min (w - w0)ᵀ H (w - w0)`` over ``w_j ∈ L_j``, optionally with a nonzero limit.

    Every scalar number format is a set of allowed values per weight (DESIGN.md): the sorted
    levels ``L_j`` of input ``j`` carry its group's scale and zero point. Symmetric INT-b with
    scale ``s`` is ``L_j = s·{-2^(b-1), …, 2^(b-1) - 1}`` (:meth:`from_quant`); the presets of
    :mod:`solvers.formats` build the others (asymmetric and group-wise INT, FP8, FP4, NF4).

    Parameters
    ----------
    H, w0 : as in :class:`QuantProblem`.
    levels : (L,) or (n, L) array_like
        Strictly increasing finite levels in weight units, shared by every input or one row per
        input (all rows the same length ``L``).
    k : int, optional
        At most ``k`` nonzero weights, ``0 <= k <= n``. Zero must then be a level of every
        input.
    nm : (N, M), optional
        At most ``N`` nonzero in each group of ``M`` consecutive inputs (``M`` divides ``n``;
        ``k = n·N/M``). Zero must be a level of every input.

    Examples
    --------
    >>> import numpy as np
    >>> p = LevelProblem(np.eye(3), [0.3, -0.8, 0.05], levels=[-1.0, -0.5, 0.0, 0.5], k=2)
    >>> p.table.shape, p.shared, p.zero_index.tolist()
    ((3, 4), True, [2, 2, 2])
    >>> round(p.error(p.check_weights([0.5, -1.0, 0.0])), 12)   # 0.2² + 0.2² + 0.05²
    0.0825
    """

    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    k: int | None = None
    nm: tuple[int, int] | None = None

    def _finish(self, w0: np.ndarray) -> None:
        n = w0.shape[0]
        object.__setattr__(self, "w0", w0)
        lv = validate_levels(self.levels, n)
        lv.setflags(write=False)
        object.__setattr__(self, "levels", lv)
        k, nm = validate_sparsity(self.k, self.nm, n)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "nm", nm)
        if k is not None:
            missing = np.flatnonzero(self.zero_index < 0)
            if missing.size:
                limit = f"the {nm[0]}:{nm[1]} pattern" if nm else f"k = {k}"
                which = ("no input" if lv.ndim == 1 else
                         f"inputs {', '.join(map(str, missing[:8]))}"
                         + (" …" if missing.size > 8 else "") + f" (of {n})")
                raise ProblemError(
                    f"a sparsity limit ({limit}) needs zero as a level of every input, but "
                    f"{which} {'has' if lv.ndim == 1 else 'have'} a zero level: add 0.0 to the "
                    "levels or drop the limit")

    @classmethod
    def unchecked(cls, H: np.ndarray, w0: np.ndarray, levels: Any, *, k: int | None = None,
                  nm: tuple[int, int] | None = None) -> LevelProblem:
        """Build without validating ``H`` again (the caller validated it, e.g. a layer)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "H", H)
        object.__setattr__(obj, "levels", levels)
        object.__setattr__(obj, "k", k)
        object.__setattr__(obj, "nm", nm)
        obj._finish(validate_vector(w0, H.shape[0], name="w0"))
        return obj

    @classmethod
    def from_quant(cls, problem: QuantProblem, *, k: int | None = None,
                   nm: tuple[int, int] | None = None) -> LevelProblem:
        """The signed uniform grid of a :class:`QuantProblem` as levels ``s·{zmin, …, zmax}``.

        Examples
        --------
        >>> import numpy as np
        >>> q = QuantProblem(np.eye(2), np.array([0.3, -0.8]), scale=0.5, bits=2)
        >>> LevelProblem.from_quant(q).levels.tolist()
        [-1.0, -0.5, 0.0, 0.5]
        """
        lv = problem.scale * np.arange(problem.zmin, problem.zmax + 1, dtype=np.float64)
        return cls.unchecked(problem.H, problem.w0, lv, k=k, nm=nm)

    @property
    def shared(self) -> bool:
        """True when one level set serves every input."""
        return self.levels.ndim == 1

    @property
    def table(self) -> np.ndarray:
        """The levels as an ``(n, L)`` table (a read-only broadcast view when shared)."""
        return np.broadcast_to(self.levels, (self.n, self.levels.shape[-1]))

    @property
    def zero_index(self) -> np.ndarray:
        """Per input, the index of the level ``0.0`` in its row, or ``-1`` when zero is not a
        level."""
        t = self.table
        hit = t == 0.0
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)

    @property
    def sparse(self) -> bool:
        """True with a nonzero limit (``k`` or N:M)."""
        return self.k is not None

    def weights(self, indices: Any) -> np.ndarray:
        """Weights from per-input level indices: ``w_j = L_j[indices_j]``."""
        i = np.asarray(indices)
        L = self.levels.shape[-1]
        if i.shape != (self.n,) or np.any(i != np.round(i)) or np.any((i < 0) | (i >= L)):
            raise ProblemError(f"level indices must be {self.n} integers in [0, {L - 1}]")
        return self.table[np.arange(self.n), i.astype(np.int64)].copy()

    def check_weights(self, w: Any) -> np.ndarray:
        """``w`` as float64 after checking every ``w_j`` is a level of input ``j`` (exactly) and
        the nonzero limit holds."""
        w = validate_vector(w, self.n, name="weights")
        t = self.table
        off = np.flatnonzero(~np.any(t == w[:, None], axis=1))
        if off.size:
            j = int(off[0])
            raise ProblemError(f"weight {j} = {w[j]!r} is not one of its levels")
        if self.k is not None and int(np.count_nonzero(w)) > self.k:
            raise ProblemError(f"{int(np.count_nonzero(w))} nonzero weights, more than k = "
                               f"{self.k}")
        if self.nm is not None:
            N, M = self.nm
            if np.any(np.count_nonzero(w.reshape(-1, M), axis=1) > N):
                raise ProblemError(f"weights break the {N}:{M} pattern")
        return w


# --------------------------------------------------------------------------------------------
# A layer chunk: all channels at once (the export format in memory)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LayerProblem:
    """All output channels of one layer chunk.

    Attributes
    ----------
    H : (n, n) or (C, n, n) float64
        Shared Hessian, or one per channel where channels see different inputs.
    W0 : (C, n) float64
        Original weights, one row per output channel.
    meta : dict
        ``layer``, ``chunk``, ``input_start``, ``input_stop``, ``rows`` and anything else the
        exporter recorded (``scale``, ``bits``, ``protocol``, ``dead_inputs``, …).
    """

    H: np.ndarray
    W0: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        W0 = np.asarray(self.W0, dtype=np.float64)
        if W0.ndim == 1:
            W0 = W0[None, :]
        if W0.ndim != 2:
            raise ProblemError(f"W0 must be (channels, n), got shape {W0.shape}")
        if not np.all(np.isfinite(W0)):
            raise ProblemError("W0 contains NaN or infinite entries")
        H = np.asarray(self.H, dtype=np.float64)
        if H.ndim == 2:
            H = validate_hessian(H)
            if H.shape[0] != W0.shape[1]:
                raise ProblemError(f"H is {H.shape} but W0 rows have n = {W0.shape[1]}")
        elif H.ndim == 3:
            if H.shape[0] != W0.shape[0] or H.shape[1] != W0.shape[1]:
                raise ProblemError(f"per-channel H is {H.shape} but W0 is {W0.shape}")
            H = np.stack([validate_hessian(h, name=f"H[{c}]") for c, h in enumerate(H)])
        else:
            raise ProblemError(f"H must be (n, n) or (channels, n, n), got shape {H.shape}")
        object.__setattr__(self, "H", H)
        object.__setattr__(self, "W0", W0)
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def channels(self) -> int:
        return int(self.W0.shape[0])

    @property
    def n(self) -> int:
        return int(self.W0.shape[1])

    @property
    def shared_hessian(self) -> bool:
        return self.H.ndim == 2

    def hessian(self, channel: int) -> np.ndarray:
        """The ``H`` that channel ``channel`` sees."""
        self._check_channel(channel)
        return self.H if self.H.ndim == 2 else self.H[channel]

    def norms(self) -> np.ndarray:
        """``w0ᵀ H w0`` per channel."""
        if self.H.ndim == 2:
            return np.maximum(0.0, np.einsum("ci,ij,cj->c", self.W0, self.H, self.W0))
        return np.maximum(0.0, np.einsum("ci,cij,cj->c", self.W0, self.H, self.W0))

    def select(self, channels: list[int]) -> LayerProblem:
        """The same chunk restricted to ``channels`` (``H`` not validated again)."""
        for c in channels:
            self._check_channel(c)
        idx = np.asarray(channels, dtype=int)
        obj = object.__new__(LayerProblem)
        object.__setattr__(obj, "H", self.H if self.H.ndim == 2 else self.H[idx])
        object.__setattr__(obj, "W0", self.W0[idx])
        object.__setattr__(obj, "meta", dict(self.meta))
        return obj

    def quant(self, channel: int, *, scale: float, bits: int) -> QuantProblem:
        """Channel ``channel`` as a quantization problem."""
        return QuantProblem.unchecked(self.hessian(channel), self.W0[channel], scale, bits)

    def levels(self, channel: int, levels: Any, **kw: Any) -> LevelProblem:
        """Channel ``channel`` over the given levels (``(L,)`` or ``(n, L)``; ``k=``, ``nm=``)."""
        return LevelProblem.unchecked(self.hessian(channel), self.W0[channel], levels, **kw)

    def prune(self, channel: int, **kw: Any) -> PruneProblem:
        """Channel ``channel`` as a pruning problem (``k=``, ``density=``, ``nm=``, …)."""
        H = self.hessian(channel)
        if "density" in kw:
            kw["k"] = density_to_k(kw.pop("density"), self.n)
        return PruneProblem.unchecked(H, self.W0[channel], **kw)

    def _check_channel(self, channel: int) -> None:
        if not isinstance(channel, (int, np.integer)) or not 0 <= channel < self.channels:
            last = self.channels - 1
            raise ProblemError(
                f"channel {channel!r} out of range: this problem has channels 0..{last}"
            )
