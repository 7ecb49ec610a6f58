"""Prototype (issue 20, item 3): how far can a better diagonal split lift the root bound?

For instances of an earlier :mod:`prune_scan` run (its ``--json``), this compares, relative to
the scan's final objective (the optimum where the scan proved it, else its best mask):

* ``logdet``: the solver's root bound with the log-det split and the perspective bound (what
  the default search's second phase starts from): ``solve(p, "exact", diagonal="logdet",
  node_limit=1)``, ``info["root_bound"]``;
* ``sdp-split``: the same with the solver's ``diagonal="sdp"`` (the split that maximises the
  *separable* root bound);
* ``persp-sdp``: the optimal-diagonal perspective relaxation, solved as one SDP (cvxpy,
  Clarabel)::

      min ⟨H, W⟩ − 2 (H w0)ᵀ w + w0ᵀ H w0
      s.t. [[W, w], [wᵀ, 1]] ⪰ 0,  w_j² ≤ W_jj z_j,  Σ z_j ≤ k,  0 ≤ z ≤ 1

  A relaxation of the pruning problem (``W = wwᵀ``, ``z`` the support), whose value is the best
  root bound any diagonal split ``H ⪰ D`` gives the perspective relaxation (Dong, Chen &
  Linderoth 2015; Zheng, Sun & Li 2014). The value is the SDP solver's, **not certified**: a
  measurement of the headroom, not a bound the project may use as is.

Nothing here changes the solver; it reports numbers only.

Usage::

    nice -n 10 python benchmarks/prune_root_sdp.py SCAN.json --layers features.8.conv.0.0 \\
        features.9.conv.0.0 --per-layer 2
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def perspective_sdp(H: np.ndarray, w0: np.ndarray, k: int) -> float:
    """Value of the optimal-diagonal perspective SDP (uncertified; see the module docstring)."""
    import cvxpy as cp

    alive = np.diag(H) > 0
    s = np.sqrt(np.diag(H)[alive])
    Hs = H[np.ix_(alive, alive)] / np.outer(s, s)  # Jacobi scaling: the problem is invariant
    u0 = w0[alive] * s
    norm = float(u0 @ Hs @ u0)
    m = Hs.shape[0]
    Z = cp.Variable((m + 1, m + 1), PSD=True)  # [[W, w], [wᵀ, 1]]
    W, w = Z[:m, :m], Z[:m, m]
    z = cp.Variable(m)
    cons = [Z[m, m] == 1, z >= 0, z <= 1, cp.sum(z) <= k]
    cons += [cp.quad_over_lin(w[j], z[j]) <= W[j, j] for j in range(m)]
    obj = cp.trace(Hs @ W) - 2 * (Hs @ u0) @ w + norm
    prob = cp.Problem(cp.Minimize(obj / norm), cons)
    prob.solve(solver=cp.CLARABEL)
    return float(prob.value) * norm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scan", help="the --json of a prune_scan run")
    ap.add_argument("--layers", nargs="+", required=True)
    ap.add_argument("--per-layer", type=int, default=2, help="rows per layer (scan order)")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.25])
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "pqbound-prune-scan"))
    args = ap.parse_args(argv)

    spec = importlib.util.spec_from_file_location(
        "prune_scan", Path(__file__).resolve().parent / "prune_scan.py")
    ps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ps)
    from solvers import solve

    data = json.loads(Path(args.scan).read_text())
    st = data["settings"]
    cache = Path(args.cache_dir) / f"{st['model']}_n{st['n']}_s{st['samples']}.npz"
    chunks = ps.export_first_chunks(st["model"], st["n"], st["samples"], args.layers, cache)
    ps.warm_up()
    print(f"# root bounds / final objective of {args.scan} ({st['model']}, n = {st['n']}); "
          "persp-sdp uncertified (Clarabel)")
    print(f"{'layer':<24} {'ch':>4} {'dens':>5} {'status':<10} {'logdet':>7} {'sdp-split':>9} "
          f"{'persp-sdp':>9} {'sdp s':>6}")
    for name in args.layers:
        rows = [r for r in data["rows"] if r["layer"] == name
                and r["density"] in args.densities][: args.per_layer]
        lp = chunks[name]
        for r in rows:
            p = lp.prune(r["channel"], k=r["k"])
            ref = r["objective"]
            out = []
            for diag in ("logdet", "sdp"):
                res = solve(p, "exact", diagonal=diag, node_limit=1)
                out.append(res.info["root_bound"] / ref)
            t0 = time.thread_time()
            v = perspective_sdp(lp.hessian(r["channel"]), p.w0, r["k"])
            dt = time.thread_time() - t0
            print(f"{name:<24} {r['channel']:>4} {r['density']:>5} {r['status']:<10} "
                  f"{out[0]:7.3f} {out[1]:9.3f} {v / ref:9.3f} {dt:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
