"""Exact boxed pruning with and without the box screen, side by side on the same rows.

The paper's pruning problems are boxed (``|w_i| <= 2·max|w0|``). With ``box_screen`` (the
default of :func:`solvers.prune.exact.solve_exact`) a boxed row is first solved without the
box; when that optimum keeps every weight within the box it is the boxed optimum too (the box's
feasible set lies inside the relaxation's), else the boxed search runs with the better bound.
This script solves the same families (one chunk's ``H``, ``rows`` output channels, the density
``b/16`` of each bit width) through :func:`solvers.prune.batch.solve_exact_many` both ways, in
one process, BLAS on one thread, and prints per family the CPU milliseconds per row before
(``box_screen=False``) and after, the ratio, the rows proved both ways, that every row proved
both ways has the same objective (to the optimality tolerance), and what the screen did.

Problems: chunks of 32 inputs of MobileNetV2 layers as the paper study exports them (the
``--cache`` pickle written by ``benchmarks/paper_study.py --cache``; layers whose ``H`` is
shared by all output channels), a seeded choice of chunks and rows; or ``--synthetic``
correlated families.

Usage::

    nice -n 10 python benchmarks/prune_box_screen.py --cache export.pkl \\
        --layer classifier.1 --layer features.17.conv.2 --chunks 2 --rows 32
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solvers.problem import PruneProblem  # noqa: E402
from solvers.prune.batch import solve_exact_many  # noqa: E402
from solvers.result import OPTIMALITY_RTOL, Status  # noqa: E402

DEFAULT_LAYERS = ["classifier.1", "features.18.0", "features.17.conv.2"]
CHUNK = 32


def families(args, rng) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, H, W0 rows)`` of each family to solve (every bit width is a budget on it)."""
    out = []
    if args.synthetic:
        for i in range(args.synthetic):
            X = np.cumsum(rng.standard_normal((64, CHUNK)), axis=1)
            out.append((f"synthetic{i}", X.T @ X, rng.standard_normal((args.rows, CHUNK))))
        return out
    with open(args.cache, "rb") as f:
        layers = pickle.load(f)
    for name in args.layers or DEFAULT_LAYERS:
        lp = layers[name]
        if not lp.shared_hessian or lp.H.shape[0] < CHUNK:
            print(f"{name}: no shared H of at least {CHUNK} inputs; skipped", file=sys.stderr)
            continue
        live = np.flatnonzero(np.any(lp.W0 != 0, axis=1))
        starts = range(0, lp.H.shape[0] - CHUNK + 1, CHUNK)
        for a in rng.choice(list(starts), min(args.chunks, len(starts)), replace=False):
            rows = rng.choice(live, min(args.rows, len(live)), replace=False)
            W = lp.W0[np.sort(rows), a:a + CHUNK]
            out.append((f"{name}[{a}:{a + CHUNK}]", np.ascontiguousarray(lp.H[a:a + CHUNK,
                                                                          a:a + CHUNK]),
                        W[np.any(W != 0, axis=1)]))
    return out


def agree(before, after) -> bool:
    """Rows proved both ways have the same objective to the optimality tolerance."""
    for x, y in zip(before, after, strict=True):
        if x.status is Status.OPTIMAL and y.status is Status.OPTIMAL:
            tol = 2 * OPTIMALITY_RTOL * max(x.objective, y.objective) + 1e-12 * x.norm
            if abs(x.objective - y.objective) > tol:
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", help="the export pickle of benchmarks/paper_study.py --cache")
    ap.add_argument("--layer", action="append", dest="layers")
    ap.add_argument("--chunks", type=int, default=2, help="chunks per layer (seeded)")
    ap.add_argument("--rows", type=int, default=32, help="output channels per family")
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 8])
    ap.add_argument("--box-factor", type=float, default=2.0)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="N synthetic families instead of the cache")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.synthetic and not args.cache:
        ap.error("give --cache (an export pickle) or --synthetic N")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    rng = np.random.default_rng(args.seed)
    fams = families(args, rng)
    warm = [PruneProblem.unchecked(fams[0][1], w, k=CHUNK // 4, box_factor=args.box_factor)
            for w in fams[0][2][:2]]
    for screen in (False, True):  # load every compiled path before timing
        solve_exact_many(warm, time_limit=args.time_limit, box_screen=screen)
    print("| family | k | rows | before ms/row | after ms/row | ratio | optimal before / after "
          "| objectives agree | screen |")
    print("|---|---|---|---|---|---|---|---|---|")
    tot = [0.0, 0.0, 0]
    ok = True
    for name, H, W in fams:
        for b in args.bits:
            k = CHUNK * b // 16
            ps = [PruneProblem.unchecked(H, w, k=k, box_factor=args.box_factor) for w in W]
            t0 = time.process_time()
            before = solve_exact_many(ps, time_limit=args.time_limit, box_screen=False)
            t1 = time.process_time()
            after = solve_exact_many(ps, time_limit=args.time_limit, box_screen=True)
            t2 = time.process_time()
            same = agree(before, after)
            ok &= same
            tot[0] += t1 - t0
            tot[1] += t2 - t1
            tot[2] += len(ps)
            opt = [sum(r.status is Status.OPTIMAL for r in rs) for rs in (before, after)]
            screens = Counter(r.info.get("box_screen") for r in after)
            print(f"| {name} | {k} | {len(ps)} | {1e3 * (t1 - t0) / len(ps):.2f} | "
                  f"{1e3 * (t2 - t1) / len(ps):.2f} | {(t1 - t0) / max(t2 - t1, 1e-9):.2f} | "
                  f"{opt[0]} / {opt[1]} | {'yes' if same else '**no**'} | "
                  f"{', '.join(f'{v} {c}' for c, v in sorted(screens.items()))} |", flush=True)
    print(f"\nall {tot[2]} rows: {1e3 * tot[0] / tot[2]:.2f} → {1e3 * tot[1] / tot[2]:.2f} ms CPU "
          f"per row ({tot[0] / max(tot[1], 1e-9):.2f}×); objectives agree on every row proved "
          f"both ways: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
