"""Format presets: the levels a deployed number format allows, built from the weights ``W0``.

A format is a *codebook* (the values one element code can take) times a *scale* per group of
weights (and, for asymmetric integers, a zero point). For input ``j`` of channel ``c`` in group
``g``, the levels of :class:`solvers.problem.LevelProblem` are

* symmetric (``int{b}``, ``fp…``, ``nf4``): ``L_j = s_cg·Q``, ``Q`` the format's codebook;
* asymmetric (``int{b}-asym``): ``L_j = s_cg·({0, …, 2^b − 1} − z_cg)``, integer zero point
  ``z_cg``; the range is widened to contain 0 (as GPTQ does), so zero is always a level.

Names (``parse_format``)::

    int{b}[-asym]      signed symmetric INT-b (codebook {−2^(b−1), …, 2^(b−1)−1}) / asymmetric
    fp{b}-e{E}m{M}     minifloat with E exponent and M mantissa bits (b = 1 + E + M): fp8-e4m3
                       (OCP E4M3FN: no infinities, max 448), fp8-e5m2 (IEEE-like: max 57344),
                       fp6-e2m3, fp6-e3m2, fp4-e2m1 (OCP MX: every code finite, max 6)
    nf4                QLoRA's 4-bit NormalFloat (normal quantiles, exact zero), absmax scale
    …-tensor | -ch | -g{G}    one scale per tensor / per output channel / per G inputs
    …-mx | -nv         FP4/FP6 scale types: MX (power-of-two E8M0 scale per 32) or NVFP4-style
                       (FP8 E4M3 scale per 16 times one FP32 scale per tensor,
                       ``max|W|/(448·max Q)``, that brings the block scales into E4M3's range)
    …+N:M              an N:M sparsity pattern on top (zero is a level of every format here)

Defaults: ``int…`` and ``fp8…`` per tensor with an FP16 (int) / FP32 (fp8) scale; ``fp4``/``fp6``
``-mx`` (groups of 32, E8M0 scale); ``nf4`` groups of 64 with an FP32 absmax (QLoRA without
double quantization). Groups run along the inputs of each channel; a group size must divide the
number of inputs ``n`` (a last partial group is refused, not silently merged or padded).

Scale choice (``scale_method``), as :mod:`solvers.scales` does for today's grid, on the weights
alone (no Hessian):

* ``"minmax"``: the largest magnitude lands on the largest level, ``s = max|w| / max Q``
  (asymmetric: ``s = (max − min)/(2^b − 1)`` over ``[min(w, 0), max(w, 0)]``,
  ``z = round(−min/s)``); MX: ``s = 2^(⌊log2 max|w|⌋ − e_max)`` (the OCP MX rule); NV:
  ``max|w|/max Q`` rounded to FP8 E4M3;
* ``"mse"``: the least ``Σ(q(w) − w)²`` with ``q`` round-to-nearest-level over candidates: for
  symmetric INT exactly :func:`solvers.scales.mse_scale` (so ``int4`` per tensor is today's grid);
  for the other codebooks ``candidates`` ratios ``r·s_minmax``, ``r ∈ (0, max_ratio]``; for
  asymmetric INT GPTQ's shrink search (``[p·min, p·max]``, ``p ∈ [0.2, 1]``); for MX the
  exponents around the min-max one; for NV the E4M3 values around it.

Scales of ``int``, ``fp8`` and ``nf4`` stay float64 (their stored precision, FP16 or FP32, is
charged in the bit count but not applied); MX and NV scales are exactly representable in their
8-bit types (that is the format).

Bits per weight include the metadata (:meth:`FormatSpec.bits_per_weight`): a 16-bit scale per 128
inputs adds 0.125, an asymmetric format's zero point (stored in ``b`` bits, as GPTQ packs them)
``b/G`` more; a per-tensor scale adds ``scale_bits/(C·n)``. Sparsity metadata (N:M indices, masks)
is not included there: :func:`storage_bits` adds it under a stated accounting
(``SPARSE_ACCOUNTINGS``), with only the kept values stored. Every figure is bits per weight of
the dense ``C × n`` tensor (the FP16 original is 16).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .problem import LevelProblem, ProblemError, validate_sparsity
from .scales import minmax_scale, mse_scale

SCALE_METHODS = ("mse", "minmax")
#: candidate ratios (and their range) of the MSE scale search over a non-uniform codebook
CANDIDATES, MAX_RATIO = 200, 1.5
#: GPTQ's shrink search for asymmetric grids: ``p = 1 − i/100`` for ``i < 80``
ASYM_GRID, ASYM_MAX_SHRINK = 100, 0.8
#: bits of each scale type
SCALE_BITS = {"fp16": 16, "fp32": 32, "e8m0": 8, "e4m3": 8}
#: how the positions of the kept weights of a sparse format are charged (:func:`storage_bits`)
SPARSE_ACCOUNTINGS = ("hardware", "bitmask", "entropy", "paper")

_NAME = re.compile(
    r"^(?:(?P<int>int(?P<ibits>\d+))(?P<asym>-asym)?"
    r"|(?P<fp>fp(?P<fbits>\d+)-e(?P<e>\d)m(?P<m>\d))"
    r"|(?P<nf>nf4))"
    r"(?:-(?P<s1>mx|nv))?"
    r"(?:-(?P<gran>tensor|ch|g(?P<g>\d+)))?"
    r"(?:-(?P<s2>mx|nv))?"
    r"(?:\+(?P<N>\d+):(?P<M>\d+))?$"
)
#: examples of valid names, for error messages
EXAMPLES = ("int4", "int8-ch", "int4-asym-g128", "fp8-e4m3", "fp8-e5m2", "fp6-e2m3", "fp4-e2m1",
            "fp4-e2m1-nv", "nf4", "nf4-g128", "int4+2:4")


@dataclass(frozen=True)
class FormatSpec:
    """A parsed format name: codebook, granularity, scale type, optional N:M pattern.

    Attributes
    ----------
    name : canonical name (``format_name`` of the fields; ``parse_format(name) == self``).
    family : ``"int"``, ``"fp"`` or ``"nf"``.
    bits : bits of one element code.
    asymmetric : integer grid with a zero point.
    exponent_bits, mantissa_bits : minifloat fields (``fp`` only).
    granularity : ``"tensor"``, ``"channel"`` or ``"group"``.
    group_size : inputs per group (``"group"`` only).
    scale_type : ``"fp16"``, ``"fp32"``, ``"e8m0"`` (MX) or ``"e4m3"`` (NV).
    nm : ``(N, M)`` sparsity pattern or ``None``.
    """

    family: str
    bits: int
    asymmetric: bool = False
    exponent_bits: int | None = None
    mantissa_bits: int | None = None
    granularity: str = "tensor"
    group_size: int | None = None
    scale_type: str = "fp16"
    nm: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        if self.family == "int":
            s = f"int{self.bits}" + ("-asym" if self.asymmetric else "")
        elif self.family == "fp":
            s = f"fp{self.bits}-e{self.exponent_bits}m{self.mantissa_bits}"
        else:
            s = "nf4"
        s += {"tensor": "-tensor", "channel": "-ch"}.get(self.granularity,
                                                         f"-g{self.group_size}")
        if self.family == "fp" and self.scale_type in ("e8m0", "e4m3"):
            s += "-mx" if self.scale_type == "e8m0" else "-nv"
        if self.nm is not None:
            s += f"+{self.nm[0]}:{self.nm[1]}"
        return s

    @property
    def scale_bits(self) -> int:
        return SCALE_BITS[self.scale_type]

    @property
    def zero_point_bits(self) -> int:
        return self.bits if self.asymmetric else 0

    def codebook(self) -> np.ndarray:
        """The sorted values of one element code (asymmetric INT: ``0 … 2^b − 1``)."""
        if self.family == "int":
            if self.asymmetric:
                return np.arange(0, 1 << self.bits, dtype=np.float64)
            return np.arange(-(1 << (self.bits - 1)), 1 << (self.bits - 1), dtype=np.float64)
        if self.family == "fp":
            return minifloat_values(self.exponent_bits, self.mantissa_bits)
        return nf4_values()

    def group_length(self, n: int) -> int:
        """Inputs per scale group for rows of ``n`` inputs (``n`` unless group-wise)."""
        if self.granularity != "group":
            return n
        G = int(self.group_size)
        if n % G:
            raise ProblemError(
                f"format {self.name}: group size {G} does not divide the n = {n} inputs "
                f"(the last group would have {n % G}); a partial group is refused: choose a "
                f"group size dividing {n}, or per-channel / per-tensor scales")
        return G

    def bits_per_weight(self, n: int, channels: int = 1) -> float:
        """Element bits plus scale and zero-point bits per weight, for a ``channels × n``
        tensor (sparsity metadata excluded, see the module docstring).

        Examples
        --------
        >>> parse_format("int4-asym-g128").bits_per_weight(1024)   # 4 + 16/128 + 4/128
        4.15625
        >>> parse_format("fp4-e2m1").bits_per_weight(64)           # MX: 4 + 8/32
        4.25
        """
        per = {"tensor": channels * n, "channel": n}.get(self.granularity, self.group_size)
        extra = 32.0 / (channels * n) if self.scale_type == "e4m3" else 0.0  # NV tensor scale
        return self.bits + (self.scale_bits + self.zero_point_bits) / per + extra


def parse_format(name: str, *, group_size: int | None = None) -> FormatSpec:
    """A :class:`FormatSpec` from a name (see the module docstring); ``group_size`` sets (or
    must agree with) the name's ``-g{G}``.

    Examples
    --------
    >>> parse_format("int4-asym", group_size=128).name
    'int4-asym-g128'
    >>> parse_format("fp4-e2m1").name, parse_format("fp4-e2m1-nv").name
    ('fp4-e2m1-g32-mx', 'fp4-e2m1-g16-nv')
    >>> parse_format("nf4+2:4").name
    'nf4-g64+2:4'
    """
    text = str(name).strip().lower()
    m = _NAME.match(text)
    if m is None:
        raise ProblemError(f"unknown format {name!r}; valid: int{{b}}[-asym], fp8-e4m3, "
                           f"fp8-e5m2, fp6-e2m3, fp6-e3m2, fp4-e2m1[-mx|-nv], nf4, each with "
                           f"-tensor, -ch or -g{{G}} and an optional +N:M, e.g. "
                           f"{', '.join(EXAMPLES)}")
    if m["int"]:
        bits = int(m["ibits"])
        if not 2 <= bits <= 16:
            raise ProblemError(f"format {name!r}: integer formats need 2..16 bits")
        spec = FormatSpec("int", bits, asymmetric=bool(m["asym"]))
    elif m["fp"]:
        e, mm, bits = int(m["e"]), int(m["m"]), int(m["fbits"])
        if e < 1 or 1 + e + mm != bits or bits > 8:
            raise ProblemError(f"format {name!r}: a minifloat fp{{b}}-e{{E}}m{{M}} needs "
                               f"b = 1 + E + M <= 8 and E >= 1, e.g. fp8-e4m3, fp4-e2m1")
        spec = FormatSpec("fp", bits, exponent_bits=e, mantissa_bits=mm, scale_type="fp32")
        if bits <= 6:  # MX by default
            spec = replace(spec, granularity="group", group_size=32, scale_type="e8m0")
    else:
        spec = FormatSpec("nf", 4, granularity="group", group_size=64, scale_type="fp32")
    if m["s1"] and m["s2"]:
        raise ProblemError(f"format {name!r}: give one scale type (-mx or -nv)")
    style = m["s1"] or m["s2"]
    if style is not None:
        if spec.family != "fp":
            raise ProblemError(f"format {name!r}: -mx / -nv scale types are for fp formats")
        spec = replace(spec, granularity="group", group_size=32 if style == "mx" else 16,
                       scale_type="e8m0" if style == "mx" else "e4m3")
    gran = m["gran"]
    if gran == "tensor":
        spec = replace(spec, granularity="tensor", group_size=None)
    elif gran == "ch":
        spec = replace(spec, granularity="channel", group_size=None)
    elif gran is not None:
        spec = replace(spec, granularity="group", group_size=int(m["g"]))
    if group_size is not None:
        if gran is not None and gran.startswith("g") and int(m["g"]) != int(group_size):
            raise ProblemError(f"format {name!r} names group size {m['g']} but group_size = "
                               f"{group_size} was given")
        spec = replace(spec, granularity="group", group_size=int(group_size))
    if spec.granularity == "group" and not (spec.group_size and spec.group_size >= 1):
        raise ProblemError(f"format {name!r}: the group size must be >= 1")
    if spec.scale_type in ("e8m0", "e4m3") and spec.granularity != "group":
        raise ProblemError(f"format {name!r}: MX / NV scales are per group")
    if m["N"] is not None:
        N, M = int(m["N"]), int(m["M"])
        if M < 1 or not 0 <= N <= M:
            raise ProblemError(f"format {name!r}: N:M pattern needs 0 <= N <= M and M >= 1")
        spec = replace(spec, nm=(N, M))
    return spec


# --------------------------------------------------------------------------------------------
# Codebooks
# --------------------------------------------------------------------------------------------


def minifloat_values(exponent_bits: int, mantissa_bits: int) -> np.ndarray:
    """Every finite value of a sign + E + M minifloat, sorted, ±0 merged.

    Bias ``2^(E−1) − 1``, subnormals at exponent field 0. Special codes: with ``E + M = 7``
    and ``E = 4`` the OCP E4M3FN rule (only ``S.1111.111`` is NaN: max 448); with ``E >= 5``
    the IEEE rule (the top exponent field is Inf/NaN: E5M2 max 57344); otherwise (FP6, FP4 of
    the OCP MX spec) every code is finite.

    Examples
    --------
    >>> minifloat_values(2, 1).tolist()
    [-6.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    >>> v = minifloat_values(4, 3); v.size, float(v.max()), float(v[v > 0].min())
    (253, 448.0, 0.001953125)
    """
    E, M = int(exponent_bits), int(mantissa_bits)
    bias = (1 << (E - 1)) - 1
    mant = np.arange(1 << M, dtype=np.float64) / (1 << M)
    vals = [math.ldexp(1.0, 1 - bias) * mant]  # subnormals (and zero)
    top = (1 << E) - 1
    for ef in range(1, top + 1):
        v = math.ldexp(1.0, ef - bias) * (1.0 + mant)
        if ef == top and E >= 5:
            continue  # IEEE: Inf / NaN
        if ef == top and E == 4 and E + M == 7:
            v = v[:-1]  # E4M3FN: S.1111.111 is NaN
        vals.append(v)
    pos = np.unique(np.concatenate(vals))
    return np.concatenate([-pos[:0:-1], pos])


def nf4_values() -> np.ndarray:
    """QLoRA's NF4 codebook (Dettmers et al. 2023, §3), computed: normal quantiles.

    ``2^(k−1) = 8`` positive levels are the standard-normal quantiles at ``8`` equal steps from
    ``δ`` to ``1/2`` (excluding ``1/2``), 7 negative ones likewise at 7 steps, plus an exact 0,
    normalised to ``[−1, 1]``; ``δ = 1 − (1/(2·16) + 1/(2·15))/2`` is the quantile level
    between the two ranges' end points (the construction of the reference implementation, so
    the values agree with published NF4 tables).

    Examples
    --------
    >>> v = nf4_values(); v.size, float(v[0]), float(v[-1]), round(float(v[-2]), 6)
    (16, -1.0, 1.0, 0.722957)
    """
    from scipy.stats import norm

    delta = 1.0 - 0.5 * (1.0 / 32.0 + 1.0 / 30.0)
    pos = norm.ppf(np.linspace(delta, 0.5, 9)[:-1])
    neg = -norm.ppf(np.linspace(delta, 0.5, 8)[:-1])
    v = np.sort(np.concatenate([pos, [0.0], neg]))
    return v / np.max(np.abs(v))


def round_to_e4m3(x: np.ndarray) -> np.ndarray:
    """Round positive ``x`` to the nearest FP8 E4M3 value (saturating at 448, ≥ the least
    subnormal)."""
    grid = minifloat_values(4, 3)
    grid = grid[grid > 0]
    return _nearest(np.asarray(x, dtype=np.float64), grid)


# --------------------------------------------------------------------------------------------
# Levels from weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FormatLevels:
    """The levels of one format for every channel of a ``(C, n)`` weight matrix.

    Attributes
    ----------
    spec : FormatSpec
    codebook : (L,) sorted element values (asymmetric INT: ``0 … 2^b − 1``).
    scales : (C, G) float64, one scale per channel and group (``G = n / group``; tensor and
        channel granularity have ``G = 1``).
    zero_points : (C, G) int64 for asymmetric INT, else None.
    group : inputs per group.
    scale_method : how the scales were chosen.
    bits_per_weight : element plus metadata bits per weight.
    """

    spec: FormatSpec
    codebook: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray | None
    group: int
    scale_method: str
    bits_per_weight: float

    @property
    def channels(self) -> int:
        return int(self.scales.shape[0])

    @property
    def n(self) -> int:
        return int(self.scales.shape[1] * self.group)

    def group_levels(self, channel: int) -> np.ndarray:
        """``(G, L)`` levels of each group of ``channel`` in weight units."""
        s = self.scales[channel][:, None]
        if self.zero_points is None:
            return s * self.codebook[None, :]
        return s * (self.codebook[None, :] - self.zero_points[channel][:, None])

    def levels(self, channel: int) -> np.ndarray:
        """Levels of ``channel``: ``(L,)`` when one scale covers the row, else ``(n, L)``."""
        g = self.group_levels(channel)
        return g[0] if g.shape[0] == 1 else np.repeat(g, self.group, axis=0)

    def problem(self, channel: int, H: np.ndarray, w0: np.ndarray, *, k: int | None = None,
                nm: tuple[int, int] | None = None) -> LevelProblem:
        """The :class:`LevelProblem` of ``channel`` (``nm`` defaults to the format's)."""
        nm = self.spec.nm if nm is None and k is None else nm
        return LevelProblem(H, w0, levels=self.levels(channel), k=k, nm=nm)

    def storage(self, *, k: int | None = None, accounting: str = "hardware") -> StorageBits:
        """:func:`storage_bits` of this format on its ``channels × n`` tensor."""
        return storage_bits(self.spec, self.n, self.channels, k=k, accounting=accounting)

    def nearest(self, W: Any, channels: Any = None) -> np.ndarray:
        """Round-to-nearest level of every weight of ``W`` (``(C, n)``: the rows of
        ``channels``, default all), ties to the lower level."""
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        chans = list(range(self.channels) if channels is None else channels)
        if W.shape != (len(chans), self.n):
            raise ProblemError(f"weights of shape {W.shape} for {len(chans)} channels of "
                               f"n = {self.n} inputs")
        out = np.empty_like(W)
        for r, c in enumerate(chans):
            g = self.group_levels(c)
            for gi in range(g.shape[0]):
                sl = slice(gi * self.group, (gi + 1) * self.group)
                out[r, sl] = _nearest(W[r, sl], g[gi])
        return out


def build_levels(
    W0: Any,
    fmt: str | FormatSpec,
    *,
    group_size: int | None = None,
    scale_method: str = "mse",
    candidates: int = CANDIDATES,
    max_ratio: float = MAX_RATIO,
) -> FormatLevels:
    """The levels of format ``fmt`` for the rows of ``W0`` (``(C, n)``, or ``(n,)``).

    Examples
    --------
    >>> import numpy as np
    >>> W = np.random.default_rng(0).standard_normal((2, 64))
    >>> f = build_levels(W, "int4-asym-g32")
    >>> f.scales.shape, f.levels(0).shape, f.bits_per_weight
    ((2, 2), (64, 16), 4.625)
    >>> e = build_levels(W, "int4")                  # today's grid: one MSE scale per tensor
    >>> from solvers.scales import mse_scale
    >>> bool(np.allclose(e.levels(1), mse_scale(W, 4) * np.arange(-8, 8)))
    True
    """
    spec = fmt if isinstance(fmt, FormatSpec) else parse_format(fmt, group_size=group_size)
    if isinstance(fmt, FormatSpec) and group_size is not None:
        spec = replace(spec, granularity="group", group_size=int(group_size))
    if scale_method not in SCALE_METHODS:
        raise ProblemError(f"unknown scale method {scale_method!r}; valid: "
                           f"{', '.join(SCALE_METHODS)}")
    W = np.asarray(W0, dtype=np.float64)
    if W.ndim == 1:
        W = W[None, :]
    if W.ndim != 2 or W.shape[1] == 0:
        raise ProblemError(f"weights must be (channels, n), got shape {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ProblemError("weights contain NaN or infinite entries")
    C, n = W.shape
    G = spec.group_length(n)
    if spec.nm is not None:
        validate_sparsity(None, spec.nm, n)
    # rows that share one scale: the whole tensor, a channel, or a group of a channel
    rows = W.reshape(1, -1) if spec.granularity == "tensor" else W.reshape(-1, G)
    book = spec.codebook()
    zeros = None
    if spec.asymmetric:
        s, z = _asym_scales(rows, spec.bits, scale_method)
        zeros = z
    elif spec.family == "int":
        fn = mse_scale if scale_method == "mse" else minmax_scale
        s = np.asarray(fn(rows, spec.bits, per_channel=True), dtype=np.float64)
    elif spec.scale_type == "e8m0":
        s = _mx_scales(rows, book, scale_method)
    else:
        # NV: an FP32 tensor scale brings the block scales into E4M3's range (NVFP4's two levels)
        tensor = float(np.max(np.abs(W))) / (448.0 * float(np.max(book))) \
            if spec.scale_type == "e4m3" else None
        s = _codebook_scales(rows, book, scale_method, candidates, max_ratio,
                             tensor_scale=tensor if tensor else (1.0 if tensor == 0 else None))
    groups = n // G
    scales = np.broadcast_to(s.reshape(-1, 1), (C, 1)).copy() if spec.granularity == "tensor" \
        else s.reshape(C, groups)
    if zeros is not None:
        zeros = np.broadcast_to(zeros.reshape(-1, 1), (C, 1)).copy() \
            if spec.granularity == "tensor" else zeros.reshape(C, groups)
    return FormatLevels(spec, book, scales, zeros, G, scale_method,
                        spec.bits_per_weight(n, C))


def _nearest(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Nearest value of the sorted ``grid`` to each entry of ``x`` (ties to the lower)."""
    i = np.clip(np.searchsorted(grid, x), 1, grid.size - 1) if grid.size > 1 else \
        np.zeros(x.shape, dtype=np.int64)
    if grid.size == 1:
        return np.full(x.shape, grid[0])
    lo, hi = grid[i - 1], grid[i]
    return np.where(x - lo <= hi - x, lo, hi)


def _sse_rows(rows: np.ndarray, s: np.ndarray, book: np.ndarray) -> np.ndarray:
    """``Σ_j (s·nearest_Q(w_j/s) − w_j)²`` per row for a column of scales ``s`` (per row)."""
    q = _nearest(rows / s[:, None], book) * s[:, None]
    return np.sum((q - rows) ** 2, axis=1)


def _codebook_scales(rows, book, method, candidates, max_ratio, *, tensor_scale=None):
    """Scales ``r·max|w|/max|Q|`` (``r = 1``: min-max); with ``tensor_scale`` ``t`` (NV) every
    scale is ``t·e4m3(s/t)``."""
    amax = np.max(np.abs(rows), axis=1)
    base = np.where(amax > 0, amax / np.max(np.abs(book)), 1.0)
    e4m3 = tensor_scale is not None
    if e4m3:
        base = tensor_scale * round_to_e4m3(base / tensor_scale)
    if method == "minmax":
        return base
    if candidates < 1 or not (math.isfinite(max_ratio) and max_ratio > 0):
        raise ProblemError("candidates must be >= 1 and max_ratio finite and > 0")
    best, best_err = base.copy(), _sse_rows(rows, base, book)
    for r in np.linspace(max_ratio / candidates, max_ratio, int(candidates)):
        s = np.where(amax > 0, amax / np.max(np.abs(book)), 1.0) * r
        if e4m3:
            s = tensor_scale * round_to_e4m3(s / tensor_scale)
        err = _sse_rows(rows, s, book)
        better = err < best_err
        best[better], best_err[better] = s[better], err[better]
    best[amax == 0] = base[amax == 0]
    return best


def _mx_scales(rows, book, method):
    """OCP MX: ``2^(⌊log2 max|w|⌋ − e_max)`` (E8M0, exponents −127..127); MSE: the best of
    the exponents −2..+2 around it."""
    amax = np.max(np.abs(rows), axis=1)
    emax = math.floor(math.log2(np.max(book)))
    with np.errstate(divide="ignore"):
        e0 = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - emax, 0.0)
    clip = (-127.0, 127.0)
    base = np.exp2(np.clip(e0, *clip))
    if method == "minmax":
        return base
    best, best_err = base.copy(), _sse_rows(rows, base, book)
    for d in (-2, -1, 1, 2):
        s = np.exp2(np.clip(e0 + d, *clip))
        err = _sse_rows(rows, s, book)
        better = err < best_err
        best[better], best_err[better] = s[better], err[better]
    return best


def _asym_scales(rows, bits, method):
    """Asymmetric grid ``s·(q − z)``, ``q ∈ 0..2^b−1``, over ``[min(w, 0), max(w, 0)]``
    (min-max) or GPTQ's shrink search ``[p·min, p·max]`` (MSE)."""
    qmax = float((1 << bits) - 1)
    xmin = np.minimum(rows.min(axis=1), 0.0)
    xmax = np.maximum(rows.max(axis=1), 0.0)

    def grid(p):
        lo, hi = p * xmin, p * xmax
        s = np.where(hi > lo, (hi - lo) / qmax, 1.0)
        z = np.clip(np.rint(-lo / s), 0, qmax)
        return s, z

    def sse(s, z):
        q = np.clip(np.rint(rows / s[:, None]) + z[:, None], 0, qmax)
        return np.sum((s[:, None] * (q - z[:, None]) - rows) ** 2, axis=1)

    s, z = grid(1.0)
    if method == "mse":
        err = sse(s, z)
        for i in range(1, int(ASYM_MAX_SHRINK * ASYM_GRID)):
            si, zi = grid(1.0 - i / ASYM_GRID)
            ei = sse(si, zi)
            better = ei < err
            s[better], z[better], err[better] = si[better], zi[better], ei[better]
    return s, z.astype(np.int64)


@dataclass(frozen=True)
class StorageBits:
    """Bits per weight of a format, by part (each per weight of the dense tensor).

    ``values``: element codes of the stored (kept) weights; ``scales`` and ``zero_points``: the
    quantization metadata; ``positions``: where the kept weights are (sparse formats);
    ``total``: their sum. ``accounting`` names the rule for ``positions``.
    """

    values: float
    scales: float
    zero_points: float
    positions: float
    accounting: str

    @property
    def total(self) -> float:
        return self.values + self.scales + self.zero_points + self.positions

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "scales": self.scales, "zero_points": self.zero_points,
                "positions": self.positions, "total": self.total,
                "accounting": self.accounting}


def storage_bits(spec: str | FormatSpec, n: int, channels: int = 1, *, k: int | None = None,
                 accounting: str = "hardware") -> StorageBits:
    """Bits per weight of a ``channels × n`` tensor in format ``spec``, metadata included.

    Dense: ``b`` per weight, plus ``(scale bits + zero-point bits)/G`` for groups of ``G``
    (``G = n`` per channel, ``C·n`` per tensor), plus NV's FP32 tensor scale ``32/(C·n)``.
    Sparse — the format's ``+N:M`` (density ``N/M``) or at most ``k`` of every row's ``n``
    nonzero (density ``k/n``): only the kept values are stored (``b·density``); the scales and
    zero points stay one per group of ``G`` inputs; the positions cost, per weight, under
    ``accounting``:

    * ``"hardware"`` (default): N:M as sparse tensor cores store it, a ``⌈log2 M⌉``-bit index
      per kept value (``N·⌈log2 M⌉/M``: 2:4 costs 1 bit per weight); unstructured, a bitmask
      (1 bit per weight);
    * ``"bitmask"``: one bit per weight, N:M too;
    * ``"entropy"``: the least any code can use, ``log2 C(M, N)/M`` (2:4: ``log2 6 / 4``) or
      ``log2 C(n, k)/n``;
    * ``"paper"``: positions free (the paper's mask-free rule; it favours sparsity).

    Examples
    --------
    >>> storage_bits("int4-asym-g128", 1024).total       # 4 + 16/128 + 4/128
    4.15625
    >>> b = storage_bits("int4-ch+2:4", 64)               # 4·½ + 16/64 + 2·2/4
    >>> b.values, b.scales, b.positions, b.total
    (2.0, 0.25, 1.0, 3.25)
    >>> storage_bits("int8-ch", 64, k=16).total            # 8·¼ + 16/64 + 1 (bitmask)
    3.25
    >>> round(storage_bits("fp4-e2m1+2:4", 64, accounting="entropy").total, 6)
    2.896241
    """
    spec = spec if isinstance(spec, FormatSpec) else parse_format(spec)
    if accounting not in SPARSE_ACCOUNTINGS:
        raise ProblemError(f"unknown sparsity accounting {accounting!r}; valid: "
                           f"{', '.join(SPARSE_ACCOUNTINGS)}")
    n, C = int(n), int(channels)
    if n < 1 or C < 1:
        raise ProblemError(f"storage_bits needs n >= 1 and channels >= 1, got {n}, {C}")
    per = {"tensor": C * n, "channel": n}.get(spec.granularity, spec.group_size)
    scales = spec.scale_bits / per + (32.0 / (C * n) if spec.scale_type == "e4m3" else 0.0)
    zeros = spec.zero_point_bits / per
    if spec.nm is not None and k is not None:
        raise ProblemError(f"format {spec.name} has its N:M pattern: give no k as well")
    if spec.nm is not None:
        N, M = spec.nm
        density = N / M
        pos = {"hardware": N * math.ceil(math.log2(M)) / M if M > 1 else 0.0,
               "bitmask": 1.0, "entropy": math.log2(math.comb(M, N)) / M, "paper": 0.0}
    elif k is not None:
        k = int(k)
        if not 0 <= k <= n:
            raise ProblemError(f"k = {k} must lie in 0..{n}")
        density = k / n
        pos = {"hardware": 1.0, "bitmask": 1.0, "entropy": math.log2(math.comb(n, k)) / n,
               "paper": 0.0}
    else:
        return StorageBits(float(spec.bits), scales, zeros, 0.0, accounting)
    return StorageBits(spec.bits * density, scales, zeros, float(pos[accounting]), accounting)


def format_names() -> tuple[str, ...]:
    """Example names of the presets (for help texts)."""
    return EXAMPLES
