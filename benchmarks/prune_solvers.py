"""Exact pruning: our branch-and-bound against SCIP and Gurobi on real MobileNetV2 problems.

Per-channel pruning problems come from real MobileNetV2 layers (``bounds.export.export_model``,
built-in calibration photos, FP16 weights, chunks of ``opt_dim`` inputs). Two parts:

1. ``n = 32`` at densities 50 %, 25 %, 12.5 %: the same instances solved by ours and by SCIP and
   Gurobi (single thread, relative gap 1e-6) on the paper's *boxed* big-M formulation
   (``|w_i| <= 2·max|w0|``; ours accepts the same box), interleaved instance by instance; ours
   also on the unboxed (true) problem. Medians, time ratios and optimum agreement are printed.
2. ``n = 64``: the share of instances ours proves optimal within ``--limit-64`` seconds.

Usage::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/prune_solvers.py
    python benchmarks/prune_solvers.py --count-32 6 --count-64 4 --limit-64 10 --no-scip  # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunk_pool import DEFAULT_LAYERS, chunk_pool  # noqa: E402


def load_instances(n: int, count: int, densities, seed: int, samples: int, layers,
                   synthetic: bool):
    """``count`` (layer problem, channel) pairs with ``n`` inputs, sampled with ``seed``."""
    rng = np.random.default_rng(seed)
    pool, source = chunk_pool(n, count, rng, samples=samples, layers=layers,
                              synthetic=synthetic)
    picks = []
    for _ in range(count):
        name, lp = pool[int(rng.integers(len(pool)))]
        c = int(rng.integers(lp.channels))
        if np.all(lp.W0[c] == 0):
            continue
        picks.append((f"{name} ch{c}", lp, c))
    return picks, source


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count-32", type=int, default=20, help="instances per density at n = 32")
    ap.add_argument("--count-64", type=int, default=20, help="instances per density at n = 64")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.5, 0.25, 0.125])
    ap.add_argument("--limit-32", type=float, default=120.0,
                    help="time limit per solve at n = 32 (every solver)")
    ap.add_argument("--limit-64", type=float, default=60.0, help="our time limit at n = 64")
    ap.add_argument("--box-factor", type=float, default=2.0)
    ap.add_argument("--no-scip", action="store_true")
    ap.add_argument("--no-gurobi", action="store_true")
    ap.add_argument("--skip-32", action="store_true", help="only the n = 64 part")
    ap.add_argument("--skip-64", action="store_true", help="only the n = 32 part")
    ap.add_argument("--method-options", metavar="JSON", default="{}",
                    help="options for our exact solver, e.g. '{\"perspective\": 0}'")
    ap.add_argument("--samples", type=int, default=16, help="calibration photos for export")
    ap.add_argument("--synthetic", action="store_true", help="skip the export")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write every measurement here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from solvers.backends.base import importable
    from solvers.prune.exact import solve_exact

    backends = {}
    if not args.no_gurobi and importable("gurobipy"):
        from solvers.backends.gurobi import GUROBI

        backends["gurobi"] = GUROBI.solve_prune
    if not args.no_scip and importable("pyscipopt"):
        from solvers.backends.scip import SCIP

        backends["scip"] = SCIP.solve_prune

    # warm the compiled kernels (numba cache) outside the timings
    from solvers.problem import PruneProblem

    # (every code path: unboxed, boxed with a binding box, N:M), so that no first-use compile
    # lands inside a timed solve
    from solvers.prune.refit import refit

    Hw = np.array([[2.0, 1.9, 0.0, 0.0], [1.9, 2.0, 0.1, 0.0], [0.0, 0.1, 1.0, 0.3],
                   [0.0, 0.0, 0.3, 1.0]])
    for kw in ({"k": 2}, {"k": 2, "box_factor": 0.3}, {"nm": (1, 2)},
               {"nm": (1, 2), "box_factor": 0.3}):
        pw = PruneProblem(Hw, np.array([1.0, -1.0, 0.5, 0.2]), **kw)
        solve_exact(pw)
        refit(pw, np.array([True, True, False, False]))

    rows = []
    opts = json.loads(args.method_options)
    print(f"# prune_solvers: numpy {np.__version__}; backends: {', '.join(backends) or 'none'}; "
          f"ours with {opts or 'default options'}")
    inst32, src32 = ([], "") if args.skip_32 else load_instances(
        32, args.count_32, args.densities, args.seed, args.samples, DEFAULT_LAYERS,
        args.synthetic)
    if inst32:
        print(f"# n = 32: {len(inst32)} instances from {src32}; box c = {args.box_factor}; "
              f"limit {args.limit_32:g} s; gap 1e-6 for the backends, 1e-9 for ours")
    for d in args.densities if inst32 else []:
        times = {"ours_boxed": [], "ours_unboxed": [], **{b: [] for b in backends}}
        agree = {b: 0 for b in backends}
        solved = {k: 0 for k in times}
        for label, lp, c in inst32:
            boxed = lp.prune(c, density=d, box_factor=args.box_factor)
            plain = lp.prune(c, density=d)
            res = {}
            res["ours_boxed"] = solve_exact(boxed, time_limit=args.limit_32, **opts)
            for b, fn in backends.items():
                res[b] = fn(boxed, time_limit=args.limit_32)
            res["ours_unboxed"] = solve_exact(plain, time_limit=args.limit_32, **opts)
            ref = res["ours_boxed"].objective
            for key, r in res.items():
                times[key].append(r.seconds)
                solved[key] += r.status.value == "optimal"
                rows.append({"n": 32, "density": d, "instance": label, "solver": key,
                             "seconds": r.seconds, "objective": r.objective,
                             "lower_bound": r.lower_bound, "status": r.status.value,
                             "nodes": r.nodes})
            for b in backends:
                o = res[b].objective
                agree[b] += abs(o - ref) <= 1e-6 * max(abs(ref), 1e-12 * boxed.norm)
        m = {k: statistics.median(v) for k, v in times.items() if v}
        line = (f"n=32 density {d:>5.3f}: median ours(boxed) {m['ours_boxed'] * 1e3:8.2f} ms, "
                f"ours(unboxed) {m['ours_unboxed'] * 1e3:8.2f} ms")
        for b in backends:
            line += (f", {b} {m[b] * 1e3:8.1f} ms (ratio {m[b] / m['ours_boxed']:6.1f}x, "
                     f"same optimum {agree[b]}/{len(inst32)}, optimal {solved[b]})")
        line += (f"; ours optimal {solved['ours_boxed']}/{len(inst32)} boxed, "
                 f"{solved['ours_unboxed']}/{len(inst32)} unboxed")
        print(line, flush=True)

    if not args.skip_64:
        inst64, src64 = load_instances(64, args.count_64, args.densities, args.seed + 1,
                                       args.samples, DEFAULT_LAYERS, args.synthetic)
        print(f"# n = 64: {len(inst64)} instances from {src64}; unboxed; "
              f"limit {args.limit_64:g} s")
        for d in args.densities:
            secs, opt, nodes, gaps = [], 0, [], []
            for label, lp, c in inst64:
                r = solve_exact(lp.prune(c, density=d), time_limit=args.limit_64, **opts)
                secs.append(r.seconds)
                nodes.append(r.nodes)
                opt += r.status.value == "optimal"
                if r.status.value != "optimal":
                    gaps.append(r.gap)
                rows.append({"n": 64, "density": d, "instance": label, "solver": "ours_unboxed",
                             "seconds": r.seconds, "objective": r.objective,
                             "lower_bound": r.lower_bound, "status": r.status.value,
                             "nodes": r.nodes, "gap": r.gap})
            print(f"n=64 density {d:>5.3f}: proven optimal {opt}/{len(inst64)} "
                  f"({100.0 * opt / max(1, len(inst64)):.0f} %) within {args.limit_64:g} s; "
                  f"median {statistics.median(secs):.3f} s, max {max(secs):.2f} s, "
                  f"median nodes {statistics.median(nodes):.0f}"
                  + (f"; gaps left {', '.join(f'{g:.2g}' for g in gaps)}" if gaps else ""),
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"argv": sys.argv, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(run())
