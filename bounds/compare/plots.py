"""The report's figures (matplotlib, Agg backend, PNG).

* :func:`plot_layer`: the paper's per-layer figure — SQNR (dB) against bit width for quantization
  and for pruning at equal compression, with the *certified range* of each optimum shaded
  (between the best error found and the proved lower bound) and each practical method as a
  dashed line; chunk problems and whole channels in separate panels.
* :func:`plot_gaps`: how far each method stays from its kind's proved ceiling (dB).
* :func:`plot_times`: distributions of solve times per method (log scale).
* :func:`plot_format_frontier`: ``--formats`` — per format family, the certified SQNR ceiling
  and the best found against bits per weight (metadata and sparsity positions included), with
  the practical methods' points.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

QUANT_COLOR = "#1f77b4"
PRUNE_COLOR = "#d62728"
_MARKERS = ["s", "^", "D", "v", "P", "X", "*", "<", ">"]
_CEIL_HEADROOM = 6.0  # dB drawn above the finite values for an unbounded (∞) ceiling


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _series(lines: list[dict], kind: str, key: str) -> tuple[list[int], list[float | None]]:
    xs, ys = [], []
    for ln in lines:
        f = ln.get(kind)
        if ln["bits"] is None or not f:
            continue
        xs.append(ln["bits"])
        ys.append(f.get(key))
    return xs, ys


_ACCOUNTING_X = {
    "paper": "bits per weight b (pruning keeps b/16 of the weights)",
    "bitmask": "bits per weight b (pruning keeps (b − 1)/16: mask charged)",
    "corrected": "bits per weight b (pruning keeps (1 − zero fraction)·b/16)",
}


def _panel(ax: Any, lines: list[dict], title: str, scope: str, accounting: str = "") -> None:
    lines = [ln for ln in lines if ln["bits"] is not None]
    finite = [v for ln in lines for k in ("quant", "prune") if ln.get(k)
              for v in [ln[k].get("best_sqnr_db"), ln[k].get("sqnr_ceiling_db")]
              + [m.get("sqnr_db") for m in ln[k]["methods"].values()]
              if _finite(v) is not None]
    top = (max(finite) + _CEIL_HEADROOM) if finite else 1.0
    for kind, color, label in (("quant", QUANT_COLOR, "quantization"),
                               ("prune", PRUNE_COLOR, "pruning")):
        xs, best = _series(lines, kind, "best_sqnr_db")
        _, ceil = _series(lines, kind, "sqnr_ceiling_db")
        if not xs:
            continue
        cl = [top if (c is not None and math.isinf(c)) else c for c in ceil]
        ok = [i for i in range(len(xs)) if best[i] is not None and cl[i] is not None]
        if ok:
            ax.fill_between([xs[i] for i in ok], [best[i] for i in ok], [cl[i] for i in ok],
                            color=color, alpha=0.18, lw=0,
                            label=f"{label}: optimum lies in this band (proved)")
            ax.plot([xs[i] for i in ok], [cl[i] for i in ok], color=color, lw=1, ls=":",
                    label=f"{label}: certified ceiling (from lower bound)")
        bx = [(x, b) for x, b in zip(xs, best, strict=True) if b is not None]
        if bx:
            ax.plot(*zip(*bx, strict=True), color=color, lw=2.2, marker="o", ms=4,
                    label=f"{label}: best found (achieved)")
        if scope == "chunk":
            names = sorted({m for ln in lines if ln.get(kind) for m in ln[kind]["methods"]})
            for j, m in enumerate(names):
                pts = [(ln["bits"], ln[kind]["methods"][m]["sqnr_db"]) for ln in lines
                       if ln.get(kind) and m in ln[kind]["methods"]
                       and _finite(ln[kind]["methods"][m]["sqnr_db"]) is not None]
                if not pts or m == "exact":
                    continue
                ax.plot(*zip(*pts, strict=True), color=color, lw=1, ls="--",
                        marker=_MARKERS[j % len(_MARKERS)], ms=4, alpha=0.75,
                        label=f"{label}: {m} (achieved)")
    infs = [ln["bits"] for ln in lines for k in ("quant", "prune")
            if ln.get(k) and ln[k].get("sqnr_ceiling_db") is not None
            and math.isinf(ln[k]["sqnr_ceiling_db"])]
    if infs:
        ax.annotate("dotted at top: lower bound 0 (no finite ceiling)", (0.01, 0.99),
                    xycoords="axes fraction", va="top", fontsize=7, color="0.3")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(_ACCOUNTING_X.get(accounting, "bits per weight b"))
    ax.set_ylabel("SQNR (dB), higher is better")
    ax.grid(True, alpha=0.3)
    bits = sorted({ln["bits"] for ln in lines})
    if bits:
        ax.set_xticks(bits)


def plot_layer(entry: dict[str, Any], path: str | Path, settings: dict[str, Any]) -> Path:
    """The per-layer figure for one layer table entry (see :mod:`bounds.compare.tables`)."""
    scopes = [s for s in ("chunk", "whole") if entry["scopes"].get(s)]
    npan = max(1, len(scopes))
    fig, axes = plt.subplots(1, npan, figsize=(6.4 * npan, 4.8 if npan > 1 else 6.4),
                             squeeze=False)
    for ax, scope in zip(axes[0], scopes, strict=False):
        if scope == "chunk":
            title = (f"chunk problems (paper's quantity; opt-dim {settings.get('opt_dim')}, "
                     f"{len(entry.get('chunk_ids') or [])} chunk(s) × "
                     f"{len(entry.get('channels') or [])} channel(s))")
        else:
            title = ("whole output channels (ceiling: best of block-split and direct certified "
                     "bounds;\nbest: stitched chunk solutions or direct solve, on the full H)")
        _panel(ax, entry["scopes"][scope], title, scope, settings.get("accounting", ""))
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle(f"{settings.get('model')} · {entry['layer']} (n = {entry['n']}) — protocol "
                 f"{settings.get('protocol')}, accounting {settings.get('accounting')}",
                 fontsize=11)
    ncol = 3 if npan > 1 else 2
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    rows = math.ceil(len(labels) / ncol)
    fig.tight_layout(rect=(0, (0.035 if npan > 1 else 0.028) * rows + 0.02, 1, 0.95))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gaps(layers: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Gap (dB) of each method below its kind's certified ceiling, chunk problems."""
    layers = [e for e in layers if e["scopes"].get("chunk")]
    if not layers:
        return None
    cols = min(3, len(layers))
    nrows = math.ceil(len(layers) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
    for ax in axes.ravel()[len(layers):]:
        ax.axis("off")
    for ax, e in zip(axes.ravel(), layers, strict=False):
        series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
        for ln in e["scopes"]["chunk"]:
            if ln["bits"] is None:
                continue
            for kind in ("quant", "prune"):
                f = ln.get(kind)
                if not f or _finite(f.get("sqnr_ceiling_db")) is None:
                    continue
                for m, mf in f["methods"].items():
                    if _finite(mf.get("sqnr_db")) is not None:
                        series[(kind, m)].append((ln["bits"],
                                                  f["sqnr_ceiling_db"] - mf["sqnr_db"]))
        for j, ((kind, m), pts) in enumerate(sorted(series.items())):
            ax.plot(*zip(*pts, strict=True), marker=_MARKERS[j % len(_MARKERS)], ms=4,
                    color=QUANT_COLOR if kind == "quant" else PRUNE_COLOR,
                    ls="-" if m == "exact" else "--", label=f"{kind} {m}")
        ax.set_title(e["layer"], fontsize=9)
        ax.set_xlabel("bits b")
        ax.set_ylabel("dB below certified ceiling")
        ax.grid(True, alpha=0.3)
    handles, labels = [], []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle("Distance of each method from its kind's proved SQNR ceiling, chunk problems "
                 "(0 = provably optimal)", fontsize=10)
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7,
                   frameon=False)
    fig.tight_layout(rect=(0, 0.03 * math.ceil(len(labels) / 6) + 0.02, 1, 0.96))
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_times(rows: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Distribution of solve times per (scope, kind, method), log scale."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if (r.get("seconds") is None or r["status"] in ("error", "stitched", "certified")):
            continue
        tag = {"block": " [block]", "whole": " [whole]"}.get(r["scope"], "")
        groups[f"{r['kind']} {r['method']}{tag}"].append(max(float(r["seconds"]), 1e-6))
    if not groups:
        return None
    names = sorted(groups)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 2), 4.2))
    ax.boxplot([groups[n] for n in names], whis=(0, 100))
    ax.set_xticks(range(1, len(names) + 1), names, rotation=35, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("solve time per problem (s, log scale)")
    ax.set_title("Solve-time distributions (whiskers: min–max; counts in labels)", fontsize=10)
    for i, n in enumerate(names, start=1):
        ax.annotate(f"{len(groups[n])}", (i, max(groups[n])), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_format_frontier(entry: dict[str, Any], path: str | Path,
                         settings: dict[str, Any]) -> Path | None:
    """The format frontier of one layer (``entry["formats"]``, :mod:`bounds.compare.formats`).

    Per family (one colour): the certified SQNR ceilings (open markers on a dotted line), the
    best found (filled, solid line) — the optimum lies between them — and each practical
    method's SQNR (small markers, one shape per method), all at the format's bits per weight.
    An infinite ceiling (lower bound 0) is drawn at the top. ``None`` when nothing is finite.
    """
    lines = [ln for ln in entry.get("formats") or [] if ln.get("figures")]
    vals = [v for ln in lines for v in
            [ln["figures"].get("best_sqnr_db"), ln["figures"].get("sqnr_ceiling_db")]
            + [m.get("sqnr_db") for m in ln["figures"]["methods"].values()]
            if _finite(v) is not None]
    if not vals:
        return None
    top = max(vals) + _CEIL_HEADROOM
    fams = sorted({ln["family"] for ln in lines})
    colors = plt.get_cmap("tab10")
    names = sorted({m for ln in lines for m in ln["figures"]["methods"] if m != "exact"})
    fig, ax = plt.subplots(figsize=(7.6, 5.6))
    for i, fam in enumerate(fams):
        col = colors(i % 10)
        pts = sorted((ln["bits_per_weight"], ln) for ln in lines if ln["family"] == fam)
        ceil = [(x, top if math.isinf(c) else c) for x, ln in pts
                if (c := ln["figures"].get("sqnr_ceiling_db")) is not None]
        best = [(x, b) for x, ln in pts if _finite(b := ln["figures"].get("best_sqnr_db"))]
        if ceil:
            ax.plot(*zip(*ceil, strict=True), color=col, ls=":", marker="o", mfc="none",
                    label=f"{fam}: certified ceiling")
        if best:
            ax.plot(*zip(*best, strict=True), color=col, lw=2, marker="o",
                    label=f"{fam}: best found")
        for j, m in enumerate(names):
            mp = [(x, v) for x, ln in pts
                  if _finite(v := ln["figures"]["methods"].get(m, {}).get("sqnr_db"))]
            if mp:
                ax.scatter(*zip(*mp, strict=True), color=col, marker=_MARKERS[j % len(_MARKERS)],
                           s=22, alpha=0.8, label=f"{fam}: {m}")
    for ln in lines:
        y = _finite(ln["figures"].get("best_sqnr_db"))
        if y is not None:
            ax.annotate(ln["format"], (ln["bits_per_weight"], y), fontsize=6, color="0.3",
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"bits per weight (scales, zero points and, under "
                  f"{settings.get('format_accounting', 'hardware')} accounting, sparsity "
                  "positions included)")
    ax.set_ylabel("SQNR (dB), higher is better")
    ax.set_title(f"{settings.get('model')} · {entry['layer']}: format frontier (chunk problems)",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=2, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
