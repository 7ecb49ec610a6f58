"""``pqbound compare --formats``: number formats side by side at equal bits per weight.

For every format named (``int4``, ``int4-asym-g128``, ``fp4-e2m1-g32``, ``nf4-g64``,
``int4+2:4``, …; :func:`solvers.formats.parse_format`), the levels of every channel are built
once per layer from the *whole layer's* weights (:func:`solvers.formats.build_levels`, the
run's scale rule), so a group of 128 inputs has one scale even where the run cuts the channel
into chunks of 32; each chunk problem is then the :class:`~solvers.problem.LevelProblem` of its
inputs' levels (and the format's N:M pattern, whose groups must fit the chunk). On every chunk
problem the certified level solver (``exact``) gives the certified bound and the best found, and
the practical methods of :mod:`solvers.heuristics.levels` their solutions: RTN and GPTQ on dense
formats, magnitude-then-RTN, Wanda, prune-then-GPTQ and SparseGPT's joint pass on sparse ones
(:func:`methods_for`).

Size is :func:`solvers.formats.storage_bits` on the layer's ``C × n`` tensor: element bits of
the stored values, scales and zero points, and the positions of the kept weights under the
run's ``format_accounting`` (``hardware`` by default: an index per kept value for N:M). Formats
are listed by that size, so equal sizes sit side by side, and the frontier plot
(:func:`bounds.compare.plots.plot_format_frontier`) draws, per format family, the certified
SQNR ceiling and the best found against bits per weight, with the practical methods' points.

A format whose group size does not divide a layer's inputs is skipped on that layer (said in
the layer's note), not padded. Figures are chunk figures (the paper's quantity, like the
quantization and pruning tables); no whole-channel figure is derived for formats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from solvers.formats import (
    SPARSE_ACCOUNTINGS,
    FormatLevels,
    FormatSpec,
    build_levels,
    parse_format,
)
from solvers.heuristics.levels import DENSE_ONLY, SPARSE_ONLY
from solvers.problem import LayerProblem, ProblemError
from solvers.registry import methods

#: methods run on each format by default (the certified solver first)
DEFAULT_FORMAT_METHODS: tuple[str, ...] = ("exact", "rtn", "gptq", "wanda", "prune-gptq",
                                           "sparsegpt")
#: the prefix of a format's compression label in the store (``fmt:int4-asym-g128``)
PREFIX = "fmt:"


def canonical_formats(names: Sequence[str]) -> tuple[str, ...]:
    """Canonical format names, in the order given, each once; an unknown name is refused with
    the valid forms listed (:func:`solvers.formats.parse_format`).

    Examples
    --------
    >>> canonical_formats(["int4-asym", "fp4-e2m1", "int4-asym-tensor"])
    ('int4-asym-tensor', 'fp4-e2m1-g32-mx')
    """
    return tuple(dict.fromkeys(parse_format(n).name for n in names))


def check_format_methods(names: Sequence[str], accounting: str) -> tuple[str, ...]:
    """The format methods, checked against the registry's ``levels`` methods."""
    valid = [m.name for m in methods("levels")]
    bad = [n for n in names if n not in valid]
    if bad:
        raise ProblemError(f"unknown format method {', '.join(bad)}; valid: {', '.join(valid)}")
    if not names:
        raise ProblemError("--formats needs at least one method")
    if accounting not in SPARSE_ACCOUNTINGS:
        raise ProblemError(f"unknown format accounting {accounting!r}; valid: "
                           f"{', '.join(SPARSE_ACCOUNTINGS)}")
    return tuple(dict.fromkeys(names))


def methods_for(spec: FormatSpec, names: Sequence[str]) -> list[str]:
    """The methods of ``names`` that apply to ``spec`` (pruning methods need its N:M)."""
    drop = DENSE_ONLY if spec.nm is not None else SPARSE_ONLY
    return [m for m in names if m not in drop]


def family(spec: FormatSpec) -> str:
    """The frontier line a format belongs to: codebook kind, plus its sparsity pattern.

    Examples
    --------
    >>> family(parse_format("int4-asym-g128")), family(parse_format("fp8-e4m3"))
    ('INT asym', 'FP')
    >>> family(parse_format("int4+2:4"))
    'INT sym +2:4'
    """
    base = {"int": "INT asym" if spec.asymmetric else "INT sym", "fp": "FP",
            "nf": "NF"}[spec.family]
    if spec.family == "fp" and spec.scale_type in ("e8m0", "e4m3"):
        base += " MX" if spec.scale_type == "e8m0" else " NV"
    return base if spec.nm is None else f"{base} +{spec.nm[0]}:{spec.nm[1]}"


def plan_formats(problem: LayerProblem, names: Sequence[str], *, scale_method: str,
                 accounting: str) -> tuple[dict[str, FormatLevels], dict[str, Any], list[str]]:
    """The levels of every format on one layer, their record and the notes of skipped ones."""
    levels: dict[str, FormatLevels] = {}
    record: dict[str, Any] = {}
    notes: list[str] = []
    for name in names:
        spec = parse_format(name)
        try:
            f = build_levels(problem.W0, spec, scale_method=scale_method)
        except ProblemError as exc:
            notes.append(f"format {name} skipped: {exc}")
            continue
        size = f.storage(accounting=accounting)
        levels[name] = f
        record[name] = {"family": family(spec), "bits": spec.bits,
                        "bits_per_weight": size.total, "storage": size.to_dict(),
                        "dense_bits_per_weight": f.bits_per_weight,
                        "nm": None if spec.nm is None else f"{spec.nm[0]}:{spec.nm[1]}",
                        "scale_method": scale_method}
    return levels, record, notes


def format_lines(rows: list[dict[str, Any]], record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per format of one layer (sorted by bits per weight): its size and the chunk figures of
    its rows (:func:`bounds.compare.tables.kind_figures`)."""
    from .tables import kind_figures

    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "levels" and r["scope"] == "chunk":
            by[r["compression"][len(PREFIX):]].append(r)
    out = []
    for name, info in record.items():
        rs = by.get(name)
        out.append({"format": name, "family": info["family"],
                    "bits_per_weight": info["bits_per_weight"], "storage": info["storage"],
                    "figures": kind_figures(rs) if rs else None})
    return sorted(out, key=lambda d: (d["bits_per_weight"], d["format"]))


def format_text(lines: list[dict[str, Any]]) -> list[str]:
    """Terminal lines: format, bits per weight, certified ceiling / best, per method."""
    from .tables import fmt_db

    if not lines:
        return []
    out = ["  [formats, chunk problems]  bits/weight | SQNR dB: ceiling / best | methods"]
    for ln in lines:
        f = ln["figures"] or {}
        ms = ", ".join(f"{m} {fmt_db(v.get('sqnr_db'))}"
                       for m, v in sorted((f.get("methods") or {}).items()) if m != "exact")
        out.append(f"  {ln['format']:>20} {ln['bits_per_weight']:7.3f} | "
                   f"{fmt_db(f.get('sqnr_ceiling_db'), True):>9} / "
                   f"{fmt_db(f.get('best_sqnr_db')):>7} | {ms}")
    return out
