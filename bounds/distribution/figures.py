"""PNG figures of the distribution and weight-tensor studies (matplotlib, Agg backend).

* :func:`plot_figure1`: the paper's Figure 1 analogue for the standard normal: the laws after
  INT4 quantization and after 75 % magnitude pruning, the probability-weighted squared error
  ``(x − x̂)²·f(x)``, and the SNR of both against the compression ratio ``16/b``.
* :func:`plot_kurtosis_sweep`: Figure 2 analogue, SNR and SNR gap against kurtosis.
* :func:`plot_tensor_study`: the model-zoo figure, ``SQNR_Q − SQNR_P`` against kurtosis, one
  panel per bit width.

Every function writes one PNG and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    _plt().close(fig)
    return path


def _bit_colors(bits: Sequence[int]) -> dict[int, Any]:
    plt = _plt()
    cmap = plt.get_cmap("viridis")
    n = max(len(bits) - 1, 1)
    return {b: cmap(0.9 * i / n) for i, b in enumerate(sorted(bits))}


def plot_figure1(path: str | Path, *, bits: int = 4, grid: str = "signed",
                 snr_bits: Sequence[int] = (2, 3, 4, 5, 6, 7, 8)) -> Path:
    """Figure 1 analogue for N(0, 1) at ``bits`` (pruning keeps ``bits/16``)."""
    from .analytic import analyse_bits, analyse_distribution, grid_range
    from .densities import make_density

    plt = _plt()
    d = make_density("normal")
    r = analyse_bits(d, bits, grid)
    zmin, zmax = grid_range(bits, grid)
    s, t = r.info["scale_raw"], r.info["threshold_raw"]
    x = np.linspace(-4.5, 4.5, 4001)
    f = d.pdf(x)
    levels = s * np.arange(zmin, zmax + 1)
    edges = np.concatenate([[-np.inf], (np.arange(zmin, zmax) + 0.5) * s, [np.inf]])
    masses = np.diff([d.cdf(e) if np.isfinite(e) else (0.0 if e < 0 else 1.0) for e in edges])

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    a = ax[0]
    a.fill_between(x, f, color="0.85", label="N(0, 1) density")
    kept = np.abs(x) > t
    a.plot(np.where(kept, x, np.nan), np.where(kept, f, np.nan), color="C3", lw=2,
           label=f"pruned ({100 * (1 - bits / 16):.0f} %): kept density")
    a.set_xlabel("x")
    a.set_ylabel("density")
    a2 = a.twinx()
    a2.vlines(levels, 0, masses, color="C0", lw=2)
    a2.plot(levels, masses, "o", color="C0", ms=3, label=f"INT{bits}: point masses")
    a2.vlines([0.0], 0, [1 - bits / 16], color="C3", lw=1.5, linestyles=":")
    a2.plot([0.0], [1 - bits / 16], "s", color="C3", ms=4,
            label=f"pruned: mass {1 - bits / 16:.2f} at 0")
    a2.set_ylabel("probability mass of the atoms")
    a2.set_ylim(0, 1.0)
    a.set_ylim(0, 0.45)
    h1, l1 = a.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    a.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right", framealpha=0.9)
    a.set_title(f"after INT{bits} (scale {r.scale:.3f}σ) and {100 * (1 - bits / 16):.0f} % "
                "pruning", fontsize=10)

    b = ax[1]
    q = s * np.clip(np.rint(x / s), zmin, zmax)
    b.plot(x, (x - q) ** 2 * f, color="C0", label=f"INT{bits}: (x − Q(x))²·f(x)")
    b.plot(x, np.where(np.abs(x) <= t, x * x, 0.0) * f, color="C3",
           label=f"pruning: x²·f(x) on |x| ≤ {t:.3f}")
    b.set_yscale("log")
    b.set_ylim(1e-5, 5)
    b.set_xlabel("x")
    b.set_ylabel("probability-weighted squared error")
    b.legend(fontsize=8, loc="upper center", ncol=1, framealpha=0.9)
    b.set_title(f"SNR: INT{bits} {r.quant_sqnr_db:.2f} dB, pruning {r.prune_sqnr_db:.2f} dB",
                fontsize=10)

    c = ax[2]
    res = analyse_distribution(d, snr_bits, grid)
    bs = sorted(res.bits)
    ratio = [16 / b for b in bs]
    c.plot(ratio, [res.bits[b].quant_sqnr_db for b in bs], "o-", color="C0", label="quantization")
    c.plot(ratio, [res.bits[b].prune_sqnr_db for b in bs], "s--", color="C3",
           label="magnitude pruning")
    c.set_xscale("log")
    c.set_xticks(ratio)
    c.set_xticklabels([f"{v:.3g}×\n({b} b)" for v, b in zip(ratio, bs, strict=True)], fontsize=8)
    c.minorticks_off()
    c.set_xlabel("compression ratio vs FP16 (bits)")
    c.set_ylabel("SNR (dB)")
    c.grid(alpha=0.3)
    c.legend(fontsize=8)
    c.set_title("standard normal: SNR vs compression", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _log_x(ax) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _pearson_axis(ax) -> None:
    _log_x(ax)
    ax.set_xlabel("kurtosis + 3 (Pearson; normal = 3, log scale)")


def plot_kurtosis_sweep(sweep, path: str | Path) -> Path:
    """SNR (left) and SNR_Q − SNR_P (right) against kurtosis, per bit width and family."""
    plt = _plt()
    colors = _bit_colors(sweep.bits)
    markers = {"student-t": "o", "truncated-normal": "^", "truncated-t3": "s", "reference": "D"}
    fig, ax = plt.subplots(1, 2, figsize=(14, 5.2))
    for fam in sweep.families:
        pts = [p for p in sweep.family(fam) if math.isfinite(p.kurtosis)]
        if not pts:
            continue
        k = np.array([p.kurtosis for p in pts]) + 3.0
        m = markers.get(fam, "o")
        ls = "" if fam == "reference" else "-"
        for b in sweep.bits:
            qs = [p.result.bits[b].quant_sqnr_db for p in pts]
            ps = [p.result.bits[b].prune_sqnr_db for p in pts]
            ax[0].plot(k, qs, m, ls=ls, color=colors[b], ms=4, lw=1.2)
            ax[0].plot(k, ps, m, ls=ls.replace("-", "--"), color=colors[b], ms=4, lw=1.2,
                       mfc="none")
            ax[1].plot(k, np.subtract(qs, ps), m, ls=ls, color=colors[b], ms=4, lw=1.2)
            if fam != "reference":
                kc = sweep.crossover(fam, b)
                if kc is not None:
                    ax[1].plot([kc + 3], [0], "x", color=colors[b], ms=10, mew=2)
    for a in ax:
        _pearson_axis(a)
        a.grid(alpha=0.3, which="both")
    ax[0].set_ylabel("SNR (dB)")
    ax[0].set_title("solid/filled: quantization, dashed/hollow: magnitude pruning (b/16 kept)",
                    fontsize=10)
    ax[1].axhline(0, color="k", lw=1)
    ax[1].set_ylabel("SNR(quant) − SNR(prune) (dB)")
    ax[1].set_title("below 0: pruning wins; × marks the crossover", fontsize=10)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[b], lw=2, label=f"{b} bits") for b in sweep.bits]
    handles += [Line2D([], [], color="0.3", marker=markers.get(f, "o"), ls="", label=f)
                for f in sweep.families]
    ax[1].legend(handles=handles, fontsize=8, loc="upper right")
    fig.suptitle(f"Pruning vs quantization against kurtosis ({sweep.grid} grid, MSE-optimal "
                 "scale, equal compression from FP16)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_tensor_study(study, path: str | Path, *, title: str = "") -> Path:
    """Per bit width: SQNR_Q − SQNR_P (filled) and − SQNR_P,corrected (hollow) vs kurtosis."""
    plt = _plt()
    bits = study.bit_widths()
    ncol = min(4, len(bits)) or 1
    nrow = math.ceil(len(bits) / ncol) or 1
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.6 * nrow), squeeze=False,
                             sharex=True)
    rows = {r["bits"]: r for r in study.summary()}
    tensors = list(study.tensors.values())
    k = np.array([t.kurtosis for t in tensors])
    for i, b in enumerate(bits):
        a = axes[i // ncol][i % ncol]
        q = np.array([t.bits[b].quant_sqnr_db for t in tensors])
        p = np.array([t.bits[b].prune_sqnr_db for t in tensors])
        pc = np.array([t.bits[b].prune_sqnr_corrected_db for t in tensors])
        ok = np.isfinite(q - p) & np.isfinite(k)
        a.scatter(k[ok] + 3, (q - p)[ok], s=14, color="C0", label="vs pruning", zorder=3)
        okc = np.isfinite(q - pc) & np.isfinite(k)
        a.scatter(k[okc] + 3, (q - pc)[okc], s=14, facecolors="none", edgecolors="C1",
                  label="vs corrected pruning", zorder=2)
        a.axhline(0, color="k", lw=1)
        _log_x(a)
        a.grid(alpha=0.3, which="both")
        row = rows[b]
        a.set_title(f"{b} bits: quant wins {row['quant_wins']}/{row['tensors']}", fontsize=10)
        if i % ncol == 0:
            a.set_ylabel("SQNR(quant) − SQNR(prune) (dB)")
        if i // ncol == nrow - 1:
            a.set_xlabel("kurtosis + 3 (Pearson, log)")
        if i == 0:
            a.legend(fontsize=8)
    for j in range(len(bits), nrow * ncol):
        axes[j // ncol][j % ncol].set_visible(False)
    fig.suptitle(f"{title}: weight tensors, FP16 baseline, above 0 quantization wins",
                 fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
