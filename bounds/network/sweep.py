"""``pqbound network --sweep``: every method over a range of sizes, and the network verdict.

The plan (:func:`sweep_plan`): each quantization method at each bit width of ``bits``
(default 2, 3, 4, 6, 8) and each pruning method at the equal-size density of each bit width
(:func:`bounds.compare.accounting.prune_density`; the paper's rule, ``b/16``). The model and the
data split are prepared once, the original network's held-out outputs computed once, and before
every run the original weights are restored. In the default **parallel** mode every layer's
``H`` comes from the original network, so one capture serves every run (sequential mode
captures again per layer and run: minutes per run on MobileNetV2). Each run writes
``DIR/runs/<method>_<size>/summary.json`` and ``outputs.npz`` (no state dict) and its layers to
the shared results store, so a killed sweep resumes.

The report (:func:`write_report`): ``report.md``, ``sweep.json`` and ``network.png``, the
end-to-end figure against bits per weight (one curve per method, quantization solid, pruning
dashed, 95 % bootstrap intervals as error bars), and per size the **verdict**: the best
quantization run against the best pruning run (best by the figure's point value), their
difference with a *paired* bootstrap interval (both networks scored on the same resamples of the
held-out samples); "quantization" or "pruning" when the interval excludes 0, "not resolved"
otherwise. The figure is top-1 agreement for classifiers (KL too) and the mean cosine
similarity for sentence encoders.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from solvers.problem import ProblemError

from ..export import _as_problem_error
from ..provenance import versions
from .run import prepare, read_outputs, run_network, select
from .settings import NetworkConfig, resolve_method

log = logging.getLogger(__name__)

DEFAULT_BITS = (2, 3, 4, 6, 8)
#: The default sweep: the fast methods of each family (the others with --sweep-methods).
DEFAULT_METHODS = ("rtn", "gptq", "magnitude", "sparsegpt")
#: ``--sweep-methods all``.
ALL_METHODS = ("rtn", "gptq", "adaround", "obq", "quant:exact", "magnitude", "magnitude-refit",
               "obs", "sparsegpt", "prune:exact")
#: Per output kind: the figures plotted, and whether higher is better.
FIGURES = {"logits": (("top1_agreement", True), ("kl", False)),
           "embedding": (("cosine", True), ("pairwise_spearman", True))}


def _list(text: Any, default: tuple, what: str) -> list[str]:
    if text is None:
        return list(default)
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [str(i).strip() for i in items if str(i).strip()]
    if not items:
        raise ProblemError(f"--sweep-{what} is empty")
    return items


def sweep_plan(base: NetworkConfig, *, methods: Any = None, bits: Any = None
               ) -> list[NetworkConfig]:
    """The checked configs of a sweep: every method at every size (module docstring).
    ``base`` gives the model, data, mode (default parallel), layers and other settings."""
    names = _list(methods, DEFAULT_METHODS, "methods")
    if names == ["all"]:
        names = list(ALL_METHODS)
    try:
        widths = [int(b) for b in _list(bits, DEFAULT_BITS, "bits")]
    except ValueError:
        raise ProblemError(f"--sweep-bits must be integers, got {bits!r}") from None
    mode = base.mode or "parallel"
    kinds = [resolve_method(name) for name in names]
    plan = []
    for b in widths:  # sizes outer: any finished prefix holds every method at some sizes
        for kind, bare in kinds:
            plan.append(replace(base, method=f"{kind}:{bare}", bits=b, density=None, nm=None,
                                mode=mode).checked())
    return plan


def run_sweep(plan: list[NetworkConfig], out: str | os.PathLike[str], *,
              db: str | os.PathLike[str] | None = None, progress: bool = False) -> Path:
    """Run every config of ``plan`` (sharing the model, data and, in parallel mode, one
    capture) and write the report; returns the path of ``report.md``."""
    from layers.network.compress import capture_original, snapshot
    from layers.network.evaluate import model_outputs

    t0, cpu0, load0 = time.perf_counter(), _cpu_seconds(), _load()
    out = Path(out)
    first = plan[0]
    loaded, split, labels = prepare(first)
    module = loaded.module
    original = snapshot(module)
    t1 = time.perf_counter()
    with _as_problem_error():
        reference = model_outputs(module, split.heldout)  # the original's outputs, once
    timing = {"prepare_seconds": t1 - t0, "reference_seconds": time.perf_counter() - t1}
    scale_cache: dict = {}  # each layer's scales per bit width, shared by the methods
    captured: dict | None = None
    parallel = all(c.mode == "parallel" for c in plan)
    capture_seconds = 0.0
    db = Path(db) if db is not None else out / "results.sqlite"
    runs = []
    for i, cfg in enumerate(plan):
        folder = out / "runs" / f"{cfg.method.replace(':', '-')}_{cfg.compression}"
        summary = _finished(folder, cfg)
        if summary is None:
            if parallel and captured is None:  # captured once, when a run needs it
                t1 = time.perf_counter()
                specs = select(first, module)
                with _as_problem_error():
                    captured = capture_original(
                        module, split.calibration, [s.name for s in specs],
                        opt_dim=first.opt_dim, full_precision=first.full_precision,
                        stop_early=loaded.builtin)
                capture_seconds += time.perf_counter() - t1
            module.load_state_dict(original, strict=True)
            log.warning("sweep run %d/%d: %s %s", i + 1, len(plan), cfg.method, cfg.compression)
            summary = run_network(cfg, folder, db=db, progress=progress,
                                  prepared=(loaded, split, labels), reference=reference,
                                  save_state=False, captured=captured,
                                  scale_cache=scale_cache)
        runs.append((cfg, summary, folder))
    module.load_state_dict(original, strict=True)
    import torch

    timing.update(cpu_seconds=_cpu_seconds() - cpu0, load_start=load0, load_end=_load(),
                  torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count())
    return write_report(runs, out, split=split.describe(), seconds=time.perf_counter() - t0,
                        capture_seconds=capture_seconds, timing=timing)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the system does not tell)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _timing_text(timing: dict[str, Any]) -> str:
    """The report's clause on threads, CPU time and load, e.g. ``", 1 thread(s) on 2 cores,
    287 s of CPU (this process), load average 6.0 at the start, 5.4 at the end (5.8 over the
    last 15 min)"``; empty without timing."""
    parts = []
    if timing.get("torch_threads") is not None:
        parts.append(f"{timing['torch_threads']} thread(s) on {timing['cpu_count']} cores")
    if timing.get("cpu_seconds") is not None:
        parts.append(f"{timing['cpu_seconds']:.0f} s of CPU (this process)")
    a, b = timing.get("load_start"), timing.get("load_end")
    if a and b:
        parts.append(f"load average {a[0]:.1f} at the start, {b[0]:.1f} at the end "
                     f"({b[2]:.1f} over the last 15 min)")
    return "".join(f", {p}" for p in parts)


def _finished(folder: Path, cfg: NetworkConfig) -> dict[str, Any] | None:
    try:
        s = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if s.get("settings") != json.loads(json.dumps(cfg.as_dict())):
        return None
    return s if (folder / "outputs.npz").is_file() else None


# ------------------------------------------------------------------------------ the report


def verdicts(runs: list[tuple[NetworkConfig, dict, Path]], *, resamples: int = 1000,
             seed: int = 0) -> list[dict[str, Any]]:
    """Per bit width: the best quantization and pruning runs and the paired difference of
    each figure (quantization minus pruning, signed so that > 0 favours quantization)."""
    from layers.network.evaluate import paired_difference, statistics

    by_bits: dict[int, dict[str, list]] = {}
    for cfg, s, folder in runs:
        by_bits.setdefault(cfg.bits, {"quant": [], "prune": []})[cfg.kind].append((s, folder))
    out = []
    for b in sorted(by_bits):
        q, p = by_bits[b]["quant"], by_bits[b]["prune"]
        if not q or not p:
            continue
        kind = q[0][0]["outputs"]
        row: dict[str, Any] = {"bits": b, "density": p[0][0]["density"], "figures": {}}
        for fig, higher in FIGURES[kind]:
            sign = 1.0 if higher else -1.0
            bq = max(q, key=lambda r: sign * r[0]["metrics"][fig]["value"])
            bp = max(p, key=lambda r: sign * r[0]["metrics"][fig]["value"])
            kq, ref, outq, labels = read_outputs(bq[1] / "outputs.npz")
            _, _, outp, _ = read_outputs(bp[1] / "outputs.npz")
            sq = statistics(kind, ref, outq, labels=labels)[fig]
            sp = statistics(kind, ref, outp, labels=labels)[fig]
            diff = paired_difference(lambda i, a=sq, c=sp, g=sign: g * (a(i) - c(i)),
                                     lambda i: 0.0, ref.shape[0], resamples=resamples, seed=seed)
            lo, hi = diff["ci95"]
            verdict = ("quantization" if lo > 0 else "pruning" if hi < 0 else "not resolved")
            row["figures"][fig] = {
                "quant_method": bq[0]["method"], "quant_value": bq[0]["metrics"][fig]["value"],
                "prune_method": bp[0]["method"], "prune_value": bp[0]["metrics"][fig]["value"],
                "advantage_of_quantization": diff, "verdict": verdict,
            }
        out.append(row)
    return out


def plot(runs: list[tuple[NetworkConfig, dict, Path]], path: Path, title: str) -> Path:
    """The figures against bits per weight, one curve per method (quantization solid, pruning
    dashed), 95 % intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = runs[0][1]["outputs"]
    figs = FIGURES[kind]
    fig, axes = plt.subplots(1, len(figs), figsize=(6 * len(figs), 4.5))
    methods = list(dict.fromkeys(cfg.method for cfg, _, _ in runs))
    for ax, (name, _) in zip(axes, figs, strict=True):
        for m in methods:
            pts = sorted((s["bits_per_weight"], s["metrics"][name]) for c, s, _ in runs
                         if c.method == m)
            x = [p[0] for p in pts]
            y = np.array([p[1]["value"] for p in pts])
            lo = np.array([p[1]["ci95"][0] for p in pts])
            hi = np.array([p[1]["ci95"][1] for p in pts])
            quant = m.startswith("quant:")
            ax.errorbar(x, y, yerr=[np.maximum(0, y - lo), np.maximum(0, hi - y)],
                        fmt="-o" if quant else "--s", capsize=3, label=m.split(":")[1] +
                        (" (quant)" if quant else " (prune)"))
        ax.set_xlabel("bits per weight (pruning: 16 × density, mask free)")
        ax.set_ylabel(name.replace("_", " "))
        if name == "kl":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(runs: list[tuple[NetworkConfig, dict, Path]], out: Path, *,
                 split: dict[str, Any], seconds: float, capture_seconds: float,
                 timing: dict[str, Any] | None = None) -> Path:
    """``report.md``, ``sweep.json`` and ``network.png`` in ``out``; returns report.md.
    ``timing``: the sweep's CPU seconds and load averages (stated beside the wall time)."""
    timing = dict(timing or {})
    first_cfg, first, _ = runs[0]
    kind = first["outputs"]
    v = verdicts(runs, resamples=first_cfg.resamples, seed=first_cfg.seed)
    png = plot(runs, out / "network.png", f"{first['model']}: end-to-end vs bits per weight "
               f"({first_cfg.mode}, {split['heldout_samples']} held-out samples)")
    doc = {"command": "network --sweep", "model": first["model"], "weights": first["weights"],
           "mode": first_cfg.mode, "split": split, "seconds": round(seconds, 1),
           "capture_seconds": round(capture_seconds, 1), "timing": timing, "verdicts": v,
           "runs": [{"method": c.method, "bits": c.bits, "compression": c.compression,
                     "bits_per_weight": s["bits_per_weight"], "metrics": s["metrics"],
                     "seconds": s["seconds"], "folder": str(f)} for c, s, f in runs],
           "versions": versions()}
    (out / "sweep.json").write_text(json.dumps(doc, indent=1, allow_nan=True) + "\n",
                                    encoding="utf-8")
    figs = [f for f, _ in FIGURES[kind]]
    lines = [f"# Network sweep: {first['model']}", "",
             f"Mode **{first_cfg.mode}**, scale per {first_cfg.scale}, accounting "
             f"{first_cfg.accounting}, {split['calibration_samples']} calibration samples, "
             f"{split['heldout_samples']} held-out samples; {len(runs)} runs in {seconds:.0f} s "
             f"(of which the capture of the original network's H: {capture_seconds:.0f} s)"
             + _timing_text(timing) + ".", "",
             f"Split: {split['how']}.", "", f"![end-to-end vs bits per weight]({png.name})", "",
             "## Verdict per size", "",
             "Best quantization run against best pruning run at equal size; the advantage of "
             "quantization is signed so that > 0 favours quantization (agreement: quantization "
             "minus pruning; KL: pruning minus quantization), with a paired 95 % bootstrap "
             "interval over the held-out samples (both networks scored on the same resamples). "
             "The best run of each family is picked on the same held-out data, which flatters "
             "both sides alike.", "",
             "| bits | density | figure | quantization | pruning | advantage of quant. [95 % CI] "
             "| verdict |", "|---|---|---|---|---|---|---|"]
    for row in v:
        for fig, r in row["figures"].items():
            a = r["advantage_of_quantization"]
            lines.append(
                f"| {row['bits']} | {row['density']:g} | {fig} | {r['quant_method']} "
                f"{r['quant_value']:.4g} | {r['prune_method']} {r['prune_value']:.4g} | "
                f"{a['value']:+.4g} [{a['ci95'][0]:+.4g}, {a['ci95'][1]:+.4g}] | "
                f"**{r['verdict']}** |")
    lines += ["", "## Every run", "",
              "| method | size | bits/weight | " + " | ".join(f"{f} [95 % CI]" for f in figs)
              + " | s |", "|---|---|---|" + "---|" * len(figs) + "---|"]
    for c, s, _ in runs:
        cells = [f"{s['metrics'][f]['value']:.4g} [{s['metrics'][f]['ci95'][0]:.4g}, "
                 f"{s['metrics'][f]['ci95'][1]:.4g}]" for f in figs]
        lines.append(f"| {c.method} | {c.compression} | {s['bits_per_weight']:g} | "
                     + " | ".join(cells) + f" | {s['seconds']:.0f} |")
    lines += ["", "Pruning sizes: density = bits/16 (the paper's equal-size rule, mask not "
              "charged: it favours pruning).", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


__all__ = ["ALL_METHODS", "DEFAULT_BITS", "DEFAULT_METHODS", "run_sweep", "sweep_plan",
           "verdicts", "write_report"]
