"""Backend time limits in the tests: each backend's solve time on the canonical problems of
``tests/solvers/backends`` against the limit the default tests give it (≥ 20× needed).

Every solve of the default test run (and, with ``--all``, of the slow cases too) is repeated
``--repeats`` times after one warm-up solve (imports, licence check and numba caches outside the
timings), backend after backend on the same instance; the script prints the median wall and CPU
seconds (this process, all threads), the test's limit, the headroom ``limit / median wall`` and
``limit / median CPU``, and flags any default case under 20×. CPU time is what a busy machine does
not inflate: read the CPU headroom when the load (printed) is high.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/backend_headroom.py              # default cases
    OMP_NUM_THREADS=1 python benchmarks/backend_headroom.py --all --repeats 1
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

#: Headroom the default tests need over an idle solve.
NEEDED = 20.0


def _canonical():
    spec = importlib.util.spec_from_file_location(
        "backend_canonical", ROOT / "tests" / "solvers" / "backends" / "canonical.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def solves(cv, everything: bool):
    """``(test, backend, problem, limit, default)`` for every backend solve of the tests."""
    from solvers.registry import methods

    def names(kind):
        return [m.name for m in methods(kind)
                if m.target.startswith("solvers.backends.") and m.available()]

    out = []
    for name in names("quant"):
        for case in cv.QUANT_CASES:
            default = name != "cpsat"
            if name == "cpsat" and case != "corr":
                continue
            out.append((f"quant brute force {case}", "quant", name, cv.quant_case(case, name),
                        cv.SMALL_LIMIT, default))
    for name in names("prune"):
        for case in cv.PRUNE_CASES:
            out.append((f"prune enumeration {case}", "prune", name, cv.prune_case(case),
                        cv.SMALL_LIMIT, True))
        out.append(("prune unboxed", "prune", name, cv.prune_unboxed_case(), cv.SMALL_LIMIT,
                    True))
    for name in (n for n in ("gurobi", "scip") if n in names("quant")):
        for i, p in enumerate(cv.quant_exact_cases(name)):
            out.append((f"quant vs exact #{i}", "quant", name, p, cv.LARGE_LIMIT,
                        name == "gurobi"))
    for name in (n for n in ("gurobi", "scip") if n in names("prune")):
        for case in cv.PRUNE_EXACT_CASES:
            out.append((f"prune vs exact {case}", "prune", name, cv.prune_exact_case(*case),
                        cv.LARGE_LIMIT, name == "gurobi"))
        out.append(("prune N:M vs exact", "prune", name, cv.prune_nm_case(), cv.LARGE_LIMIT,
                    True))
    return [s for s in out if everything or s[5]]


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed solves per case (median)")
    ap.add_argument("--all", action="store_true", help="also the cases marked slow")
    ap.add_argument("--only", nargs="+", metavar="BACKEND", help="these backends only")
    args = ap.parse_args(argv)

    from solvers import solve

    cv = _canonical()
    todo = [s for s in solves(cv, args.all) if not args.only or s[2] in args.only]
    print(f"# backend_headroom: {len(todo)} solves x {args.repeats} (+1 warm-up); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'test case':34s} {'backend':10s} {'wall s':>8s} {'cpu s':>8s} {'limit':>6s} "
          f"{'x wall':>7s} {'x cpu':>7s}  default")
    warmed = set()
    short = 0
    for test, kind, name, p, limit, default in todo:
        if (kind, name) not in warmed:
            solve(p, name, time_limit=limit)
            warmed.add((kind, name))
        walls, cpus = [], []
        for _ in range(args.repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            solve(p, name, time_limit=limit)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        xw, xc = limit / max(wall, 1e-9), limit / max(cpu, 1e-9)
        flag = ""
        if default and xc < NEEDED:
            flag, short = "  < 20x", short + 1
        print(f"{test:34s} {name:10s} {wall:8.3f} {cpu:8.3f} {limit:6.0f} {xw:7.0f} {xc:7.0f}  "
              f"{'yes' if default else 'slow'}{flag}", flush=True)
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; "
          f"{short} default case(s) under {NEEDED:g}x CPU headroom")
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(run())
