"""Solve the channels of one layer chunk with one method: the engine behind ``pqbound solve``.

Per-layer figures follow DESIGN.md: errors and norms are *summed* over channels, and the layer's
SQNR is ``10·log10(Σ norm / Σ error)``; the layer's lower bound is the sum of the channels' lower
bounds (``None`` when any channel has none).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.problem import (
    LayerProblem,
    ProblemError,
    density_to_k,
    validate_levels,
    validate_sparsity,
)
from solvers.registry import get_method
from solvers.result import SolveResult, _json_float, sqnr_db

from .scale_choice import choose_scales

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneSpec:
    """How many weights to keep: exactly one of ``density`` (``k = round(density·n)``, halves
    rounded up: ``floor(density·n + 0.5)``), ``k`` (kept weights, ``0 <= k <= n``) or ``nm``."""

    density: float | None = None
    k: int | None = None
    nm: tuple[int, int] | None = None
    box_factor: float | None = None

    @classmethod
    def from_options(
        cls,
        *,
        density: float | None = None,
        sparsity: float | None = None,
        bits: int | None = None,
        nm: str | tuple[int, int] | None = None,
        box_factor: float | None = None,
        keep: int | None = None,
    ) -> PruneSpec:
        """From the CLI's mutually exclusive choices (``bits`` means density bits/16, ``keep``
        the kept count ``k``)."""
        given = [x is not None for x in (density, sparsity, bits, nm, keep)]
        if sum(given) != 1:
            raise ProblemError("give exactly one of keep, density, sparsity, bits or an N:M "
                               "pattern")
        if keep is not None:
            if int(keep) != keep or keep < 0:
                raise ProblemError(f"keep must be an integer >= 0, got {keep!r}")
            return cls(k=int(keep), box_factor=box_factor)
        if sparsity is not None:
            density = 1.0 - float(sparsity)
            if not 0.0 <= float(sparsity) <= 1.0:
                raise ProblemError(f"sparsity must lie in [0, 1], got {sparsity!r}")
        if bits is not None:
            if not 0 <= int(bits) <= 16:
                raise ProblemError(f"bits must lie in 0..16 for pruning, got {bits!r}")
            density = int(bits) / 16.0
        if isinstance(nm, str):
            nm = parse_nm(nm)
        return cls(density=density, nm=nm, box_factor=box_factor)

    def keywords(self, n: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"box_factor": self.box_factor}
        if self.nm is not None:
            kw["nm"] = self.nm
        elif self.k is not None:
            if not 0 <= self.k <= n:
                raise ProblemError(f"keep {self.k} is out of range for n = {n} inputs "
                                   f"(0..{n})")
            kw["k"] = self.k
        else:
            kw["k"] = density_to_k(self.density if self.density is not None else 1.0, n)
        return kw


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` → ``(2, 4)``."""
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError:
        raise ProblemError(f"an N:M pattern looks like 2:4, got {text!r}") from None


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["damp=0.01", "act_order=true"]`` → ``{"damp": 0.01, "act_order": True}``.

    Values are read as JSON where they parse (numbers, true/false, null, lists), else kept as
    strings; keys with dashes become underscores.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ProblemError(f"options look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def select_channels(problem: LayerProblem, channel: int | None) -> list[int]:
    if channel is None:
        return list(range(problem.channels))
    if not 0 <= channel < problem.channels:
        raise ProblemError(
            f"channel {channel} out of range: this problem has channels 0..{problem.channels - 1}"
        )
    return [channel]


def solve_quant_channels(
    problem: LayerProblem,
    *,
    bits: int,
    method: str = "exact",
    scale: float | None = None,
    scale_method: str = "mse",
    per_channel: bool = False,
    channels: Sequence[int] | None = None,
    time_limit: float | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = False,
) -> list[tuple[int, SolveResult]]:
    """Quantize the selected channels of ``problem`` with ``method``.

    Heuristics with a whole-layer version run vectorised over the channels when ``H`` is shared
    (one factorisation for all); every other method runs channel by channel.
    """
    entry = get_method("quant", method)
    entry.check_options(options or {})
    fn = entry.load()
    scales = choose_scales(problem, bits, scale=scale, method=scale_method, per_channel=per_channel)
    chans = list(range(problem.channels)) if channels is None else list(channels)
    if not entry.certified and problem.shared_hessian:
        from solvers.heuristics.layer import QUANT_LAYER, quant_layer_results

        if method in QUANT_LAYER:
            res = quant_layer_results(problem.select(chans), method, scale=scales[chans],
                                      bits=bits, time_limit=time_limit, **(options or {}))
            return list(zip(chans, res, strict=True))
    out = []
    for c in _progress(chans, progress, f"quant {method}"):
        p = problem.quant(c, scale=float(scales[c]), bits=bits)
        out.append((c, fn(p, time_limit=time_limit, **(options or {}))))
    return out


def solve_prune_channels(
    problem: LayerProblem,
    spec: PruneSpec,
    *,
    method: str = "exact",
    channels: Sequence[int] | None = None,
    time_limit: float | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = False,
) -> list[tuple[int, SolveResult]]:
    """Prune the selected channels of ``problem`` with ``method`` (heuristics vectorised as in
    :func:`solve_quant_channels`)."""
    entry = get_method("prune", method)
    entry.check_options(options or {})
    fn = entry.load()
    chans = list(range(problem.channels)) if channels is None else list(channels)
    if not entry.certified and problem.shared_hessian:
        from solvers.heuristics.layer import PRUNE_LAYER, prune_layer_results

        if method in PRUNE_LAYER:
            res = prune_layer_results(problem.select(chans), method, time_limit=time_limit,
                                      **spec.keywords(problem.n), **(options or {}))
            return list(zip(chans, res, strict=True))
    out = []
    for c in _progress(chans, progress, f"prune {method}"):
        p = problem.prune(c, **spec.keywords(problem.n))
        out.append((c, fn(p, time_limit=time_limit, **(options or {}))))
    return out


@dataclass(frozen=True)
class LevelSpec:
    """Where a quantization's levels come from, and its nonzero limit.

    Exactly one source: ``format`` (a preset of :mod:`solvers.formats`, built from the file's
    ``W0`` with ``group_size`` and ``scale_method``), ``levels`` (``(L,)`` or ``(n, L)`` in weight
    units, e.g. the problem file's), or ``grid_scales`` (today's signed ``bits``-bit grid with one
    scale per channel). The limit: at most ``nonzeros`` (or ``round(density·n)``) nonzero, or an
    N:M pattern.
    """

    format: str | None = None
    group_size: int | None = None
    scale_method: str = "mse"
    levels: Any = None
    grid_scales: Any = None
    bits: int | None = None
    nonzeros: int | None = None
    density: float | None = None
    nm: tuple[int, int] | None = None

    def limit(self, n: int) -> dict[str, Any]:
        """``{"k": …}``, ``{"nm": …}`` or ``{}`` for ``n`` inputs (validated)."""
        given = [x is not None for x in (self.nonzeros, self.density, self.nm)]
        if sum(given) > 1:
            raise ProblemError("give at most one of nonzeros, density or an N:M pattern")
        k = density_to_k(self.density, n) if self.density is not None else self.nonzeros
        k, nm = validate_sparsity(k, self.nm, n)
        return {} if k is None else ({"nm": nm} if nm is not None else {"k": k})

    def channel_levels(self, problem: LayerProblem):
        """A function ``channel -> levels`` and a description dict for the output."""
        sources = [x is not None for x in (self.format, self.levels, self.grid_scales)]
        if sum(sources) != 1:
            raise ProblemError("give exactly one source of levels: a format, levels, or a grid")
        if self.format is not None:
            from solvers.formats import build_levels

            f = build_levels(problem.W0, self.format, group_size=self.group_size,
                             scale_method=self.scale_method)
            desc = {"format": f.spec.name, "scale_method": self.scale_method,
                    "bits_per_weight": f.bits_per_weight, "format_nm": f.spec.nm,
                    "format_spec": f.spec}
            return f.levels, desc
        if self.levels is not None:
            lv = validate_levels(self.levels, problem.n)
            return (lambda c: lv), {"levels": "given", "levels_shape": list(lv.shape)}
        zmin, zmax = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        grid = np.arange(zmin, zmax + 1, dtype=np.float64)
        scales = np.asarray(self.grid_scales, dtype=np.float64)
        return (lambda c: scales[c] * grid), {"bits": self.bits}


def solve_level_channels(
    problem: LayerProblem,
    spec: LevelSpec,
    *,
    method: str = "exact",
    channels: Sequence[int] | None = None,
    time_limit: float | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = False,
) -> tuple[list[tuple[int, SolveResult]], dict[str, Any]]:
    """Solve the selected channels over the levels of ``spec`` (every channel's
    :class:`~solvers.problem.LevelProblem` is built, so validated, before any is solved).

    Returns the results and a description of the levels and the limit (for the output).
    """
    entry = get_method("levels", method)
    entry.check_options(options or {})
    fn = entry.load()
    levels_of, desc = spec.channel_levels(problem)
    limit = spec.limit(problem.n)
    fmt_nm = desc.pop("format_nm", None)
    if fmt_nm is not None:  # the format's own N:M pattern (e.g. int4+2:4)
        if limit and limit.get("nm") != fmt_nm:
            raise ProblemError(f"format {desc['format']} has its own {fmt_nm[0]}:{fmt_nm[1]} "
                               "pattern: give no other nonzero limit")
        limit = {"nm": validate_sparsity(None, fmt_nm, problem.n)[1]}
    desc.update({"k": limit.get("k"), "nm": list(limit["nm"]) if "nm" in limit else None})
    fspec = desc.pop("format_spec", None)
    if fspec is not None:  # size with the sparsity metadata, as `compare --formats` counts it
        from dataclasses import replace

        from solvers.formats import storage_bits

        size = storage_bits(replace(fspec, nm=limit.get("nm")), problem.n, problem.channels,
                            k=limit.get("k"))
        desc.update({"bits_per_weight": size.total, "storage": size.to_dict(),
                     "dense_bits_per_weight": storage_bits(replace(fspec, nm=None), problem.n,
                                                           problem.channels).total})
    chans = list(range(problem.channels)) if channels is None else list(channels)
    problems = [(c, problem.levels(c, levels_of(c), **limit)) for c in chans]
    if "nm" in limit:
        desc["k"] = problems[0][1].k if problems else None
    out = []
    for c, p in _progress(problems, progress, f"levels {method}"):
        out.append((c, fn(p, time_limit=time_limit, **(options or {}))))
    return out, desc


def summarize(results: Iterable[tuple[int, SolveResult]]) -> dict[str, Any]:
    """Layer totals: summed errors, norms and bounds, the layer SQNRs, status counts."""
    results = list(results)
    norm = sum(r.norm for _, r in results)
    err = sum(r.objective for _, r in results)
    bounds = [r.lower_bound for _, r in results]
    lb = None if any(b is None for b in bounds) else float(sum(bounds))
    return {
        "channels": len(results),
        "norm": norm,
        "objective": err,
        "lower_bound": lb,
        "sqnr_db": _json_float(sqnr_db(norm, err)),
        "sqnr_upper_db": _json_float(sqnr_db(norm, lb)),
        "seconds": float(sum(r.seconds for _, r in results)),
        "nodes": int(sum(r.nodes for _, r in results)),
        "status": dict(Counter(r.status.value for _, r in results)),
    }


def _progress(items: list, enabled: bool, desc: str) -> Iterable:
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="ch", leave=False)


def results_table(results: list[tuple[int, SolveResult]]) -> str:
    """A plain-text table of per-channel results for the terminal."""
    head = f"{'ch':>4} {'status':<11} {'objective':>12} {'lower_bound':>12} {'gap':>9} " \
           f"{'SQNR dB':>8} {'≤ dB':>8} {'nodes':>9} {'s':>7}"
    lines = [head, "-" * len(head)]
    for c, r in results:
        lb = "—" if r.lower_bound is None else f"{r.lower_bound:.6g}"
        gap = "—" if r.gap is None else f"{r.gap:.2e}"
        up = "—" if r.sqnr_upper_db is None else f"{r.sqnr_upper_db:8.3f}"
        up = "no bound" if up.strip() == "inf" else up
        sq = "—" if r.sqnr_db is None else f"{r.sqnr_db:8.3f}"
        lines.append(
            f"{c:>4} {r.status.value:<11} {r.objective:>12.6g} {lb:>12} {gap:>9} "
            f"{sq:>8} {up:>8} {r.nodes:>9} {r.seconds:>7.3f}"
        )
    return "\n".join(lines)

