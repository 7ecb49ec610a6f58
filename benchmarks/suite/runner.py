"""Run methods side by side on the same instances and check every answer against ours.

For each instance every selected method runs once, one after another in one single-threaded
worker process, in an order rotated from instance to instance (so slow drift in the machine's load
hits all methods alike and no method is always first after a cold cache). Each answer becomes one
*row* (a flat dict, see :data:`ROW_FIELDS`) with:

* the objective recomputed from the returned weights (``problem.error``) and a feasibility check
  of those weights (on the grid and in the box; at most ``k`` nonzeros and in the box);
* ``claimed_optimal``: the backend said optimal (also when the shared adapter layer downgraded the
  claim because the recomputed gap was too large);
* the comparison with our exact solver on the same instance: ``rel_diff = (objective − ours) /
  ours``; a claimed optimum more than :data:`AGREE_RTOL` away is a *disagreement*, and so is a
  lower bound above our proved optimum, or an objective below our proved lower bound (which would
  mean *our* solver is wrong). Disagreements are kept and shown, never dropped.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from solvers.problem import PruneProblem, QuantProblem
from solvers.result import SolveResult, Status

from .families import Instance
from .methods import OURS, MethodSpec
from .worker import SolveWorker, WorkerPool

log = logging.getLogger(__name__)

#: Relative tolerance for "same optimum as ours".
AGREE_RTOL = 1e-9
#: Feasibility tolerance on grid codes and boxes (relative).
FEAS_RTOL = 1e-9

#: Statuses of rows where the method did not produce an answer (left out of times and shares).
NOT_RUN = ("skipped (licence size)", "not applicable", "error", "killed")

ROW_FIELDS = (
    "study", "kind", "family", "size", "n", "instance", "bits", "density", "k", "box_factor",
    "method", "certified", "status", "claimed_optimal", "objective", "lower_bound", "gap",
    "nodes", "seconds", "solver_seconds", "time_limit", "feasible", "ours_objective",
    "ours_lower_bound", "ours_status", "rel_diff", "agree", "issue", "message",
)


def make_problem(inst: Instance, kind: str, *, bits: int, density: float,
                 box_factor: float | None) -> QuantProblem | PruneProblem:
    if kind == "quant":
        return inst.quant(bits)
    return inst.prune(density, box_factor)


def feasible(problem: QuantProblem | PruneProblem, res: SolveResult) -> tuple[bool, str]:
    """Whether the returned weights are a solution of ``problem`` (with a reason if not)."""
    w = np.asarray(res.weights, dtype=float)
    if w.shape != (problem.n,) or not np.all(np.isfinite(w)):
        return False, "weights missing or not finite"
    if isinstance(problem, QuantProblem):
        z = w / problem.scale
        zr = np.rint(z)
        if np.max(np.abs(z - zr), initial=0.0) > 1e-6:
            return False, "weights off the grid"
        if zr.min(initial=0) < problem.zmin or zr.max(initial=0) > problem.zmax:
            return False, "codes outside the box"
        return True, ""
    nnz = int(np.count_nonzero(w))
    if nnz > problem.k:
        return False, f"{nnz} nonzeros > k = {problem.k}"
    if problem.box is not None and np.max(np.abs(w)) > problem.box * (1 + FEAS_RTOL):
        return False, "weights outside the box"
    return True, ""


def _claimed_optimal(res: SolveResult) -> bool:
    return res.status is Status.OPTIMAL or "claimed optimal" in (res.message or "")


def base_row(inst: Instance, kind: str, problem: Any, *, study: str, bits: int,
             density: float, box_factor: float | None, time_limit: float | None) -> dict:
    return {
        "study": study, "kind": kind, "family": inst.family, "size": inst.size, "n": inst.n,
        "instance": inst.name, "bits": bits if kind == "quant" else None,
        "density": density if kind == "prune" else None,
        "k": getattr(problem, "k", None), "box_factor": box_factor if kind == "prune" else None,
        "time_limit": time_limit,
    }


def result_row(base: dict, spec: MethodSpec, problem: Any, answer: dict) -> dict:
    row = dict(base)
    row.update({"method": spec.name, "certified": spec.certified})
    if not answer.get("ok"):
        if answer.get("licence"):
            status = "skipped (licence size)"
        elif answer.get("not_applicable"):
            status = "not applicable"
        elif answer.get("killed"):
            status = "killed"
        else:
            status = "error"
        row.update({"status": status, "message": answer.get("error", "")[:300],
                    "seconds": answer.get("wall"), "claimed_optimal": False, "feasible": None})
        return row
    res: SolveResult = answer["result"]
    ok, why = feasible(problem, res)
    obj = problem.error(res.weights) if ok or why != "weights missing or not finite" else None
    msg = res.message or ""
    if res.info.get("inside_box") is False:  # fpylll: the unboxed optimum left the grid
        ok, why = False, "unboxed optimum outside the box"
    row.update({
        "status": res.status.value, "claimed_optimal": _claimed_optimal(res),
        "objective": obj, "lower_bound": res.lower_bound, "gap": res.gap,
        "nodes": int(res.nodes), "seconds": float(answer["wall"]),
        "solver_seconds": float(res.seconds), "feasible": ok,
        "issue": why, "message": msg[:300],
    })
    return row


def compare_with_ours(rows: list[dict]) -> None:
    """Fill ``ours_*``, ``rel_diff``, ``agree`` and ``issue`` in the rows of one instance."""
    ours = next((r for r in rows if r["method"] == OURS and r.get("objective") is not None), None)
    if ours is None:
        return
    o_obj, o_lb = ours["objective"], ours["lower_bound"]
    o_opt = ours["status"] == Status.OPTIMAL.value
    scale = max(abs(o_obj), 1e-300)
    for r in rows:
        r["ours_objective"], r["ours_lower_bound"] = o_obj, o_lb
        r["ours_status"] = ours["status"]
        if r is ours or r.get("objective") is None:
            continue
        rel = (r["objective"] - o_obj) / scale
        if abs(r["objective"] - o_obj) <= 1e-300:
            rel = 0.0
        r["rel_diff"] = rel
        issues = [r["issue"]] if r.get("issue") else []
        if r["feasible"] and o_lb is not None and r["objective"] < o_lb * (1 - AGREE_RTOL) - 1e-300:
            issues.append("objective below OUR proved lower bound")
        lb = r.get("lower_bound")
        if lb is not None and o_opt and lb > o_obj * (1 + AGREE_RTOL) + 1e-300:
            issues.append("lower bound above our proved optimum")
        if r["claimed_optimal"] and o_opt:
            r["agree"] = bool(r["feasible"]) and abs(rel) <= AGREE_RTOL
            if not r["agree"] and r["feasible"]:
                issues.append(
                    f"claimed optimal but {rel:+.2e} relative to our optimum"
                    + (" (within its 1e-6 gap)" if 0 < rel <= 1e-6 else "")
                )
        elif o_opt and r["feasible"]:
            r["agree"] = abs(rel) <= AGREE_RTOL
        r["issue"] = "; ".join(i for i in issues if i)


def run_comparison(
    instances: Sequence[Instance],
    specs: Sequence[MethodSpec],
    *,
    kind: str,
    time_limit: float,
    bits: int = 4,
    density: float = 0.25,
    box_factor: float | None = None,
    worker: SolveWorker | WorkerPool,
    seed: int = 0,
    study: str = "comparison",
    on_row: Callable[[dict], None] | None = None,
    progress: Iterable[Any] | None = None,
) -> list[dict]:
    """Every method on every instance, interleaved, in one worker; returns the rows."""
    order_rng = random.Random(seed)
    out: list[dict] = []
    specs = list(specs)
    for inst in instances:
        try:
            problem = make_problem(inst, kind, bits=bits, density=density, box_factor=box_factor)
        except Exception as exc:
            log.warning("instance %s skipped: %s", inst.name, exc)
            continue
        base = base_row(inst, kind, problem, study=study, bits=bits, density=density,
                        box_factor=box_factor, time_limit=time_limit)
        shift = order_rng.randrange(len(specs)) if specs else 0
        order = specs[shift:] + specs[:shift]
        rows = []
        for spec in order:
            answer = worker.solve(spec, problem, time_limit)
            row = result_row(base, spec, problem, answer)
            rows.append(row)
        compare_with_ours(rows)
        for row in rows:
            out.append(row)
            if on_row is not None:
                on_row(row)
        if progress is not None:
            progress.update(1)  # type: ignore[attr-defined]
    return out


def warm_up(worker: SolveWorker | WorkerPool, specs: Sequence[MethodSpec]) -> dict[str, float]:
    """One tiny solve per method (numba compilation / cache load, imports, licence checks)."""
    import time

    out = {}
    for spec in specs:
        t0 = time.perf_counter()
        ans = worker.warm(spec)
        out[f"{spec.kind}:{spec.name}"] = time.perf_counter() - t0
        if not ans.get("ok"):
            log.warning("warm-up of %s %s failed: %s", spec.kind, spec.name, ans.get("error"))
    return out


def warm_up_local() -> None:
    """In this process: one tiny exact quantization and pruning solve (numba cache load)."""
    from solvers.registry import solve

    rng = np.random.default_rng(12345)
    X = rng.standard_normal((24, 8))
    H = X.T @ X
    w0 = rng.standard_normal(8)
    for p in (QuantProblem(H, w0, scale=0.3, bits=3), PruneProblem(H, w0, k=3)):
        try:
            solve(p, "exact", time_limit=30.0)
        except Exception as exc:  # reported by the real solves, not here
            log.debug("warm-up failed: %s", exc)


def finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
