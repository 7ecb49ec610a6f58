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
* ``block`` (with ``--block B``): a block-diagonal split solved exactly per block. Partition
  the inputs into blocks of ``B`` and take PSD blocks ``H ⪰ blockdiag(B_1, …, B_q)`` (the
  largest-volume ones, ``max Σ log det B_b``, one SDP by Clarabel, then shrunk by 0.1 % and
  checked); with ``R = H − blockdiag(B)`` and any ``y``, Fenchel's ``rᵀRr ≥ 2yᵀRr − yᵀRy``
  gives for every mask ``S`` (``r = w0 − x``, ``x`` zero off ``S``)::

      e(S) ≥ Σ_b min_{x_b on S_b} [r_bᵀ B_b r_b + 2 (Ry)_bᵀ r_b] − yᵀRy

  Each block's term is minimised exactly for **every** subset of the block (all ``2^B``, so
  the bound is not separable within a block: it is the exact problem there), then a dynamic
  programme over the blocks' kept counts gives the least total with ``k`` kept. Reported: the
  best over two partitions (consecutive inputs; inputs ordered by their angle in the plane of
  the two least eigenvectors of the Jacobi-scaled ``H``) and ``y = t·(w0 − x_inc)`` for a grid
  of ``t`` (``x_inc`` the solver's first incumbent). Also uncertified (the SDP's blocks are
  checked by an eigenvalue, not with a margin): it measures whether exact blocks lift the
  root where the diagonal cannot.

* ``modulo`` (with ``--modulo m …``): a split that ignores the ``m`` least eigendirections
  ``V`` of the Jacobi-scaled ``H``. For a diagonal ``D > 0``, ``M = D − DV(VᵀDV)⁻¹VᵀD`` is the
  quadratic ``rᵀMr = min_α (r − Vα)ᵀD(r − Vα)``: zero along ``V``, so the near-null directions
  no longer cap ``D`` (here ``D`` is the log-det diagonal of ``H + c·VVᵀ``, ``c`` the median
  eigenvalue, and ``M`` is scaled by the largest ``t`` with ``H ⪰ t·M``, checked by an
  eigenvalue). Every mask's error under ``H`` is at least its error under ``M``, so the
  pruning problem with ``H`` replaced by ``M`` is a relaxation; its error under ``M``
  (for a pruned set ``T``: ``min_α Σ_T d_j (w0_j + (Vα)_j)²``) is the best root bound any
  search on this split could reach. Reported: the best objective pqbound's exact solver finds
  for that problem in ``--modulo-seconds`` (an upper bound on the relaxation's value, so on
  every bound this split gives), over the final objective.

* ``shor`` (with ``--shor``): the Shor (lifted) SDP with indicator coupling, a relaxation at
  least as strong as ``persp-sdp``. In Jacobi-scaled units, lift ``v = [1; x; z]`` (``x`` the
  kept weights, ``z ∈ {0, 1}ⁿ`` the support, ``x_j (1 − z_j) = 0``) to ``Y = vvᵀ`` and relax
  it to::

      Y = [[1, xᵀ, zᵀ], [x, X, U], [z, Uᵀ, Z]] ⪰ 0      (size 2n + 1)
      min ⟨H, X⟩ − 2 (H w0)ᵀ x + w0ᵀ H w0
      s.t. diag(Z) = z                       z_j² = z_j
           diag(U) = x                       x_j z_j = x_j
           0 ≤ z ≤ 1,  Σ z ≤ k
           Σ_j Z_ij ≤ k z_i                  (k − Σ z) z_i ≥ 0
           k − Σ z − k z_i + Σ_j Z_ij ≥ 0    (k − Σ z)(1 − z_i) ≥ 0
           0 ≤ Z_ij ≤ z_i, z_j,  Z_ij ≥ z_i + z_j − 1   (McCormick, i < j)

  Each row is the named identity or product of two non-negative factors at every feasible
  ``(x, z)``, so every mask's lifted point satisfies it (tested on every mask of small
  problems). Nothing multiplies ``x`` by an inequality: its sign is free and the problem has no
  box, so such products would be invalid. The ``2×2`` minor ``[[X_jj, x_j], [x_j, z_j]] ⪰ 0``
  of ``Y`` is the perspective row ``x_j² ≤ X_jj z_j``, and ``[[1, xᵀ], [x, X]] ⪰ 0`` is
  ``persp-sdp``'s, so ``shor ≥ persp-sdp``; the cross terms ``U``, ``Z`` couple the supports.
* ``shor+`` (with ``--shor-plus``): the same with exactly ``k`` kept. This is not valid for
  every feasible point, but it is for the optimum: keeping one more input (its weight left
  at 0) never raises the error, so some optimal mask keeps exactly ``min(k, n)``. With
  ``Σ z = k`` the products by the free-sign ``x_i`` become valid too (``Σ_j U_ij = k x_i``,
  ``Σ_j Z_ij = k z_i``): together ``Y a = 0`` for ``a = [−k; 0; 1]``, imposed by writing
  ``Y = P G Pᵀ`` over a basis ``P`` of ``a⊥`` with ``G ⪰ 0`` (the equalities leave the PSD cone
  no interior otherwise, and the solvers stall). It adds nothing where ``shor``'s optimum
  keeps ``Σ z = k``: there its two cardinality products give ``Σ_j Z_ij = k z_i``, hence
  ``aᵀYa = k² − 2kΣz + Σ Z = 0``, and ``Y ⪰ 0`` then gives ``Y a = 0``, all of ``shor+``'s
  rows. The relaxation's optimum may keep less, though (``Σ z = 3.89`` for ``k = 4`` on one
  of the tests' problems, where ``shor+`` is 2.5 % higher).

  Both values are the SDP solver's (Clarabel's interior point by default, ``--shor-solver
  SCS`` the first-order alternative), **not certified**: a measurement of how much a lifted
  relaxation could lift the root, not a bound the project may use.

Nothing here changes the solver; it reports numbers only. Ratios are over the scan's
objective unless ``--optimum LAYER:CH=VALUE`` gives a row's reference (e.g. an optimum
certified after the scan); such rows are marked ``*``.

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
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def _jacobi_scaled(H: np.ndarray, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(Hs, u0, u0ᵀHs u0)``: the live inputs (``H_jj > 0``) of ``H`` and ``w0`` in the
    Jacobi-scaled units ``u = √H_jj·w`` (the pruning problem is invariant under this scaling;
    a dead input changes no error, so dropping it and keeping ``k`` for the rest relaxes)."""
    alive = np.diag(H) > 0
    s = np.sqrt(np.diag(H)[alive])
    Hs = H[np.ix_(alive, alive)] / np.outer(s, s)
    u0 = w0[alive] * s
    return Hs, u0, float(u0 @ Hs @ u0)


def perspective_sdp(H: np.ndarray, w0: np.ndarray, k: int) -> float:
    """Value of the optimal-diagonal perspective SDP (uncertified; see the module docstring)."""
    import cvxpy as cp

    Hs, u0, norm = _jacobi_scaled(H, w0)
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


def shor_rows(x, z, U, Z, k: int, exact_k: bool) -> list:
    """The linear constraints of the Shor SDP on its cvxpy expressions (module docstring):
    ``diag(Z) = z``, ``diag(U) = x``, ``0 ≤ z ≤ 1``, McCormick on ``Z``'s off-diagonal, and
    the cardinality row (``Σ z ≤ k`` with its products by ``z_i`` and ``1 − z_i``; or, with
    ``exact_k``, ``Σ z = k`` with its products by ``x_i`` and ``z_i``)."""
    import cvxpy as cp

    m = z.shape[0]
    rows, cols = np.triu_indices(m, 1)
    Zu, zr, zc = Z[rows, cols], z[rows], z[cols]
    Z1 = Z @ np.ones(m)
    cons = [cp.diag(Z) == z,  # z_j² = z_j
            cp.diag(U) == x,  # x_j z_j = x_j
            z >= 0, z <= 1,
            Zu >= 0, Zu <= zr, Zu <= zc, Zu >= zr + zc - 1]  # McCormick: z_i z_j on [0, 1]²
    if exact_k:
        return cons + [cp.sum(z) == k, U @ np.ones(m) == k * x, Z1 == k * z]
    return cons + [cp.sum(z) <= k, Z1 <= k * z, k - cp.sum(z) - k * z + Z1 >= 0]


def shor_sdp(H: np.ndarray, w0: np.ndarray, k: int, *, exact_k: bool = False,
             solver: str = "CLARABEL", eps: float = 1e-7) -> tuple[float, bool]:
    """``(value, accurate)``: the Shor (lifted) SDP with indicator coupling (uncertified;
    module docstring), and whether the solver met its tolerances (``False``: cvxpy's
    ``optimal_inaccurate``, the solver stalled near them).

    ``exact_k=False`` is the ``shor`` column, ``True`` the ``shor+`` one. ``solver``:
    ``"CLARABEL"`` (interior point, faer's LDLᵀ on one thread; ``eps`` its gap and feasibility
    tolerances; about 8 s per iteration at ``n = 64``) or ``"SCS"``
    (first order; ``eps`` its absolute and relative ones). Raises if the solver reports no
    solution.
    """
    import cvxpy as cp

    Hs, u0, norm = _jacobi_scaled(H, w0)
    m = Hs.shape[0]
    k = min(k, m)
    if norm == 0 or k == m:
        return 0.0, True  # nothing to prune, or nothing that changes the output
    one = np.ones(m)
    if exact_k:
        # Σ z = k times 1, x_i and z_i say Y·a = 0 for a = [−k; 0; 1], which leaves the PSD
        # cone no interior (the solvers stall); so Y = P G Pᵀ with G ⪰ 0 and P = [[0, 1ᵀ/k],
        # [I, 0], [0, I]] a basis of a⊥: x = U·1/k, z = Z·1/k, and only Σ z = k (1ᵀZ1 = k²)
        # of the three rows is left to impose.
        G = cp.Variable((2 * m, 2 * m), PSD=True)  # [[X, U], [Uᵀ, Z]]
        X, U, Z = G[:m, :m], G[:m, m:], G[m:, m:]
        x, z = U @ one / k, Z @ one / k
        cons = shor_rows(x, z, U, Z, k, exact_k=True)[:-2]
    else:
        Y = cp.Variable((2 * m + 1, 2 * m + 1), PSD=True)  # [[1, xᵀ, zᵀ], [x, X, U], [z, Uᵀ, Z]]
        x, z = Y[0, 1:m + 1], Y[0, m + 1:]
        X, U, Z = Y[1:m + 1, 1:m + 1], Y[1:m + 1, m + 1:], Y[m + 1:, m + 1:]
        cons = [Y[0, 0] == 1] + shor_rows(x, z, U, Z, k, exact_k=False)
    obj = cp.sum(cp.multiply(Hs, X)) - 2 * (Hs @ u0) @ x + norm
    prob = cp.Problem(cp.Minimize(obj / norm), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "may be inaccurate": returned instead
        if solver == "SCS":
            prob.solve(solver=cp.SCS, eps_abs=eps, eps_rel=eps, max_iters=1_000_000)
        else:
            # faer's supernodal LDLᵀ: ~2× qdldl's speed on the PSD cone's dense KKT block
            prob.solve(solver=cp.CLARABEL, tol_gap_abs=eps, tol_gap_rel=eps, tol_feas=eps,
                       direct_solve_method="faer", max_threads=1)
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise ArithmeticError(f"Shor SDP: {solver} returned {prob.status}")
    return float(prob.value) * norm, prob.status == cp.OPTIMAL


def block_split(H: np.ndarray, blocks: list[np.ndarray]) -> list[np.ndarray]:
    """The largest-volume PSD blocks ``B_b`` with ``H ⪰ blockdiag(B)`` (Jacobi-scaled SDP,
    Clarabel), shrunk by 0.1 %; raises if ``H − blockdiag(B)`` is not PSD to 1e-9."""
    import cvxpy as cp

    n = H.shape[0]
    s = 1 / np.sqrt(np.diag(H))
    Hs = H * np.outer(s, s)
    Bs = [cp.Variable((len(b), len(b)), PSD=True) for b in blocks]
    lifted = []
    for b, B in zip(blocks, Bs, strict=True):
        P = np.zeros((n, len(b)))
        P[b, np.arange(len(b))] = 1
        lifted.append(P @ B @ P.T)
    rest = Hs - sum(lifted)
    cp.Problem(cp.Maximize(sum(cp.log_det(B) for B in Bs)),
               [(rest + rest.T) / 2 >> 0]).solve(solver=cp.CLARABEL)
    out = [0.999 * (B.value + B.value.T) / 2 / np.outer(s[b], s[b])
           for b, B in zip(blocks, Bs, strict=True)]
    R = H.copy()
    for b, B in zip(blocks, out, strict=True):
        R[np.ix_(b, b)] -= B
    ev = np.linalg.eigvalsh(R)
    if ev[0] < -1e-9 * ev[-1]:
        raise ArithmeticError(f"block split not PSD: {ev[0]:.3g}")
    return out


def _block_minima(B: np.ndarray, w: np.ndarray, lin: np.ndarray) -> np.ndarray:
    """``m[q] = min over subsets S of size q of min_{x on S} rᵀBr + 2 linᵀr``, ``r = w − x``:
    every subset of the block, by size (``r_P = w_P``, ``r_S = −B_SS⁻¹(B_SP w_P + lin_S)``)."""
    import itertools

    m = len(w)
    out = np.empty(m + 1)
    for q in range(m + 1):
        S = (np.array(list(itertools.combinations(range(m), q)), dtype=int) if q
             else np.zeros((1, 0), dtype=int))
        rows = np.arange(len(S))[:, None]
        r = np.tile(w, (len(S), 1))
        r[rows, S] = 0.0
        vals = np.einsum("ni,ij,nj->n", r, B, r) + 2 * r @ lin
        if q:
            g = (r @ B)[rows, S] + lin[S]
            sol = np.linalg.solve(B[S[:, :, None], S[:, None, :]], g[..., None])[..., 0]
            vals -= np.einsum("nq,nq->n", g, sol)
        out[q] = vals.min()
    return out


def block_bound(H, w0, k, blocks, Bs, y) -> float:
    """The block-exact bound of the module docstring for one ``y``."""
    R = H.copy()
    for b, B in zip(blocks, Bs, strict=True):
        R[np.ix_(b, b)] -= B
    Ry = R @ y
    best = np.zeros(1)  # best[a]: least sum over the blocks so far with a kept
    for b, B in zip(blocks, Bs, strict=True):
        mb = _block_minima(B, w0[b], Ry[b])
        nxt = np.full(len(best) + len(mb) - 1, np.inf)
        for q, v in enumerate(mb):
            nxt[q:q + len(best)] = np.minimum(nxt[q:q + len(best)], best + v)
        best = nxt
    return float(best[k] - y @ Ry)


def block_root(H, w0, k, size, x_inc, ts=(0.0, 0.05, 0.1, 0.2)) -> float:
    """Best block-exact bound over the two partitions and ``y = t·(w0 − x_inc)``."""
    n = len(w0)
    s = 1 / np.sqrt(np.diag(H))
    V = np.linalg.eigh(H * np.outer(s, s))[1]
    by_angle = np.argsort(np.arctan2(V[:, 1], V[:, 0]))
    best = -np.inf
    for order in (np.arange(n), by_angle):
        blocks = [np.sort(order[i:i + size]) for i in range(0, n, size)]
        Bs = block_split(H, blocks)
        for t in ts:
            best = max(best, block_bound(H, w0, k, blocks, Bs, t * (w0 - x_inc)))
    return best


def modulo_split(H: np.ndarray, m: int) -> np.ndarray:
    """``t·M`` of the module docstring (``modulo``) in ``H``'s units, with ``H ⪰ t·M``;
    raises if the check fails."""
    from solvers.prune.bounds import logdet_diagonal

    s = 1 / np.sqrt(np.diag(H))
    Hs = H * np.outer(s, s)
    lam, Q = np.linalg.eigh(Hs)
    V, B = Q[:, :m], Q[:, m:]
    d = logdet_diagonal(Hs + float(np.median(lam)) * (V @ V.T))
    if d is None:
        raise ArithmeticError("log-det diagonal failed")
    d = np.asarray(d, float)
    DV = d[:, None] * V
    M = np.diag(d) - DV @ np.linalg.solve(V.T @ DV, DV.T) if m else np.diag(d)
    # H ⪰ t·M  ⟺  Λ_B ⪰ t·BᵀMB (V, B eigenvectors of Hs, and M·V = 0)
    L = np.sqrt(lam[m:])
    t = 0.999 / float(np.linalg.eigvalsh((B.T @ M @ B) / np.outer(L, L))[-1])
    M = t * M / np.outer(s, s)
    M = (M + M.T) / 2
    ev = np.linalg.eigvalsh(H - M)
    if ev[0] < -1e-9 * ev[-1]:
        raise ArithmeticError(f"modulo split not below H: {ev[0]:.3g}")
    return M


def _optimum(text: str) -> tuple[tuple[str, int], float]:
    """``LAYER:CH=VALUE`` → ``((LAYER, CH), VALUE)`` (argparse type)."""
    try:
        key, value = text.rsplit("=", 1)
        layer, ch = key.rsplit(":", 1)
        out = float(value)
        if not np.isfinite(out) or out <= 0:
            raise ValueError
        return (layer, int(ch)), out
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LAYER:CHANNEL=VALUE with VALUE > 0, got {text!r}") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scan", help="the --json of a prune_scan run")
    ap.add_argument("--layers", nargs="+", required=True)
    ap.add_argument("--per-layer", type=int, default=2, help="rows per layer (scan order)")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.25])
    ap.add_argument("--block", type=int, default=0, metavar="B",
                    help="also the block-exact bound with blocks of B inputs (B <= 16)")
    ap.add_argument("--modulo", type=int, nargs="+", default=[], metavar="m",
                    help="also the split modulo the m least eigendirections, for each m")
    ap.add_argument("--modulo-seconds", type=float, default=10.0,
                    help="time limit of each solve of the modulo relaxation")
    ap.add_argument("--shor", action="store_true",
                    help="also the Shor (lifted) SDP with indicator coupling (column shor)")
    ap.add_argument("--shor-plus", action="store_true",
                    help="also the Shor SDP with exactly k kept (column shor+)")
    ap.add_argument("--shor-solver", choices=("CLARABEL", "SCS"), default="CLARABEL")
    ap.add_argument("--shor-eps", type=float, default=1e-7,
                    help="the Shor SDPs' solver tolerance")
    ap.add_argument("--optimum", type=_optimum, nargs="+", default=[],
                    metavar="LAYER:CH=VALUE",
                    help="the reference objective of a row, instead of the scan's (e.g. an "
                         "optimum certified later)")
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "pqbound-prune-scan"))
    args = ap.parse_args(argv)
    optima = dict(args.optimum)

    spec = importlib.util.spec_from_file_location(
        "prune_scan", Path(__file__).resolve().parent / "prune_scan.py")
    ps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ps)
    from solvers import solve
    from solvers.problem import PruneProblem

    data = json.loads(Path(args.scan).read_text())
    st = data["settings"]
    cache = Path(args.cache_dir) / f"{st['model']}_n{st['n']}_s{st['samples']}.npz"
    chunks = ps.export_first_chunks(st["model"], st["n"], st["samples"], args.layers, cache)
    ps.warm_up()
    print(f"# root bounds / final objective of {args.scan} ({st['model']}, n = {st['n']}); "
          "persp-sdp uncertified (Clarabel)"
          + (f", shor uncertified ({args.shor_solver}, eps {args.shor_eps:g}, process CPU s)"
             if args.shor or args.shor_plus else "")
          + "; ~ after a value: the solver stopped short of its tolerances"
          + "; reference: the scan's objective, * where --optimum gave it")
    print(f"{'layer':<24} {'ch':>4} {'dens':>5} {'status':<10} {'logdet':>7} {'sdp-split':>9} "
          f"{'persp-sdp':>9} {'sdp s':>6}" + (f" {'block':>7} {'blk s':>6}" if args.block else "")
          + "".join(f" {f'mod{m}':>6}" for m in args.modulo)
          + (f" {'shor':>6} {'shor s':>7}" if args.shor else "")
          + (f" {'shor+':>6} {'shor+ s':>7}" if args.shor_plus else "") + f" {'reference':>10}")
    for name in args.layers:
        rows = [r for r in data["rows"] if r["layer"] == name
                and r["density"] in args.densities][: args.per_layer]
        lp = chunks[name]
        for r in rows:
            p = lp.prune(r["channel"], k=r["k"])
            ref = optima.get((name, r["channel"]), r["objective"])
            out = []
            for diag in ("logdet", "sdp"):
                res = solve(p, "exact", diagonal=diag, node_limit=1)
                out.append(res.info["root_bound"] / ref)
            t0 = time.thread_time()
            v = perspective_sdp(lp.hessian(r["channel"]), p.w0, r["k"])
            dt = time.thread_time() - t0
            line = (f"{name:<24} {r['channel']:>4} {r['density']:>5} {r['status']:<10} "
                    f"{out[0]:7.3f} {out[1]:9.3f} {v / ref:9.3f} {dt:6.1f}")
            if args.block:
                H = p.H
                alive = np.diag(H) > 0
                x_inc = np.asarray(res.weights, float).ravel()[alive]
                t0 = time.thread_time()
                b = block_root(H[np.ix_(alive, alive)], p.w0[alive], r["k"], args.block, x_inc)
                line += f" {b / ref:7.3f} {time.thread_time() - t0:6.1f}"
            for m in args.modulo:
                q = PruneProblem(modulo_split(p.H, m), p.w0, k=r["k"])
                line += f" {solve(q, 'exact', time_limit=args.modulo_seconds).objective / ref:6.3f}"
            for flag, exact_k in ((args.shor, False), (args.shor_plus, True)):
                if flag:
                    t0 = time.process_time()
                    v, ok = shor_sdp(p.H, p.w0, r["k"], exact_k=exact_k,
                                     solver=args.shor_solver, eps=args.shor_eps)
                    line += f" {v / ref:6.3f}{' ~'[not ok]}{time.process_time() - t0:7.1f}"
            mark = "" if ref == r["objective"] else "*"
            print(line + f" {ref:10.4f}{mark}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
