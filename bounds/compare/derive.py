"""Whole-channel figures, derived on the client from a run's stored rows and the full ``H``.

For every channel of a layer whose chunks are all in the run (:attr:`LayerPlan.whole`), and
every compression of the run:

* **stitched** rows: each method's chunk solutions concatenated and evaluated on the channel's
  full ``H`` (a feasible whole-channel solution: the pruning budgets of the chunks add up to the
  whole budget ``K``);
* a **block-split bound** row: the certified bounds of the block problems (scope ``block``, or
  the single chunk when the channel is one chunk) read from the store and handed, as arrays, to
  :mod:`solvers.whole_channel` (:func:`~solvers.whole_channel.block_sum_bound` for quantization
  and N:M, :func:`~solvers.whole_channel.budget_bound` for pruning budgets), which owns the math
  and its margins; the least stitched error is the objective it is clamped to.

On the layers whose plan asks for it (:attr:`LayerPlan.scale_range`), :func:`range_rows` adds
the certified bound on quantization over **every scale** in the run's range (scope ``range``,
one row per bit width where pruning wins or may at the rule's scales, and granularity:
``scale-range channel`` lets each sampled channel have
its own scale in ``[lo, hi]·max|w_c|/zmax``, ``scale-range tensor`` one shared scale in
``[lo, hi]·max|W|/zmax``), over the same sampled chunk problems, from
:mod:`solvers.scale_range`; the search stops once it decides pruning's best chunk error.

This module only maps stored rows to arrays and back: which row holds which block bound, and the
derived rows' identity (their keys hash the problem, and the source rows or the run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.problem import grid_limits, quadratic_error
from solvers.scale_range import per_channel_bound, scale_range_bound
from solvers.scales import minmax_scale
from solvers.whole_channel import block_sum_bound, box_dist2, budget_bound, grid_dist2

from ..provenance import pqbound_version
from .plan import LayerPlan, RunPlan, _box
from .store import ResultStore
from .tasks import task_key

#: A stored row's place in the run: (scope, kind, method, compression, chunk, channel).
RowIndex = dict[tuple, dict[str, Any]]


def whole_rows(plan: LayerPlan, run: RunPlan, store: ResultStore, run_id: str
               ) -> list[dict[str, Any]]:
    """Stitched errors and certified bounds for every whole channel of a fully covered layer."""
    if not plan.whole:
        return []
    by: RowIndex = {}
    for r in store.rows(run_id, solutions=True, layer=plan.layer):
        by[(r["scope"], r["kind"], r["method"], r["compression"], r["chunk"], r["channel"])] = r
    cfg = run.cfg
    comps = [(f"{b}bit", b) for b in cfg.bits] + [(f"nm{N}:{M}", None) for N, M in cfg.nm]
    out = []
    for c in plan.channels:
        ch = _Channel.of(plan, run, run_id, c)
        for comp, bits in comps:
            for kind, names in (("quant", cfg.quant_methods), ("prune", cfg.prune_methods)):
                if kind == "quant" and bits is None:
                    continue
                best = math.inf
                for m in names:
                    parts = _chunk_solutions(by, plan, kind, m, comp, c)
                    if parts is None:
                        continue
                    w = np.concatenate([np.asarray(p["weights"], dtype=float) for p in parts])
                    err = quadratic_error(ch.H, ch.w0, w)
                    best = min(best, err)
                    out.append(ch.row(kind, f"stitched {m}", comp, bits, err, None, "stitched",
                                      {"from": "chunk solutions evaluated on the full H"},
                                      parts))
                obj = best if math.isfinite(best) else None
                bound = _whole_bound(plan, run, by, c, kind, comp, bits, obj)
                if bound is not None:
                    lb, info = bound
                    out.append(ch.row(kind, "block-split bound", comp, bits, obj, lb,
                                      "certified", info, None))
    return out


def derived_rows(plan: LayerPlan, run: RunPlan, store: ResultStore, run_id: str
                 ) -> list[dict[str, Any]]:
    """Every row derived after the solves: :func:`whole_rows` and :func:`range_rows`."""
    return whole_rows(plan, run, store, run_id) + range_rows(plan, run, store, run_id)


#: Exact-solve node limit per interval centre of the scale-range bound (deterministic).
RANGE_NODE_LIMIT = 20_000


def range_rows(plan: LayerPlan, run: RunPlan, store: ResultStore, run_id: str
               ) -> list[dict[str, Any]]:
    """The certified bound over every scale of the run's range, per channel and per tensor,
    on the layer's sampled chunk problems (see the module docstring)."""
    cfg = run.cfg
    if not plan.scale_range or cfg.scale_range is None:
        return []
    lo, hi = cfg.scale_range
    P = plan.problem
    groups = []
    for c in plan.channels:
        Hc, w0 = P.hessian(c), P.W0[c]
        groups.append([(np.ascontiguousarray(Hc[a:b, a:b]), np.ascontiguousarray(w0[a:b]))
                       for a, b in (plan.chunks[i] for i in plan.chunk_ids)])
    norm = sum(max(0.0, float(w @ H @ w)) for g in groups for H, w in g)
    solved = [r for r in store.rows(run_id, layer=plan.layer, scope="chunk")
              if r["objective"] is not None and r["status"] != "error"]
    out = []
    for bits in cfg.bits:
        comp = f"{bits}bit"
        best = {kind: _best_total(solved, kind, comp, len(plan.channels) * len(plan.chunk_ids))
                for kind in ("quant", "prune")}
        # Only where pruning wins (or may) at the rule's scales does a verdict depend on the
        # scale: a quantization win is a solution, at its scale, whatever other scales do.
        # The search stops once the bound decides pruning's error.
        if best["prune"] is None or (best["quant"] is not None
                                     and best["quant"] < best["prune"]):
            continue
        target = best["prune"]
        opts = {"rtol": 1e-3, "max_intervals": cfg.scale_range_intervals,
                "node_limit": RANGE_NODE_LIMIT, "target": target}
        ranges = [(lo * float(minmax_scale(P.W0[c], bits)), hi * float(minmax_scale(P.W0[c], bits)))
                  for c in plan.channels]
        per = per_channel_bound(groups, bits, ranges, **opts)
        s_t = float(minmax_scale(P.W0, bits))
        shared = scale_range_bound([p for g in groups for p in g], bits, lo * s_t, hi * s_t,
                                   **opts)
        for gran, res in (("channel", per), ("tensor", shared)):
            info = {k: v for k, v in res.to_dict().items() if k != "weights"}
            info.update({"ratio_range": [lo, hi], "granularity": gran, "target": target,
                         "channels": plan.channels, "chunk_ids": plan.chunk_ids})
            key = task_key(problem=plan.problem_hash, kind="quant", scope="range",
                           method=f"scale-range {gran}", compression=comp, run=run_id,
                           version=pqbound_version())
            out.append({
                "task_key": key, "run_id": run_id, "model": run.model, "layer": plan.layer,
                "chunk": -1, "channel": -1, "scope": "range", "kind": "quant",
                "method": f"scale-range {gran}", "compression": comp, "bits": bits,
                "n": P.n, "input_start": 0, "input_stop": P.n, "status": res.status,
                "objective": res.objective, "lower_bound": res.lower_bound, "norm": norm,
                "seconds": res.seconds, "nodes": res.intervals,
                "method_version": f"pqbound {pqbound_version()}",
                "problem_hash": plan.problem_hash, "calibration": plan.calibration,
                "message": "", "weights": [float(x) for w in res.weights for x in w],
                "info_json": info,
            })
    return out


def _best_total(rows: list[dict[str, Any]], kind: str, comp: str, units: int) -> float | None:
    """Σ over (chunk, channel) of the least error of ``kind`` at ``comp`` (``None`` if one
    problem has no row)."""
    best: dict[tuple, float] = {}
    for r in rows:
        if r["kind"] == kind and r["compression"] == comp:
            u = (r["chunk"], r["channel"])
            best[u] = min(best.get(u, math.inf), float(r["objective"]))
    return sum(best.values()) if len(best) == units else None


def _chunk_solutions(by: RowIndex, plan: LayerPlan, kind: str, method: str, comp: str, c: int
                     ) -> list[dict[str, Any]] | None:
    """Every chunk's row of ``method`` for channel ``c``, or ``None`` if one has no solution."""
    parts = [by.get(("chunk", kind, method, comp, i, c)) for i in range(len(plan.chunks))]
    if any(p is None or p["status"] == "error" or not p.get("weights") for p in parts):
        return None
    return parts


def _whole_bound(plan: LayerPlan, run: RunPlan, by: RowIndex, c: int, kind: str, comp: str,
                 bits: int | None, objective: float | None) -> tuple[float, dict] | None:
    """The stored block (or chunk) bounds of channel ``c`` as arrays, through
    :mod:`solvers.whole_channel`; ``None`` when a needed row is missing or has no bound, or when
    the split proves nothing (a slack split over an unbounded feasible set)."""
    method = run.bound_method(kind)
    if method is None:
        return None
    nchunks = len(plan.chunks)
    split = plan.splits.get(c)
    if split is None:  # a single chunk: the chunk problem is the whole problem
        r = by.get(("chunk", kind, method, comp, 0, c))
        if nchunks != 1 or r is None or r["lower_bound"] is None:
            return None
        lb, info = block_sum_bound([float(r["lower_bound"])], objective=objective)
    elif kind == "quant" or comp.startswith("nm"):
        rows = [by.get(("block", kind, method, comp, i, c)) for i in range(nchunks)]
        if any(r is None or r["lower_bound"] is None for r in rows):
            return None
        lb, info = block_sum_bound([float(r["lower_bound"]) for r in rows], split,
                                   objective=objective, dist2=_dist2(plan, run, c, kind, bits))
    else:
        solved = []
        for i, (a, b) in enumerate(plan.chunks):
            known = {}
            for k in range(1, b - a):
                r = by.get(("block", kind, method, f"k={k}", i, c))
                if r is not None and r["lower_bound"] is not None:
                    known[k] = float(r["lower_bound"])
            solved.append(known)
        lb, info = budget_bound(split, plan.problem.W0[c], solved, plan.budget(bits),
                                objective=objective, dist2=_dist2(plan, run, c, kind, bits))
    if lb is None:
        return None
    info["method"] = method
    return lb, info


def _dist2(plan: LayerPlan, run: RunPlan, c: int, kind: str, bits: int | None) -> float | None:
    """``D² ≥ ‖w − w0‖²`` over channel ``c``'s feasible set, where it is bounded: the
    quantization grid, or pruning with the protocol's box (a slack split needs it)."""
    w0 = plan.problem.W0[c]
    if kind == "quant":
        lo, hi = grid_limits(bits)
        return grid_dist2(w0, float(plan.scales[bits][c]), lo, hi)
    box = _box(run.protocol.box_factor, w0)
    return None if box is None else box_dist2(w0, box)


@dataclass(frozen=True)
class _Channel:
    """One whole channel of a layer in a run: what its derived rows share."""

    plan: LayerPlan
    model: str
    run_id: str
    c: int
    H: np.ndarray
    w0: np.ndarray
    norm: float
    problem_hash: str

    @classmethod
    def of(cls, plan: LayerPlan, run: RunPlan, run_id: str, c: int) -> _Channel:
        H, w0 = plan.problem.hessian(c), plan.problem.W0[c]
        return cls(plan, run.model, run_id, c, H, w0, max(0.0, float(w0 @ H @ w0)),
                   plan.channel_hashes[c])

    def row(self, kind: str, method: str, comp: str, bits: int | None, obj: float | None,
            lb: float | None, status: str, info: dict, parts: Sequence[dict] | None
            ) -> dict[str, Any]:
        """A derived row; its key hashes the problem and its source rows (stitched) or the run
        (bounds, which depend on which rows the run holds)."""
        src = sorted(p["task_key"] for p in parts) if parts else []
        key = task_key(problem=self.problem_hash, kind=kind, method=method, scope="whole",
                       compression=comp, run=self.run_id if not parts else None, parts=src)
        weights = [x for p in parts for x in p["weights"]] if parts else None
        n = self.plan.problem.n
        return {
            "task_key": key, "run_id": self.run_id, "model": self.model,
            "layer": self.plan.layer, "chunk": -1, "channel": self.c, "scope": "whole",
            "kind": kind, "method": method, "compression": comp, "bits": bits, "n": n,
            "input_start": 0, "input_stop": n, "status": status, "objective": obj,
            "lower_bound": lb, "norm": self.norm, "seconds": 0.0, "nodes": 0,
            "method_version": f"pqbound {pqbound_version()}",
            "problem_hash": self.problem_hash, "calibration": self.plan.calibration,
            "message": "", "weights": weights, "info_json": info,
        }
