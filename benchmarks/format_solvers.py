"""Exact solves over number formats: our level solver against CPLEX on real MobileNetV2 problems.

Per-channel problems come from real MobileNetV2 layers (``bounds.export.export_model``: built-in
calibration photos, FP16 weights, chunks of ``opt_dim = n`` inputs; ``chunk_pool``); the levels of
each format come from the chunk's own ``W0`` (:func:`solvers.formats.build_levels`, MSE scale
rule). Parts:

1. ``n = 32``: asymmetric INT4 (per channel), FP4 E2M1 (MX scale, one group of 32), NF4 (absmax
   per 32) and symmetric INT4 (per channel) with at most 50 % / 25 % nonzero. Ours and CPLEX
   (the binary expansion of the levels, :class:`solvers.backends.scip_levels.LevelModel`: one
   binary per (input, level), exactly one per input, ``w = Σλb``, the nonzero limit on the
   nonzero levels' binaries; the quadratic objective in ``w``; one thread, relative gap 1e-9)
   on the same instances, instance by instance; medians, their ratio, per-instance time ratios
   (median) and optimum agreement (relative 1e-6).
2. ``n = 64``: the share of asymmetric INT4 and FP4 instances ours proves optimal within
   ``--limit-64`` s.

Two disjoint layer sets: ``--layers tune`` (what the solver was tuned on) and ``--layers confirm``.
Ours is warm (every kernel compiled before timing); CPLEX builds its model inside the timing.

Usage::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/format_solvers.py --layers confirm
    python benchmarks/format_solvers.py --count 3 --count-64 2 --limit-64 5 --no-cplex  # quick
    python benchmarks/format_solvers.py --layers tune --cases "int4 sparse" --skip-64
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunk_pool import chunk_pool  # noqa: E402

LAYER_SETS = {
    "tune": ["features.2.conv.2", "features.6.conv.2", "features.9.conv.0.0",
             "features.13.conv.0.0", "features.16.conv.2"],
    "confirm": ["features.4.conv.2", "features.11.conv.0.0", "features.15.conv.0.0",
                "features.17.conv.0.0", "features.14.conv.2"],
}
#: (label, format name (``{n}``: the chunk size, ``{g}``: min(32, n)), nonzero share or None)
CASES_32 = [("int4-asym", "int4-asym-ch", None), ("fp4-e2m1", "fp4-e2m1-g{g}-mx", None),
            ("nf4", "nf4-g{n}", None), ("int4 50% nz", "int4-ch", 0.5),
            ("int4 25% nz", "int4-ch", 0.25)]
CASES_64 = [("int4-asym", "int4-asym-ch"), ("fp4-e2m1", "fp4-e2m1")]


def instances(n, count, fmt, share, seed, layers, samples, synthetic):
    """``count`` (name, LevelProblem) pairs drawn with ``seed``."""
    from solvers.formats import build_levels

    rng = np.random.default_rng(seed)
    pool, source = chunk_pool(n, count, rng, samples=samples, layers=layers, synthetic=synthetic)
    out = []
    while len(out) < count:
        name, lp = pool[int(rng.integers(len(pool)))]
        c = int(rng.integers(lp.channels))
        if np.all(lp.W0[c] == 0) or lp.norms()[c] <= 0:
            continue
        f = build_levels(lp.W0, fmt)
        k = None if share is None else int(round(share * n))
        out.append((f"{name} ch{c}", lp.levels(c, f.levels(c), k=k)))
    return out, source


def cplex_levels(p, *, time_limit: float | None = None) -> Any:
    """CPLEX on the binary expansion of the levels (quadratic objective in ``w``)."""
    import cplex
    from suite.extra_solvers import _cplex_model, _cplex_solve

    from solvers.backends.base import backend_result
    from solvers.backends.scip_levels import LevelModel
    from solvers.stopwatch import Stopwatch

    sw = Stopwatch()
    lm = LevelModel.build(p)
    n, L = lm.T.shape
    c = _cplex_model(time_limit)
    c.parameters.mip.tolerances.mipgap.set(1e-9)
    c.variables.add(obj=lm.lin.tolist(), lb=lm.T[:, 0].tolist(), ub=lm.T[:, -1].tolist())
    c.variables.add(types=[c.variables.type.binary] * (n * L))
    bix = lambda j, l: n + j * L + l  # noqa: E731
    rows, rhs = [], []
    for j in range(n):
        rows.append(cplex.SparsePair(ind=[bix(j, l) for l in range(L)], val=[1.0] * L))
        rhs.append(1.0)
        rows.append(cplex.SparsePair(ind=[j] + [bix(j, l) for l in range(L)],
                                     val=[-1.0] + lm.T[j].tolist()))
        rhs.append(0.0)
    senses = "E" * len(rows)
    if lm.k is not None:
        ind = [bix(j, l) for j in range(n) for l in range(L) if lm.nonzero[j, l]]
        rows.append(cplex.SparsePair(ind=ind, val=[1.0] * len(ind)))
        rhs.append(float(lm.k))
        senses += "L"
    c.linear_constraints.add(lin_expr=rows, senses=senses, rhs=rhs)
    c.objective.set_quadratic([cplex.SparsePair(ind=list(range(n)), val=(2 * lm.H[i]).tolist())
                               for i in range(n)] + [cplex.SparsePair(ind=[], val=[])] * (n * L))
    c.objective.set_offset(lm.const)
    try:
        status, bound, nodes, msg = _cplex_solve(c, sw)
    except cplex.exceptions.CplexSolverError as exc:
        if exc.args[2] != 5002:  # Q not PSD to CPLEX's tolerance (rank-deficient H)
            raise
        c.parameters.optimalitytarget.set(3)
        status, bound, nodes, msg = _cplex_solve(c, sw)
    x = np.asarray(c.solution.get_values())
    w = lm.weights(x[n:].reshape(n, L))
    return backend_result(p, w, method="cplex", dual_bound=bound, backend_status=status,
                          seconds=sw.seconds, nodes=nodes, message=f"cplex: {msg}")


def warm_up() -> None:
    from solvers import LevelProblem
    from solvers.levels.exact import solve_levels

    for k in (None, 1):
        solve_levels(LevelProblem(np.eye(3) + 0.5, [0.1, -0.2, 0.3], levels=[-1, 0.0, 1], k=k))


def part1(args, lines) -> None:
    from solvers.levels.exact import solve_levels

    use_cplex = not args.no_cplex
    if use_cplex:
        import importlib.util

        use_cplex = importlib.util.find_spec("cplex") is not None
    lines.append(f"## Part 1: n = {args.n}, ours vs CPLEX (binary expansion, 1 thread, gap "
                 f"1e-9, limit {args.cplex_limit:g} s); ours limit {args.limit:g} s, warm")
    for label, fmt, share in CASES_32:
        if args.cases and label.split()[0] + (" sparse" if share else "") not in args.cases:
            continue
        name = fmt.format(n=args.n, g=min(32, args.n))
        inst, source = instances(args.n, args.count, name, share, args.seed,
                                 args.layer_list, args.samples, args.synthetic)
        ours_t, cpx_t, ratios, same, proved, cpx_opt = [], [], [], 0, 0, 0
        for name, p in inst:
            r = solve_levels(p, time_limit=args.limit)
            ours_t.append(r.seconds)
            proved += r.status.value == "optimal"
            row = (f"  {label:<12} {name:<34} ours {r.seconds * 1e3:9.2f} ms "
                   f"{r.status.value:<10}")
            if use_cplex:
                q = cplex_levels(p, time_limit=args.cplex_limit)
                cpx_t.append(q.seconds)
                cpx_opt += q.status.value in ("optimal", "gap_limit")
                ratios.append(q.seconds / max(r.seconds, 1e-9))
                ok = abs(q.objective - r.objective) <= 1e-6 * max(q.objective, r.objective)
                same += ok
                row += (f"cplex {q.seconds * 1e3:10.1f} ms {q.status.value:<10} ratio "
                        f"{ratios[-1]:8.1f}x {'same' if ok else 'DIFF'} "
                        f"(ours {r.objective:.9g}, cplex {q.objective:.9g})")
            print(row, flush=True)
            lines.append(row)
        summary = (f"{label:<12} median ours {statistics.median(ours_t) * 1e3:9.2f} ms "
                   f"(optimal {proved}/{len(inst)})")
        if use_cplex:
            summary += (f", cplex {statistics.median(cpx_t) * 1e3:10.1f} ms (optimal "
                        f"{cpx_opt}/{len(inst)}), ratio of medians "
                        f"{statistics.median(cpx_t) / statistics.median(ours_t):.1f}x, "
                        f"per-instance ratio median "
                        f"{statistics.median(ratios):8.1f}x (min {min(ratios):.1f}x), same "
                        f"optimum {same}/{len(inst)}")
        print(summary, flush=True)
        lines.append(summary)
    lines.append(f"(source: {source})")


def part2(args, lines) -> None:
    from solvers.levels.exact import solve_levels

    lines.append(f"## Part 2: n = 64, proved optimal within {args.limit_64:g} s")
    for label, fmt in CASES_64:
        inst, source = instances(64, args.count_64, fmt, None, args.seed + 1, args.layer_list,
                                 args.samples, args.synthetic)
        ts, proved = [], 0
        for name, p in inst:
            r = solve_levels(p, time_limit=args.limit_64)
            ts.append(r.seconds)
            proved += r.status.value == "optimal"
            row = (f"  {label:<10} {name:<34} {r.seconds:8.3f} s {r.status.value:<10} gap "
                   f"{r.gap:.2e}")
            print(row, flush=True)
            lines.append(row)
        summary = (f"{label:<10} proved {proved}/{len(inst)} ({100 * proved / len(inst):.0f} %),"
                   f" median {statistics.median(ts):.3f} s, max {max(ts):.3f} s")
        print(summary, flush=True)
        lines.append(summary)
    lines.append(f"(source: {source})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--count", type=int, default=12,
                    help="instances per part-1 case (12: a median of 6 moved by ±25 %% between "
                         "runs at INT4 25 %% nonzero)")
    ap.add_argument("--limit", type=float, default=60.0, help="our time limit (part 1)")
    ap.add_argument("--cplex-limit", type=float, default=120.0)
    ap.add_argument("--count-64", type=int, default=10)
    ap.add_argument("--limit-64", type=float, default=60.0)
    ap.add_argument("--layers", choices=sorted(LAYER_SETS), default="confirm")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true", help="synthetic problems, no export")
    ap.add_argument("--no-cplex", action="store_true")
    ap.add_argument("--skip-64", action="store_true")
    ap.add_argument("--cases", nargs="+", default=None,
                    choices=["int4-asym", "fp4-e2m1", "nf4", "int4 sparse"],
                    help="part-1 cases to run (default all; 'int4 sparse': both nonzero limits)")
    ap.add_argument("--out", default=None, help="also write the report to this file")
    args = ap.parse_args(argv)
    args.layer_list = LAYER_SETS[args.layers]
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = [f"# format_solvers: layers {args.layers} ({', '.join(args.layer_list)}), seed "
             f"{args.seed}", f"# command: {' '.join(sys.argv)} (OMP_NUM_THREADS="
             f"{os.environ.get('OMP_NUM_THREADS', '-')}, NUMBA_NUM_THREADS="
             f"{os.environ.get('NUMBA_NUM_THREADS', '-')})", f"uptime at start: {load}"]
    warm_up()
    t0 = time.perf_counter()
    part1(args, lines)
    if not args.skip_64:
        part2(args, lines)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines.append(f"uptime at end: {load}; total {time.perf_counter() - t0:.0f} s")
    print(lines[-1])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
