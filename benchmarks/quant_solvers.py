"""Exact quantization: our solver against SCIP and Gurobi on real MobileNetV2 problems.

Per-channel problems come from real MobileNetV2 layers (``bounds.export.export_model``: built-in
calibration photos, FP16 weights, chunks of ``opt_dim = n`` inputs, the layer's per-tensor
MSE scale from the export). Parts:

1. ``n = 32``, 4 bits: ours, SCIP, Gurobi and CPLEX (one thread, relative gap 1e-6) on the
   same instances, interleaved instance by instance; wall-clock medians, per-instance time
   ratios (median) and optimum agreement (relative 1e-9) are printed.
2. ``n = 32``, 8 bits: ours, Gurobi, CPLEX and fpylll (LLL + Schnorr–Euchner enumeration of the
   closest vector, C++; it ignores the box, so it is a timing reference, not a solver of this
   problem; skipped on singular ``H``), same layout.
3. ``n = 64``, 4 bits: the share of instances ours proves optimal within ``--limit-64`` s.
4. ``n = 128``, 4 bits: after ``--limit-128`` s, the SQNR distance (dB) between the certified
   lower bound and the incumbent (distribution).
5. The SDP bound's distance below the exact optimum, in dB of SQNR, per layer (n = 32, 4 bits).
6. The same for our Lagrangian bound, plain (the Park–Boyd SDP's value) and strengthened by
   dual-lattice tangents (:mod:`solvers.quant.lattice_cuts`, ``--cut-time`` s), on the n = 32
   and n = 64 instances whose optimum ours proved; per layer.

Usage::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/quant_solvers.py
    python benchmarks/quant_solvers.py --count 6 --count-64 4 --limit-64 10 --count-128 2 \\
        --limit-128 10 --no-scip            # quick
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunk_pool import DEFAULT_LAYERS, chunk_pool  # noqa: E402


def load_instances(n, count, bits, seed, samples, layers, synthetic):
    """``count`` (name, QuantProblem) pairs with ``n`` inputs and ``bits``, drawn with ``seed``."""
    from solvers.scales import mse_scale

    rng = np.random.default_rng(seed)
    pool, source = chunk_pool(n, count, rng, samples=samples, layers=layers,
                              synthetic=synthetic)
    picks = []
    while len(picks) < count:
        name, lp = pool[int(rng.integers(len(pool)))]
        c = int(rng.integers(lp.channels))
        if np.all(lp.W0[c] == 0) or lp.norms()[c] <= 0:
            continue
        table = lp.meta.get("scales_mse_tensor")
        s = float(table[bits - 1]) if table is not None else float(mse_scale(lp.W0, bits))
        picks.append((f"{name} ch{c}", lp.quant(c, scale=s, bits=bits)))
    return picks, source


def _db(norm, err):
    if err is None or err <= 0 or norm <= 0:
        return math.inf
    return 10 * math.log10(norm / err)


def compare(picks, solvers, limit, label, rows):
    from solvers.problem import ProblemError

    """Interleaved solves; prints per-instance lines, medians, ratios and agreement."""
    print(f"\n## {label}: {len(picks)} instances, solvers {', '.join(solvers)}")
    times = {k: [] for k in solvers}
    ratios = {k: [] for k in solvers if k != "exact"}
    disagree = 0
    for name, p in picks:
        res = {}
        wall = {}
        for k, fn in solvers.items():
            t = time.perf_counter()
            try:
                r = fn(p, time_limit=limit)
            except ProblemError as exc:  # e.g. fpylll on a singular H: no lattice basis
                print(f"{name:32s} {k}: not applicable ({exc})")
                continue
            wall[k] = time.perf_counter() - t
            res[k] = r
            times[k].append(wall[k])
            rows.append({"part": label, "instance": name, "solver": k, "status": r.status.value,
                         "seconds": wall[k], "objective": r.objective,
                         "lower_bound": r.lower_bound, "nodes": r.nodes})
        e = res["exact"]
        line = f"{name:32s} exact {e.status.value:10s} {wall['exact'] * 1e3:9.2f} ms"
        for k, r in res.items():
            if k == "exact":
                continue
            ratios[k].append(wall[k] / max(wall["exact"], 1e-9))
            agree = abs(r.objective - e.objective) <= 1e-9 * max(e.objective, 1e-300)
            both_opt = r.status.value == "optimal" and e.status.value == "optimal"
            if both_opt and not agree:
                disagree += 1
            line += (f" | {k} {r.status.value:10s} {wall[k]:8.3f} s "
                     f"rel.diff {(r.objective - e.objective) / max(e.objective, 1e-300):+.1e}")
        print(line, flush=True)
    for k, ts in times.items():
        if ts:
            print(f"median time {k:8s}: {statistics.median(ts) * 1e3:10.2f} ms ({len(ts)})")
    for k, rs in ratios.items():
        if rs:
            print(f"median ratio {k}/exact: {statistics.median(rs):10.1f}x "
                  f"(min {min(rs):.1f}x, max {max(rs):.1f}x; {len(rs)} instances)")
    print(f"optimum disagreements (both optimal, > 1e-9 relative): {disagree}")


def cut_part(parts, limit, rows, solved) -> None:
    """Part 6: plain and strengthened Lagrangian bounds against proven optima, per layer
    (``solved``: exact results already at hand, by instance name)."""
    from solvers.quant.exact import solve_exact
    from solvers.quant.lagrangian import certified_root_bound
    from solvers.quant.lattice_cuts import cut_bound

    for picks, budget, label in parts:
        print(f"\n## Lagrangian bound vs exact optimum ({label} 4 bits, cuts {budget:g} s)")
        per_layer: dict[str, list] = {}
        for name, p in picks:
            e = solved.get(name) or solve_exact(p, time_limit=max(limit, 60.0))
            if e.status.value != "optimal":
                print(f"{name:32s} optimum not proven: skipped")
                continue
            c = p.w0 / p.scale
            b0, _ = certified_root_bound(p.H, c, p.zmin, p.zmax)
            b1, _, info = cut_bound(p.H, c, p.zmin, p.zmax, time_limit=budget)
            opt_db = _db(p.norm, e.objective)
            d0 = _db(p.norm, p.scale**2 * b0) - opt_db
            d1 = _db(p.norm, p.scale**2 * b1) - opt_db
            per_layer.setdefault(name.split("[")[0], []).append((d0, d1))
            print(f"{name:32s} plain {d0:6.3f} dB, with cuts {d1:6.3f} dB above the optimum's "
                  f"SQNR ({info['rounds']} rounds, {info['directions']} directions, "
                  f"{info['seconds']:.1f} s)", flush=True)
            rows.append({"part": f"cuts {label}", "instance": name, "plain_gap_db": d0,
                         "cut_gap_db": d1, "seconds": info["seconds"]})
        for layer, v in per_layer.items():
            print(f"{layer:24s} median gap plain {statistics.median(x for x, _ in v):.3f} dB, "
                  f"with cuts {statistics.median(y for _, y in v):.3f} dB ({len(v)})")
        allv = [v for vs in per_layer.values() for v in vs]
        if allv:
            print(f"all {label}: median gap plain {statistics.median(x for x, _ in allv):.3f} "
                  f"dB, with cuts {statistics.median(y for _, y in allv):.3f} dB "
                  f"({len(allv)} instances)")


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20, help="instances at n = 32 (each part)")
    ap.add_argument("--count-64", type=int, default=20)
    ap.add_argument("--count-128", type=int, default=10)
    ap.add_argument("--limit", type=float, default=120.0, help="time limit per solve at n = 32")
    ap.add_argument("--limit-64", type=float, default=60.0)
    ap.add_argument("--limit-128", type=float, default=60.0)
    ap.add_argument("--no-scip", action="store_true")
    ap.add_argument("--no-gurobi", action="store_true")
    ap.add_argument("--no-cplex", action="store_true",
                    help="skip CPLEX (community edition, pip package 'cplex')")
    ap.add_argument("--no-fpylll", action="store_true",
                    help="skip fpylll's unboxed LLL + enumeration at 8 bits")
    ap.add_argument("--no-sdp", action="store_true")
    ap.add_argument("--no-cuts", action="store_true", help="skip part 6")
    ap.add_argument("--cut-time", type=float, default=2.0,
                    help="seconds for the strengthened bound at n = 32 (x4 at n = 64)")
    ap.add_argument("--skip-64", action="store_true")
    ap.add_argument("--skip-128", action="store_true")
    ap.add_argument("--samples", type=int, default=16, help="calibration photos for export")
    ap.add_argument("--synthetic", action="store_true", help="skip the export")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="also write every measurement here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from solvers.backends.base import importable
    from solvers.problem import QuantProblem
    from solvers.quant.exact import solve_exact

    # compile / load the numba cache outside the timings (the reduced search's kernel too)
    solve_exact(QuantProblem(np.eye(3), np.array([0.3, 0.2, -0.7]), scale=0.25, bits=3))
    X = np.cumsum(np.random.default_rng(0).standard_normal((12, 6)), axis=1)
    solve_exact(QuantProblem(X.T @ X, np.linspace(-0.6, 0.7, 6), scale=0.1, bits=4),
                reduction=True)
    solvers = {"exact": solve_exact}
    if not args.no_gurobi and importable("gurobipy"):
        from solvers.backends.gurobi import GUROBI

        solvers["gurobi"] = GUROBI.solve_quant
    if not args.no_scip and importable("pyscipopt"):
        from solvers.backends.scip import SCIP

        solvers["scip"] = SCIP.solve_quant
    if not args.no_cplex and importable("cplex"):
        from suite.extra_solvers import cplex_quant

        solvers["cplex"] = cplex_quant
    rows: list[dict] = []
    t_start = time.perf_counter()

    picks4, source = load_instances(32, args.count, 4, args.seed, args.samples,
                                    DEFAULT_LAYERS, args.synthetic)
    print(f"# quantization solvers: instances from {source}; per-tensor MSE scale; "
          f"one thread; gap 1e-6 for the general solvers")
    compare(picks4, solvers, args.limit, "n=32 4 bits", rows)

    picks8, _ = load_instances(32, args.count, 8, args.seed + 1, args.samples, DEFAULT_LAYERS,
                               args.synthetic)
    solvers8 = {k: v for k, v in solvers.items() if k != "scip"}
    if not args.no_fpylll and importable("fpylll"):
        from suite.extra_solvers import fpylll_cvp

        solvers8["fpylll"] = fpylll_cvp  # ignores the box: timing reference only
    compare(picks8, solvers8, args.limit, "n=32 8 bits", rows)

    solved64: dict = {}
    if not args.skip_64:
        picks64, _ = load_instances(64, args.count_64, 4, args.seed + 2, args.samples,
                                    DEFAULT_LAYERS, args.synthetic)
        print(f"\n## n=64 4 bits: {len(picks64)} instances, limit {args.limit_64:g} s")
        proven, ts = 0, []
        for name, p in picks64:
            r = solve_exact(p, time_limit=args.limit_64)
            solved64[name] = r
            proven += r.status.value == "optimal"
            ts.append(r.seconds)
            gap_db = _db(p.norm, r.lower_bound) - _db(p.norm, r.objective)
            print(f"{name:32s} {r.status.value:10s} {r.seconds:8.2f} s nodes {r.nodes:12d} "
                  f"gap {gap_db:.3f} dB", flush=True)
            rows.append({"part": "n=64", "instance": name, "status": r.status.value,
                         "seconds": r.seconds, "objective": r.objective,
                         "lower_bound": r.lower_bound, "nodes": r.nodes})
        print(f"proven optimal within {args.limit_64:g} s: {proven}/{len(picks64)} "
              f"({100 * proven / max(1, len(picks64)):.0f} %); median time "
              f"{statistics.median(ts):.2f} s")

    if not args.skip_128:
        picks128, _ = load_instances(128, args.count_128, 4, args.seed + 3, args.samples,
                                     DEFAULT_LAYERS, args.synthetic)
        print(f"\n## n=128 4 bits: {len(picks128)} instances, limit {args.limit_128:g} s")
        gaps = []
        for name, p in picks128:
            r = solve_exact(p, time_limit=args.limit_128)
            gap_db = _db(p.norm, r.lower_bound) - _db(p.norm, r.objective)
            gaps.append(gap_db)
            print(f"{name:32s} {r.status.value:10s} SQNR {r.sqnr_db:.3f} dB, bound allows "
                  f"{_db(p.norm, r.lower_bound):.3f} dB: gap {gap_db:.3f} dB", flush=True)
            plain = r.info.get("plain_lagrangian_bound")
            if plain is not None:
                print(f"{'':32s} plain Lagrangian bound allows {_db(p.norm, plain):.3f} dB; "
                      f"{r.info['cut_rounds']} cut rounds, {r.info['cut_directions']} "
                      f"directions, {r.info['lagrangian_seconds']:.1f} s", flush=True)
            rows.append({"part": "n=128", "instance": name, "status": r.status.value,
                         "seconds": r.seconds, "objective": r.objective,
                         "lower_bound": r.lower_bound, "nodes": r.nodes,
                         "plain_lagrangian_bound": plain})
        q = np.percentile(gaps, [0, 25, 50, 75, 100])
        print("gap (dB) min/25%/median/75%/max: " + " / ".join(f"{v:.3f}" for v in q))

    if not args.no_sdp and importable("cvxpy"):
        from solvers.quant.sdp import solve_sdp

        print(f"\n## SDP bound vs exact optimum (n=32 4 bits, {len(picks4)} instances)")
        per_layer: dict[str, list] = {}
        for name, p in picks4:
            e = solve_exact(p, time_limit=args.limit)
            r = solve_sdp(p, samples=100)
            d = _db(p.norm, r.lower_bound) - _db(p.norm, e.objective)
            ub = _db(p.norm, e.objective) - _db(p.norm, r.objective)
            layer = name.split("[")[0]
            per_layer.setdefault(layer, []).append((d, ub))
            print(f"{name:32s} SDP bound {d:6.3f} dB above the optimum's SQNR; rounding "
                  f"{ub:6.3f} dB below; {r.seconds:.2f} s", flush=True)
            rows.append({"part": "sdp", "instance": name, "sdp_gap_db": d,
                         "rounding_gap_db": ub, "seconds": r.seconds})
        for layer, v in per_layer.items():
            print(f"{layer:24s} median SDP bound gap {statistics.median([x for x, _ in v]):.3f}"
                  f" dB, rounding {statistics.median([y for _, y in v]):.3f} dB ({len(v)})")

    if not args.no_cuts:
        parts = [(picks4, args.cut_time, "n=32")]
        if not args.skip_64:
            parts.append((picks64, 4 * args.cut_time, "n=64"))
        cut_part(parts, args.limit, rows, solved64)

    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(run())
