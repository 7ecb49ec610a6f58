"""PNG plots of the report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .methods import OURS
from .runner import NOT_RUN
from .stats import _num, censored


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Fixed colours and markers per method, so every plot and report agrees (ours in black).
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896")
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h", "*", "p")
_ORDER = ("cplex", "gurobi", "xpress", "scip", "scip-cvxpy", "highs", "cpsat", "sdp",
          "fpylll-cvp", "abess", "rtn", "gptq", "obq", "obs", "magnitude-refit", "sparsegpt")


def _style(method: str) -> dict:
    if method == OURS:
        return {"linewidth": 2.6, "color": "black", "zorder": 5, "marker": "o"}
    i = _ORDER.index(method) if method in _ORDER else len(_ORDER) + hash(method) % 7
    return {"color": _PALETTE[i % len(_PALETTE)], "marker": _MARKERS[i % len(_MARKERS)]}


def time_vs_n(rows: Sequence[dict], kind: str, path: Path, title: str) -> Path | None:
    """Median wall time per method against n (all families pooled); hollow = some censored."""
    rows = [r for r in rows if r["kind"] == kind and _num(r.get("seconds")) is not None
            and r.get("status") not in NOT_RUN]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[r["method"]][int(r["n"])].append(r)
    for m, per_n in sorted(by.items(), key=lambda kv: kv[0] != OURS):
        ns = sorted(per_n)
        med = [float(np.median([float(r["seconds"]) for r in per_n[n]])) for n in ns]
        line, = ax.plot(ns, med, label=m, **_style(m))
        cens = [n for n in ns if any(censored(r) for r in per_n[n])]
        if cens:
            ax.plot(cens, [med[ns.index(n)] for n in cens], line.get_marker(), mfc="white",
                    mec=line.get_color(), ms=9, zorder=6)
    tl = [_num(r.get("time_limit")) for r in rows]
    tl = [t for t in tl if t]
    if tl:
        ax.axhline(max(tl), color="grey", ls=":", lw=1, label=f"time limit {max(tl):g} s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("n (inputs per chunk)")
    ax.set_ylabel("median wall time per solve [s]")
    ax.set_title(title + "\n(hollow marker: some solves stopped at the time limit)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def gap_vs_time(rows: Sequence[dict], kind: str, path: Path, title: str) -> Path | None:
    """Each certified solve: final relative gap against wall time (gap 0 drawn at 1e-12)."""
    rows = [r for r in rows if r["kind"] == kind and r.get("certified")
            and _num(r.get("seconds")) is not None and _num(r.get("gap")) is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["method"]].append(r)
    for m, rs in sorted(by.items(), key=lambda kv: kv[0] != OURS):
        t = [float(r["seconds"]) for r in rs]
        g = [max(float(r["gap"]), 1e-12) for r in rs]
        st = _style(m)
        ax.scatter(t, g, s=18 if m != OURS else 26, alpha=0.7, label=m, color=st["color"],
                   marker=st["marker"], zorder=5 if m == OURS else 3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time [s]")
    ax.set_ylabel("final relative gap (0 shown as 1e-12)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scaling_plot(rows: Sequence[dict], x: str, path: Path, title: str,
                 xlabel: str, logx: bool = True) -> Path | None:
    """Our exact solvers' median time and nodes against ``x`` (one line per kind/family)."""
    rows = [r for r in rows if _num(r.get(x)) is not None and _num(r.get("seconds")) is not None]
    if not rows:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    by: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        extra = "" if r["method"] == OURS else f" ({r['method']})"
        by[f"{r['kind']} {r['family']}{extra}"][float(r[x])].append(r)
    for label, per in sorted(by.items()):
        xs = sorted(per)
        t = [float(np.median([float(r["seconds"]) for r in per[v]])) for v in xs]
        nd = [float(np.median([max(1.0, float(r.get("nodes") or 0)) for r in per[v]])) for v in xs]
        line, = a1.plot(xs, t, marker="o", label=label)
        a2.plot(xs, nd, marker="o", label=label, color=line.get_color())
        cens = [v for v in xs if any(censored(r) for r in per[v])]
        for v in cens:
            a1.plot([v], [t[xs.index(v)]], "o", mfc="white", mec=line.get_color(), ms=9)
    for a, yl in ((a1, "median time [s]"), (a2, "median nodes")):
        if logx:
            a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel(xlabel)
        a.set_ylabel(yl)
        a.grid(True, which="both", alpha=0.3)
    a1.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def anytime_plot(rows: Sequence[dict], path: Path, title: str) -> Path | None:
    """Gap of our anytime bound against the time limit, one line per kind and n."""
    rows = [r for r in rows if _num(r.get("gap")) is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by[f"{r['kind']} {r['family']} n={r['n']}"][float(r["time_limit"])].append(float(r["gap"]))
    for label, per in sorted(by.items()):
        ts = sorted(per)
        g = [max(float(np.median(per[t])), 1e-12) for t in ts]
        ax.plot(ts, g, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time limit [s]")
    ax.set_ylabel("median relative gap of our bound")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}g}"
