"""Do the exact solvers honour a time limit, set-up and incumbents included?

For real MobileNetV2 chunk problems (:mod:`chunk_pool`; synthetic with ``--synthetic``), both
exact solvers run with each time limit after a warm-up (kernels compiled or loaded first, so
no compilation is timed). Printed per solver and limit: the wall time observed, median and
max over the instances, against the promise ``limit·1.1 + 0.1 s``, the solving thread's CPU
time (which a busy machine does not inflate), and the statuses. Every result is also checked:
``lower_bound <= objective``, weights feasible.

BLAS runs on one thread (``OMP_NUM_THREADS=1`` etc., unless set): on a loaded machine a
multi-threaded BLAS call on a 32 × 32 matrix can wait ~10× its work for its threads (measured:
a pruning solve with a 1 ms limit, 30 ms of CPU in 0.3 s of wall time at load 12 on 2 cores).

Usage::

    python benchmarks/time_limits.py                       # n = 32 and 64, limits 1e-3 … 1 s
    python benchmarks/time_limits.py --n 32 --count 6 --limits 0.001 0.01 --synthetic  # quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunk_pool import DEFAULT_LAYERS, chunk_pool  # noqa: E402


def instances(n: int, count: int, seed: int, synthetic: bool):
    """``count`` (name, H, w0) triples with ``n`` inputs and a nonzero channel."""
    rng = np.random.default_rng(seed)
    pool, source = chunk_pool(n, count, rng, samples=64, layers=DEFAULT_LAYERS,
                              synthetic=synthetic)
    out = []
    while len(out) < count:
        name, lp = pool[int(rng.integers(len(pool)))]
        c = int(rng.integers(lp.channels))
        if np.any(lp.W0[c] != 0):
            out.append((f"{name} ch{c}", lp.H, lp.W0[c]))
    return out, source


def problems(H, w0, bits: int, density: float):
    """The quantization problem (``bits``, MSE scale) and the pruning problem (``density``)."""
    from solvers.problem import PruneProblem, QuantProblem
    from solvers.scales import mse_scale

    q = QuantProblem(H, w0, scale=mse_scale(w0, bits), bits=bits)
    return {"quant": q, "prune": PruneProblem.from_density(H, w0, density)}


def check(p, r) -> None:
    """The certification contract of one result (raises on a violation)."""
    assert r.lower_bound is None or r.lower_bound <= r.objective, r
    assert r.objective == p.error(r.weights)
    if r.codes is not None:
        p.weights(r.codes)
    if r.mask is not None:
        assert int(r.mask.sum()) <= p.k and np.all(r.weights[~r.mask] == 0.0)


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--count", type=int, default=8, help="instances per n")
    ap.add_argument("--limits", type=float, nargs="+", default=[1e-3, 1e-2, 0.1, 1.0])
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--density", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args(argv)

    from solvers.prune.exact import solve_exact as prune_exact
    from solvers.quant.exact import solve_exact as quant_exact

    solvers = {"quant": quant_exact, "prune": prune_exact}
    over = 0
    print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'solver':6} {'n':>4} {'limit s':>8} {'median s':>9} {'max s':>8} {'promise s':>9} "
          f"{'over':>5} {'cpu med':>8} {'cpu max':>8}  statuses")
    for n in args.n:
        inst, source = instances(n, args.count, args.seed, args.synthetic)
        probs = [problems(H, w0, args.bits, args.density) for _, H, w0 in inst]
        for kind, solve in solvers.items():  # warm-up: compile or load every path first
            for lim in (None, 1e-3):
                solve(probs[0][kind], time_limit=lim, node_limit=None if lim else 2000)
        for kind, solve in solvers.items():
            for lim in args.limits:
                walls, cpus, statuses = [], [], {}
                for pr in probs:
                    t, c = time.perf_counter(), time.thread_time()
                    r = solve(pr[kind], time_limit=lim)
                    walls.append(time.perf_counter() - t)
                    cpus.append(time.thread_time() - c)
                    check(pr[kind], r)
                    statuses[r.status.value] = statuses.get(r.status.value, 0) + 1
                promise = lim * 1.1 + 0.1
                bad = sum(w > promise for w in walls)
                over += bad
                print(f"{kind:6} {n:4d} {lim:8.3g} {statistics.median(walls):9.4f} "
                      f"{max(walls):8.4f} {promise:9.3f} {bad:5d} {statistics.median(cpus):8.4f} "
                      f"{max(cpus):8.4f}  "
                      + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), flush=True)
        print(f"# n = {n}: {len(inst)} instances from {source}", flush=True)
    print(f"# {over} solves over limit·1.1 + 0.1 s (wall); load average "
          f"{os.getloadavg()[0]:.1f}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(run())
