"""Exact pruning on the first chunk of every layer of a model: which layers stall, and why.

For every conv and linear layer of ``--model`` (``bounds.export.export_model``, the built-in
calibration set of ``--samples`` samples, FP16 weights), the first chunk of ``--n`` inputs
(``opt_dim = n``; a layer with fewer inputs is solved whole, at ``n`` = its inputs, and the
report marks it), ``--channels`` live output channels drawn with a seed per layer (the first
``c`` of one seeded permutation, so a run with more channels contains the smaller run's), and
each density of ``--densities``: the registry's exact solver (``solvers.solve(p, "exact")``,
default options) under a time limit and/or a node limit.

Time limits count the **solving thread's CPU time** (``time.thread_time``), not the wall clock:
on a machine shared with other jobs a wall-clock limit measures the load, not the solver. The
limit is applied by handing the solver a CPU clock for the duration of each solve
(:func:`cpu_clock`); every row records both the CPU and the wall seconds (and the process's CPU
seconds, every thread's), and the nodes. ``--wall-clock`` applies the limit to the wall clock
instead; it is required for the solver's ``threads`` option (whose search runs on other
threads than the calling one), and then needs a quiet machine.

Per solve it also records what the diagnosis of issue 20 needs, computed outside the timing:

* the spectrum of ``H`` (alive inputs): condition number, that of the Jacobi-scaled ``H``, the
  eigenvalue decay ``λ_(n/4)/λ_1`` and ``λ_(n/2)/λ_1`` (descending), the effective rank
  ``exp(entropy(λ/Σλ))`` (Roy & Vetterli 2007);
* the diagonal split's share ``trace(D)/trace(H)`` for the Jacobi split and the log-det split
  (:func:`solvers.prune.bounds.diagonal_split`, the two splits the default search uses);
* the spread of ``w0``: excess kurtosis of its alive entries, and the share of the norm
  ``w0ᵀHw0`` carried by the ``k`` largest ``|w0_j|·√H_jj``;
* incumbent quality: the best heuristic's error over the final objective (``inc_gap``), the
  root bound over the final objective (``root_share``).

The report (markdown) gives per layer: the proved share, the median CPU and wall seconds, the
median nodes and the largest gap left. Rows go to ``--json`` after every layer, so a stopped
run keeps what it solved; ``--summarize JSON`` rebuilds the report from such a file and
``--stalled JSON`` restricts a run to the layers that did not prove every solve there.

Before / after: ``--options JSON`` passes options to the exact solver (e.g. ``'{"resplit": 0}'``)
and ``--baseline JSON`` also solves every instance with other options, first, in the same
process; each row then holds the baseline's result under ``"base"`` and the report ends with a
side-by-side table (proved counts, median CPU seconds and nodes, new / baseline CPU ratios and
their geometric mean over the solves both proved, whether the objectives agree).

Usage::

    nice -n 10 python benchmarks/prune_scan.py --model mobilenet_v2 --cpu-limit 10 \\
        --json prune_scan_mnv2.json --report benchmarks/reports/prune_scan_mobilenet_v2.md
    nice -n 10 python benchmarks/prune_scan.py --stalled prune_scan_mnv2.json --channels 4 \\
        --cpu-limit 60 --json stage2.json --report benchmarks/reports/prune_scan_stage2.md
    nice -n 10 python benchmarks/prune_scan.py --layers features.9.conv.0.0 --densities 0.25 \\
        --cpu-limit 60 --options '{}' --baseline '{"resplit": 0}' --report before_after.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def cpu_clock():
    """Make the exact pruning solver's time limit count this thread's CPU seconds.

    The solver reads the time through :class:`solvers.stopwatch.Stopwatch` (its start and
    ``seconds``, in :mod:`solvers.prune.exact`) and ``time.perf_counter`` (its deadline checks,
    in :mod:`solvers.prune.search`); both are pointed at ``time.thread_time`` inside the block.
    Fails loudly if the solver no longer reads the time there (then use ``--wall-clock``).
    """
    from solvers.prune import exact, search
    from solvers.stopwatch import Stopwatch

    if getattr(exact, "Stopwatch", None) is not Stopwatch or getattr(search, "time", None) \
            is not time:
        raise RuntimeError("solvers.prune no longer reads its clock through exact.Stopwatch and "
                           "search.time: the CPU-time limit cannot be applied (use --wall-clock)")

    class CpuStopwatch(Stopwatch):
        def __init__(self) -> None:
            self.start = time.thread_time()

        @property
        def seconds(self) -> float:
            return time.thread_time() - self.start

    exact.Stopwatch = CpuStopwatch
    search.time = types.SimpleNamespace(perf_counter=time.thread_time)
    try:
        yield
    finally:
        exact.Stopwatch = Stopwatch
        search.time = time


class DepthProbe:
    """Where the search spends its nodes, sampled once per compiled chunk (~20 ms of search).

    Wraps :func:`solvers.prune.kernels.dfs_chunk` as :mod:`solvers.prune.search` calls it: after
    each chunk, the nodes that chunk processed are attributed to the depth (inputs decided,
    kept or pruned, dead inputs excluded) of the node on top of the stack. A time-sampled
    profile, not an exact per-node count (``result.info`` exposes no depth histogram).
    """

    def __init__(self, kernels, dead: int, n: int) -> None:
        self._k, self.dead = kernels, dead
        self.hist = np.zeros(n + 1, dtype=np.int64)

    def __getattr__(self, name):
        return getattr(self._k, name)

    def dfs_chunk(self, spec, stack, best, sp, budget):
        states, counters = stack.state, best.counters
        before = int(counters[0])
        out = self._k.dfs_chunk(spec, stack, best, sp, budget)
        sp = int(out[0])
        depth = int(np.count_nonzero(states[sp - 1])) - self.dead if sp > 0 else 0
        self.hist[max(0, min(depth, len(self.hist) - 1))] += int(counters[0]) - before
        return out


@contextlib.contextmanager
def depth_probe(dead: int, n: int):
    """Install a :class:`DepthProbe` in :mod:`solvers.prune.search` (None if the layout moved)."""
    from solvers.prune import search

    real = getattr(search, "kernels", None)
    if real is None or not hasattr(real, "dfs_chunk"):
        yield None
        return
    probe = DepthProbe(real, dead, n)
    search.kernels = probe
    try:
        yield probe
    finally:
        search.kernels = real


def spectrum_stats(H: np.ndarray) -> dict:
    """Condition numbers, eigenvalue decay and effective rank of the alive block of ``H``.

    Also, for the Jacobi-scaled ``H`` (unit diagonal): its least eigenvalue, how many of its
    eigenvalues are below 0.05, and the mean participation ratio ``1/Σ v_i⁴`` of its four least
    eigenvectors (1: a near-dependency on one input; ``n``: spread over every input).
    """
    from solvers.prune.bounds import margin_for

    alive = np.diag(H) > 0
    Ha = H[np.ix_(alive, alive)]
    m = Ha.shape[0]
    if m == 0:
        return {"alive": 0}
    lam = np.clip(np.linalg.eigvalsh(Ha)[::-1], 0.0, None)
    top = float(lam[0]) if lam[0] > 0 else 1.0
    p = lam / max(float(lam.sum()), np.finfo(float).tiny)
    p = p[p > 0]
    _, kappa_scaled, _ = margin_for(H, alive)
    sq = np.sqrt(np.diag(Ha))
    lam_s, V = np.linalg.eigh(Ha / np.outer(sq, sq))
    return {
        "lam_min_scaled": float(lam_s[0]),
        "small_scaled": int(np.count_nonzero(lam_s < 0.05)),
        "pr_bottom": float(np.mean(1.0 / np.sum(V[:, :4] ** 4, axis=0))),
        "alive": int(m),
        "cond": float(lam[0] / max(lam[-1], lam[0] * np.finfo(float).eps)),
        "cond_scaled": float(kappa_scaled),
        "decay_q1": float(lam[min(m - 1, m // 4)] / top),
        "decay_half": float(lam[min(m - 1, m // 2)] / top),
        "eff_rank": float(np.exp(-np.sum(p * np.log(p)))),
    }


def split_shares(H: np.ndarray, w0: np.ndarray, k: int) -> dict:
    """``trace(D)/trace(H)`` of the Jacobi and log-det splits (the default search's two)."""
    from solvers.prune.bounds import diagonal_split

    alive = np.diag(H) > 0
    tr = float(np.trace(H))
    out = {}
    for method in ("jacobi", "logdet"):
        d = diagonal_split(H, w0, alive, H.shape[0] - k, method)
        out[f"share_{method}"] = float(d.sum() / tr) if tr > 0 else 0.0
    return out


def w0_stats(H: np.ndarray, w0: np.ndarray, k: int) -> dict:
    """Excess kurtosis of the alive ``w0``, the norm share of its ``k`` largest entries, and the
    share of ``w0ᵀHw0`` along the top eigenvector of the Jacobi-scaled ``H``."""
    alive = np.diag(H) > 0
    w = w0[alive]
    sd = float(w.std())
    kurt = float(np.mean((w - w.mean()) ** 4) / sd**4 - 3.0) if sd > 0 else 0.0
    s = np.abs(w0) * np.sqrt(np.maximum(np.diag(H), 0.0))
    keep = np.argsort(-s)[:k]
    norm = float(w0 @ H @ w0)
    top = float(w0[keep] @ H[np.ix_(keep, keep)] @ w0[keep]) if k else 0.0
    sq = np.sqrt(np.diag(H)[alive])
    lam, V = np.linalg.eigh(H[np.ix_(alive, alive)] / np.outer(sq, sq))
    a = lam * (V.T @ (w0[alive] * sq)) ** 2  # w0ᵀHw0 split along the scaled eigenvectors
    return {"kurtosis": kurt, "topk_norm_share": top / norm if norm > 0 else 0.0,
            "top_dir_share": float(a[-1] / a.sum()) if a.sum() > 0 else 0.0}


def pick_channels(lp, count: int, seed: int, name: str) -> list[int]:
    """The first ``count`` live channels of a permutation seeded by ``seed`` and ``name``."""
    norms = lp.norms()
    live = [c for c in range(lp.channels) if norms[c] > 0 and np.any(lp.W0[c] != 0)]
    rng = np.random.default_rng([seed, *name.encode()])
    order = rng.permutation(len(live))
    return [live[i] for i in order[:count]]


def export_first_chunks(model: str, n: int, samples: int, layers, cache: Path | None):
    """``{layer: LayerProblem}``: the first chunk of ``n`` inputs of every requested layer."""
    from solvers.problem import LayerProblem

    if cache is not None and cache.exists():
        data = np.load(cache, allow_pickle=False)
        meta = json.loads(str(data["meta"]))
        out = {name: LayerProblem(data[f"H{i}"], data[f"W{i}"], m)
               for i, (name, m) in enumerate(meta.items())}
        if layers is None or all(name in out for name in layers):
            return {k: v for k, v in out.items() if layers is None or k in layers}
    from bounds.export import export_model

    probs = export_model(model, layers=layers, opt_dim=n, samples=samples, scale_bits=[4])
    out = {name: lps[0] for name, lps in probs.items() if lps}
    if cache is not None:
        keep = ("layer", "kind", "module_type", "layer_n", "chunks", "input_start",
                "input_stop", "rows", "samples", "calibration_source", "model")
        meta = {name: {k: lp.meta[k] for k in keep if k in lp.meta} for name, lp in out.items()}
        arrays = {}
        for i, lp in enumerate(out.values()):
            arrays[f"H{i}"], arrays[f"W{i}"] = lp.H, lp.W0
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, meta=json.dumps(meta), **arrays)
        out = {name: LayerProblem(lp.H, lp.W0, meta[name]) for name, lp in out.items()}
    return out


def warm_up() -> None:
    """Compile / load every kernel the timed solves use (both phases, the log-det split)."""
    from solvers import PruneProblem, solve

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 24)) + rng.standard_normal((80, 1))
    p = PruneProblem(X.T @ X, rng.standard_normal(24), k=6)
    solve(p, "exact", node_limit=50)
    solve(p, "exact", diagonal="logdet", node_limit=50)


def solve_row(p, *, cpu_limit, node_limit, wall_clock: bool, options=None) -> dict:
    """One timed solve: status, CPU and wall seconds, nodes, objective, bound and info.

    ``options``: keyword options of the exact solver (``solvers.prune.exact.solve_exact``).
    """
    from solvers import solve

    ctx = contextlib.nullcontext() if wall_clock else cpu_clock()
    dead = int(np.count_nonzero(np.diag(p.H) <= 0))
    with ctx, depth_probe(dead, p.n) as probe:
        t_wall, t_cpu, t_proc = time.perf_counter(), time.thread_time(), time.process_time()
        r = solve(p, "exact", time_limit=cpu_limit, node_limit=node_limit, **(options or {}))
        cpu, wall = time.thread_time() - t_cpu, time.perf_counter() - t_wall
        proc = time.process_time() - t_proc
    hist = None if probe is None else probe.hist
    if hist is not None and hist.sum() > 0:
        cum = np.cumsum(hist) / hist.sum()
        depth_med = int(np.searchsorted(cum, 0.5))
    else:
        depth_med = None
    best_inc = min(r.info["incumbents"].values()) if r.info.get("incumbents") else math.nan
    obj = r.objective
    rel = (lambda v: v / obj) if obj > 0 else (lambda v: math.nan)
    return {
        "status": r.status.value, "cpu": cpu, "wall": wall, "process_cpu": proc,
        "clock": "wall" if wall_clock else "cpu", "nodes": int(r.nodes),
        "objective": obj, "lower_bound": r.lower_bound, "gap": r.gap, "norm": p.norm,
        "root_share": rel(r.info["root_bound"]), "inc_gap": rel(best_inc) - 1.0,
        "incumbent_source": r.info.get("incumbent_source"),
        "phases": r.info.get("phases"), "open_nodes": r.info.get("open_nodes"),
        "depth_median": depth_med,
        "depth_hist": None if hist is None else hist.tolist(),
        "weights": np.asarray(r.weights).tolist(),
    }


def scan(args) -> list[dict]:
    from solvers.problem import density_to_k

    cache = None if args.no_cache else Path(args.cache_dir) / (
        f"{args.model}_n{args.n}_s{args.samples}.npz")
    layers, todo = args.layers, None
    if args.stalled:
        earlier = json.loads(Path(args.stalled).read_text())["rows"]
        layers = stalled_layers(earlier)
        if not args.all_densities:  # only the (layer, density) pairs with an unproved solve
            todo = {(r["layer"], r["density"]) for r in earlier if r["status"] != "optimal"}
        print(f"# {len(layers)} layers with unproved solves in {args.stalled}: "
              f"{', '.join(layers)}", flush=True)
        if args.layers:
            layers = [name for name in layers if name in args.layers]
    chunks = export_first_chunks(args.model, args.n, args.samples, layers, cache)
    warm_up()
    rows: list[dict] = []
    settings = settings_of(args)
    for name, lp in chunks.items():
        kind = lp.meta.get("module_type", "?")
        groups = "depthwise" if not lp.shared_hessian else ""
        chans = pick_channels(lp, args.channels, args.seed, name)
        layer_rows = []
        for c in chans:
            H = lp.hessian(c)
            spec = spectrum_stats(H)
            for dens in args.densities:
                if todo is not None and (name, dens) not in todo:
                    continue
                k = density_to_k(dens, lp.n)
                p = lp.prune(c, k=k)
                row = {"layer": name, "type": kind, "depthwise": bool(groups), "n": lp.n,
                       "layer_n": lp.meta.get("layer_n"), "rows": lp.meta.get("rows"),
                       "channel": c, "density": dens,
                       "k": k, **spec, **split_shares(H, p.w0, k), **w0_stats(H, p.w0, k)}
                limits = {"cpu_limit": args.cpu_limit, "node_limit": args.node_limit,
                          "wall_clock": args.wall_clock}
                if args.baseline is not None:  # the baseline first, on the same instance
                    base = solve_row(p, options=args.baseline, **limits)
                    row["base"] = {key: base[key] for key in BASE_FIELDS}
                row.update(solve_row(p, options=args.options, **limits))
                layer_rows.append(row)
                print(f"  {name:<28} ch{c:<4} d={dens:<5} {row['status']:<10} cpu "
                      f"{row['cpu']:7.2f} s wall {row['wall']:7.2f} s nodes {row['nodes']:>8} "
                      f"gap {row['gap'] or 0:.2e} root {row['root_share']:.2f}"
                      + (f"  | baseline {row['base']['status']} cpu {row['base']['cpu']:.2f} s"
                         f" nodes {row['base']['nodes']}" if "base" in row else ""),
                      flush=True)
        rows.extend(layer_rows)
        if args.json:
            Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}))
    return rows


#: What a row keeps of its baseline solve (``--baseline``).
BASE_FIELDS = ("status", "cpu", "wall", "process_cpu", "clock", "nodes", "objective",
               "lower_bound", "gap", "root_share", "weights")


def comparison(rows: list[dict], settings: dict) -> str:
    """Markdown: the baseline and the run's options on the same instances, per layer and
    density (proved counts, median CPU seconds and nodes, their ratios), then the totals.

    Ratios are new / baseline: per solve, then the median and the geometric mean over the
    solves both proved (a ratio below 1 = the new options are faster)."""
    lim = settings.get("cpu_limit")
    clock = "wall" if settings.get("clock") == "wall" else "CPU"
    both = [r for r in rows if "base" in r]
    if not both:
        return ""
    out = [f"## Baseline {json.dumps(settings.get('baseline'))} vs "
           f"{json.dumps(settings.get('options') or {})}, same instances, one run",
           "",
           f"| layer | density | solves | proved base → new | median {clock} s base → new | "
           f"{clock} ratio (median, both proved) | median nodes base → new | "
           f"worst {clock} ratio |",
           "|---|---|---|---|---|---|---|---|"]
    keys: list = []
    for r in both:
        if (r["layer"], r["density"]) not in keys:
            keys.append((r["layer"], r["density"]))
    ratios_all = []
    for name, dens in keys:
        gr = [r for r in both if r["layer"] == name and r["density"] == dens]
        pb = sum(proved(r["base"], lim) for r in gr)
        pn = sum(proved(r, lim) for r in gr)
        ratios = [clock_seconds(r) / max(clock_seconds(r["base"]), 1e-9) for r in gr
                  if proved(r, lim) and proved(r["base"], lim)]
        ratios_all += ratios
        cell = f"{pb}/{len(gr)} → {pn}/{len(gr)}"
        out.append(
            f"| {name} | {100 * dens:g} % | {len(gr)} | {f'**{cell}**' if pn != pb else cell} | "
            f"{statistics.median(clock_seconds(r['base']) for r in gr):.2f} → "
            f"{statistics.median(clock_seconds(r) for r in gr):.2f} | "
            f"{_fmt(statistics.median(ratios)) if ratios else '–'} | "
            f"{statistics.median(r['base']['nodes'] for r in gr):.0f} → "
            f"{statistics.median(r['nodes'] for r in gr):.0f} | "
            f"{_fmt(max(ratios)) if ratios else '–'} |")
    pb = sum(proved(r["base"], lim) for r in both)
    pn = sum(proved(r, lim) for r in both)
    gain = sum(proved(r, lim) and not proved(r["base"], lim) for r in both)
    loss = sum(proved(r["base"], lim) and not proved(r, lim) for r in both)
    out += ["", f"* proved: baseline {pb}/{len(both)}, new {pn}/{len(both)} "
                f"({gain} proved by the new options only, {loss} by the baseline only)"]
    if ratios_all:
        geo = math.exp(statistics.fmean(math.log(max(x, 1e-9)) for x in ratios_all))
        out.append(f"* {clock} time new / baseline over the {len(ratios_all)} solves both proved: "
                   f"geometric mean {geo:.3g}, median {statistics.median(ratios_all):.3g}, "
                   f"range {min(ratios_all):.3g}–{max(ratios_all):.3g}")
        out.append("* same objective on every solve both proved: "
                   + ("yes" if all(abs(r["objective"] - r["base"]["objective"])
                                   <= 1e-9 * max(r["norm"], 1e-300) * 1e3
                                   for r in both if proved(r, lim) and proved(r["base"], lim))
                      else "NO"))
    return "\n".join(out) + "\n"


def enrich(rows: list[dict], cache: Path) -> None:
    """Recompute :func:`spectrum_stats` and :func:`w0_stats` into ``rows`` from ``cache``."""
    chunks = export_first_chunks("", 0, 0, None, cache)
    done: dict = {}
    for r in rows:
        key = (r["layer"], r["channel"])
        H = chunks[r["layer"]].hessian(r["channel"])
        if key not in done:
            done[key] = spectrum_stats(H)
        r.update(done[key])
        r.update(w0_stats(H, chunks[r["layer"]].W0[r["channel"]], r["k"]))


def clock_seconds(row: dict) -> float:
    """A solve's seconds on the run's clock: the solving thread's CPU time, or the wall clock
    with ``--wall-clock``."""
    return row["wall"] if row.get("clock") == "wall" else row["cpu"]


def proved(row: dict, cpu_limit: float | None) -> bool:
    """Proved optimal, within ``cpu_limit`` seconds of the run's clock when one is given."""
    return row["status"] == "optimal" and (cpu_limit is None or clock_seconds(row) <= cpu_limit)


def stalled_layers(rows: list[dict]) -> list[str]:
    """Layers (in scan order) with at least one solve not proved optimal."""
    out: list[str] = []
    for r in rows:
        if r["status"] != "optimal" and r["layer"] not in out:
            out.append(r["layer"])
    return out


def settings_of(args) -> dict:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    return {"argv": sys.argv, "commit": commit, "numpy": np.__version__,
            "start": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "load_start": os.getloadavg(), "model": args.model, "n": args.n,
            "samples": args.samples, "channels": args.channels, "densities": args.densities,
            "cpu_limit": args.cpu_limit, "node_limit": args.node_limit,
            "clock": "wall" if args.wall_clock else "thread CPU", "seed": args.seed,
            "options": args.options, "baseline": args.baseline}


def _fmt(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def report(rows: list[dict], settings: dict) -> str:
    """Markdown: settings, then one line per layer and density."""
    lim = settings.get("cpu_limit")
    lines = [f"# prune_scan: {settings['model']}, n = {settings['n']} (first chunk), "
             f"{settings['channels']} channels per layer",
             "",
             f"Command: `{shlex.join(settings['argv'])}`  ",
             f"Commit {settings['commit']}, numpy {settings['numpy']}, started "
             f"{settings['start']}, load average at start "
             f"{', '.join(f'{x:.1f}' for x in settings['load_start'])} (2 cores, shared).  ",
             f"Limits per solve: {_fmt(lim)} s of {settings['clock']} time, node limit "
             f"{settings['node_limit'] or 'none'}; calibration {settings['samples']} samples; "
             f"seed {settings['seed']}.  ",
             "\"proved\" = status optimal within the CPU limit. Times are medians over the "
             "layer's solves; `gap left` the largest relative gap of an unproved solve; "
             "`root` the median root bound over the final objective; `n` < "
             f"{settings['n']}: the layer has fewer inputs and is solved whole.",
             ""]
    dens = sorted({r["density"] for r in rows})
    layers: list[str] = []
    for r in rows:
        if r["layer"] not in layers:
            layers.append(r["layer"])
    lines.append("| layer | n | " + " | ".join(
        f"{100 * d:g} %: proved, cpu s, wall s, nodes, gap left, root" for d in dens) + " |")
    lines.append("|---|---|" + "---|" * len(dens))
    totals = {d: [0, 0] for d in dens}
    for name in layers:
        lr = [r for r in rows if r["layer"] == name]
        cells = []
        for d in dens:
            dr = [r for r in lr if r["density"] == d]
            if not dr:
                cells.append("")
                continue
            ok = sum(proved(r, lim) for r in dr)
            totals[d][0] += ok
            totals[d][1] += len(dr)
            gaps = [r["gap"] for r in dr if not proved(r, lim) and r["gap"] is not None]
            cell = (f"{ok}/{len(dr)}, {statistics.median(r['cpu'] for r in dr):.2f}, "
                    f"{statistics.median(r['wall'] for r in dr):.2f}, "
                    f"{statistics.median(r['nodes'] for r in dr):.0f}, "
                    f"{_fmt(max(gaps)) if gaps else '–'}, "
                    f"{_fmt(statistics.median(r['root_share'] for r in dr))}")
            cells.append(f"**{cell}**" if ok < len(dr) else cell)
        tag = " (dw)" if lr[0]["depthwise"] else ""
        lines.append(f"| {name}{tag} | {lr[0]['n']} | " + " | ".join(cells) + " |")
    lines.append("")
    for d in dens:
        ok, tot = totals[d]
        lines.append(f"* density {100 * d:g} %: proved {ok}/{tot} "
                     f"({100 * ok / max(tot, 1):.0f} %)")
    stall = stalled_layers(rows)
    lines.append(f"* layers with an unproved solve ({len(stall)} of {len(layers)}): "
                 f"{', '.join(stall) or 'none'}")
    few = under_calibrated(rows)
    if few:
        lines.append(f"* under-calibrated (`H` from fewer than {CALIBRATION_ROWS_PER_INPUT}·n "
                     f"calibration rows: a linear layer sees one row per sample; rerun these "
                     f"with more `--samples`): {', '.join(few)}")
    return "\n".join(lines) + "\n"


#: A layer whose ``H`` comes from fewer than this many calibration rows per input is
#: under-calibrated (:func:`under_calibrated`).
CALIBRATION_ROWS_PER_INPUT = 4


def under_calibrated(rows: list[dict]) -> list[str]:
    """Layers whose ``H`` was made from fewer than :data:`CALIBRATION_ROWS_PER_INPUT`·``n``
    rows (the classifiers and poolers: one row per sample). With ``rows ≈ n`` the kept inputs
    nearly span the rows and ``H`` is nearly singular in many directions at once: the root
    bound is ~0.001 of the objective (issue 20), a property of the calibration, not of the
    layer; 256 samples (4 rows per input at ``n`` = 64) prove MobileNetV2's ``classifier.1``."""
    out: list[str] = []
    for r in rows:
        m = r.get("rows")
        if m is not None and m < CALIBRATION_ROWS_PER_INPUT * r["n"] and r["layer"] not in out:
            out.append(r["layer"])
    return out


#: Row fields compared between easy, slow and stalled solves (see :func:`diagnosis`).
FEATURES = [("cond", "cond(H)"), ("cond_scaled", "cond(Jacobi-scaled H)"),
            ("decay_q1", "λ_(n/4)/λ_1"), ("decay_half", "λ_(n/2)/λ_1"),
            ("eff_rank", "effective rank"), ("lam_min_scaled", "λ_min scaled"),
            ("small_scaled", "# scaled λ < 0.05"), ("pr_bottom", "PR of 4 least eigvecs"),
            ("share_jacobi", "tr D/tr H, Jacobi"),
            ("share_logdet", "tr D/tr H, log-det"), ("kurtosis", "kurtosis(w0)"),
            ("topk_norm_share", "top-k norm share"), ("top_dir_share", "top-direction share"),
            ("inc_gap", "best heuristic / final − 1"),
            ("root_share", "root bound / final"), ("nodes", "nodes"),
            ("depth_median", "median node depth")]


def diagnosis(rows: list[dict], n: int, cpu_limit: float | None) -> str:
    """Medians of :data:`FEATURES` per density over full-size chunks, in three groups.

    ``easy``: proved within 1 CPU second; ``slow``: proved, but later; ``stalled``: not proved
    within the limit.
    """
    def group(r):
        if not proved(r, cpu_limit):
            return "stalled"
        return "easy" if r["cpu"] <= 1.0 else "slow"

    full = [r for r in rows if r["n"] == n]
    out = ["| density | group | solves | " + " | ".join(h for _, h in FEATURES) + " |",
           "|---|---|---|" + "---|" * len(FEATURES)]
    for d in sorted({r["density"] for r in full}):
        for g in ("easy", "slow", "stalled"):
            gr = [r for r in full if r["density"] == d and group(r) == g]
            if not gr:
                continue
            vals = []
            for key, _ in FEATURES:
                xs = [r[key] for r in gr if r.get(key) is not None
                      and not (isinstance(r[key], float) and math.isnan(r[key]))]
                vals.append(_fmt(statistics.median(xs)) if xs else "–")
            out.append(f"| {100 * d:g} % | {g} | {len(gr)} | " + " | ".join(vals) + " |")
    return "\n".join(out) + "\n"


#: Per-layer columns of :func:`layer_table` (medians over the layer's solves).
LAYER_COLUMNS = [("cpu", "CPU s"), ("root_share", "root / final"),
                 ("lam_min_scaled", "λ_min scaled"), ("small_scaled", "# scaled λ < 0.05"),
                 ("pr_bottom", "PR"), ("share_logdet", "tr D/tr H log-det"),
                 ("kurtosis", "kurtosis(w0)"), ("top_dir_share", "top-direction share"),
                 ("eff_rank", "eff. rank"), ("cond", "cond(H)")]


def layer_table(rows: list[dict], n: int, cpu_limit: float | None) -> str:
    """One line per layer with chunks of the full size ``n``, easiest first (median CPU)."""
    layers: dict = {}
    for r in rows:
        if r["n"] == n:
            layers.setdefault(r["layer"], []).append(r)
    out = ["| layer | proved | " + " | ".join(h for _, h in LAYER_COLUMNS) + " |",
           "|---|---|" + "---|" * len(LAYER_COLUMNS)]
    med = {name: {k: statistics.median(r[k] for r in lr) for k, _ in LAYER_COLUMNS}
           for name, lr in layers.items()}
    for name in sorted(layers, key=lambda x: med[x]["cpu"]):
        lr = layers[name]
        ok = sum(proved(r, cpu_limit) for r in lr)
        out.append(f"| {name} | {ok}/{len(lr)} | "
                   + " | ".join(_fmt(med[name][k]) for k, _ in LAYER_COLUMNS) + " |")
    return "\n".join(out) + "\n"


def _options(text: str) -> dict:
    """Solver options from ``--options`` / ``--baseline`` (a JSON object), checked by name."""
    from solvers.prune.exact import OPTIONS

    try:
        opts = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON object: {text!r} ({exc.msg})") from None
    if not isinstance(opts, dict):
        raise ValueError(f"not a JSON object: {text!r}")
    bad = sorted(set(opts) - set(OPTIONS) | {"node_limit"} & set(opts))
    if bad:
        raise ValueError(f"unknown or reserved solver options {', '.join(bad)} "
                         f"(valid: {', '.join(o for o in OPTIONS if o != 'node_limit')})")
    return opts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v2",
                    help="built-in model: mobilenet_v2, efficientnet_lite0, minilm")
    ap.add_argument("--n", type=int, default=64, help="chunk size (first chunk of each layer)")
    ap.add_argument("--channels", type=int, default=2, help="output channels per layer")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.125, 0.25, 0.5])
    ap.add_argument("--cpu-limit", type=float, default=10.0,
                    help="seconds of the solving thread's CPU time per solve (0: none)")
    ap.add_argument("--node-limit", type=int, default=None)
    ap.add_argument("--wall-clock", action="store_true",
                    help="apply --cpu-limit to the wall clock instead (the solver's own clock)")
    ap.add_argument("--samples", type=int, default=64, help="calibration samples")
    ap.add_argument("--layers", nargs="+",
                    help="only these layers (default: every layer; with --stalled: a subset)")
    ap.add_argument("--stalled", metavar="JSON",
                    help="only the layers with an unproved solve in this earlier scan")
    ap.add_argument("--all-densities", action="store_true",
                    help="with --stalled: every density, not only those with an unproved solve")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "pqbound-prune-scan"),
                    help="where the exported first chunks are kept between runs")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="every row (rewritten after each layer)")
    ap.add_argument("--report", metavar="PATH", help="write the markdown report here")
    ap.add_argument("--summarize", metavar="JSON", help="only rebuild the report from a JSON")
    ap.add_argument("--options", metavar="JSON", default="{}",
                    help="options of the exact solver, e.g. '{\"resplit\": 4}'")
    ap.add_argument("--baseline", metavar="JSON",
                    help="also solve every instance with these options first (e.g. '{}': the "
                         "defaults) and report both side by side with ratios")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.cpu_limit is not None and args.cpu_limit <= 0:
        args.cpu_limit = None
    try:
        args.options = _options(args.options)
        args.baseline = None if args.baseline is None else _options(args.baseline)
    except ValueError as exc:
        ap.error(str(exc))
    threaded = [o for o in (args.options, args.baseline or {}) if o.get("threads", 1) != 1]
    if threaded and not args.wall_clock:
        ap.error("the option threads needs --wall-clock: the CPU-time limit counts the "
                 "calling thread only, and the search runs on others")
    if args.summarize:
        data = json.loads(Path(args.summarize).read_text())
        rows, settings = data["rows"], data["settings"]
        cache = Path(args.cache_dir) / (f"{settings['model']}_n{settings['n']}_s"
                                        f"{settings['samples']}.npz")
        if cache.exists() and any("top_dir_share" not in r for r in rows):
            enrich(rows, cache)  # rows of an older version of this script
    else:
        if args.n < 1 or args.channels < 1 or not all(0 < d <= 1 for d in args.densities):
            ap.error("--n and --channels must be >= 1 and densities in (0, 1]")
        settings = settings_of(args)
        rows = scan(args)
        settings["end"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        settings["load_end"] = os.getloadavg()
        if args.json:
            Path(args.json).write_text(json.dumps({"settings": settings, "rows": rows}))
    text = report(rows, settings)
    text += ("\n## Diagnosis: medians per group (chunks of the full size n)\n\n"
             + diagnosis(rows, settings["n"], settings.get("cpu_limit"))
             + "\n## Per layer, easiest first (medians; PR: participation ratio of the four "
             "least eigenvectors of the Jacobi-scaled H)\n\n"
             + layer_table(rows, settings["n"], settings.get("cpu_limit")))
    side_by_side = comparison(rows, settings)
    if side_by_side:
        text += "\n" + side_by_side
    print(text)
    if args.report:
        Path(args.report).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
