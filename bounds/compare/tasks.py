"""One unit of work: solve one per-channel problem with one method; and its stored row.

A :class:`Task` carries its own data (``H``, ``w0`` and the constraint), so it can run in this
process, in a process pool or on a Dask worker alike; :func:`run_task` returns the complete row
for the results store (never raises: a failing solve becomes a row with status ``error``);
:func:`run_batch` does the same for a batch of tasks (what the executors ship to a worker).

Scopes: ``chunk`` (a chunk of a layer, the paper's problem), ``block`` (a block ``B_i`` of the
whole-channel split, see :mod:`solvers.whole_channel`; only its lower bound is used) and
``whole`` (figures derived for the whole channel, computed on the client).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.problem import LevelProblem, PruneProblem, QuantProblem

from ..provenance import method_version, pqbound_version

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Task:
    """Everything one solve needs, and the identity of its result row."""

    key: str
    kind: str  # "quant" | "prune" | "levels"
    method: str
    scope: str  # "chunk" | "block"
    model: str
    layer: str
    chunk: int
    channel: int
    compression: str  # "4bit", "k=5", "nm2:4"
    H: np.ndarray
    w0: np.ndarray
    input_start: int
    input_stop: int
    bits: int | None = None
    scale: float | None = None
    k: int | None = None
    nm: tuple[int, int] | None = None
    density: float | None = None
    box: float | None = None  # absolute box on kept weights (pruning), None for none
    time_limit: float | None = None
    node_limit: int | None = None  # given to the method instead of a time limit
    options: dict[str, Any] = field(default_factory=dict)
    problem_hash: str = ""
    calibration: str = ""
    settings_hash: str = ""
    validate: bool = False  # run the full PSD check on H (block problems built here)
    levels: np.ndarray | None = None  # kind "levels" (--formats): (L,) or (n, L)

    def problem(self) -> QuantProblem | PruneProblem | LevelProblem:
        if self.kind == "levels":
            nm = None if self.nm is None else tuple(self.nm)
            if self.validate:
                return LevelProblem(self.H, self.w0, levels=self.levels, nm=nm)
            return LevelProblem.unchecked(self.H, self.w0, self.levels, nm=nm)
        if self.kind == "quant":
            if self.validate:
                return QuantProblem(self.H, self.w0, scale=self.scale, bits=self.bits)
            return QuantProblem.unchecked(self.H, self.w0, self.scale, self.bits)
        box_factor = None
        if self.box is not None:
            amax = float(np.max(np.abs(self.w0)))
            box_factor = self.box / amax if amax > 0 else None
        kw = {"k": None if self.nm else self.k, "nm": self.nm, "box_factor": box_factor}
        if self.validate:
            return PruneProblem(self.H, self.w0, **kw)
        return PruneProblem.unchecked(self.H, self.w0, **kw)

    def describe(self) -> str:
        return (f"{self.layer} chunk {self.chunk} ch {self.channel} {self.scope} {self.kind} "
                f"{self.method} {self.compression}")


def array_hash(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' shapes, dtypes and bytes (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def task_key(**fields: Any) -> str:
    """SHA-256 of a canonical JSON of the fields that determine a result."""
    text = json.dumps(fields, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)


def base_row(task: Task) -> dict[str, Any]:
    """The identifying columns of a task's row."""
    return {
        "task_key": task.key, "model": task.model, "layer": task.layer, "chunk": task.chunk,
        "channel": task.channel, "scope": task.scope, "kind": task.kind, "method": task.method,
        "compression": task.compression, "bits": task.bits, "k": task.k,
        "nm": None if task.nm is None else f"{task.nm[0]}:{task.nm[1]}",
        "density": task.density, "n": int(task.w0.shape[0]), "input_start": task.input_start,
        "input_stop": task.input_stop, "scale": task.scale, "box": task.box,
        "problem_hash": task.problem_hash, "calibration": task.calibration,
        "settings_hash": task.settings_hash,
    }


def run_task(task: Task, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Solve ``task`` and return its complete row (an ``error`` row if the solve fails).

    ``extra``: more keywords for the method (:func:`run_batch` passes exact pruning the
    ``_shared`` pieces of its chunk's ``H``; they change the work, not the answer)."""
    from solvers.registry import get_method

    row = base_row(task)
    t0 = time.perf_counter()
    try:
        problem = task.problem()
        fn = get_method(task.kind, task.method).load()
        limits: dict[str, Any] = {"time_limit": task.time_limit}
        if task.node_limit is not None:
            limits["node_limit"] = task.node_limit
        res = fn(problem, **limits, **task.options, **(extra or {}))
        row.update({
            "status": res.status.value,
            "objective": float(res.objective),
            "lower_bound": None if res.lower_bound is None else float(res.lower_bound),
            "norm": float(res.norm),
            "seconds": float(res.seconds) if res.seconds else time.perf_counter() - t0,
            "nodes": int(res.nodes),
            "method_version": method_version(task.kind, task.method),
            "message": res.message or "",
            "weights": np.asarray(res.weights, dtype=float).ravel().tolist(),
            "codes": None if res.codes is None else
            np.asarray(res.codes).ravel().astype(np.int64).tolist(),
            "mask": None if res.mask is None else
            np.asarray(res.mask).ravel().astype(bool).tolist(),
            "info_json": _jsonable(res.info),
        })
    except Exception as exc:  # noqa: BLE001 - a failing solve is recorded, not fatal
        log.warning("%s failed: %s", task.describe(), exc)
        row.update({
            "status": "error", "objective": None, "lower_bound": None, "norm": None,
            "seconds": time.perf_counter() - t0, "nodes": 0,
            "method_version": f"pqbound {pqbound_version()}",
            "message": f"{type(exc).__name__}: {exc}",
            "info_json": {"traceback": traceback.format_exc(limit=8)},
        })
    return row


def run_batch(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """The rows of ``tasks``, in order: what the executors run in a worker, one batch at a time.

    Each row is exactly :func:`run_task`'s for its task. BLAS and OpenMP are held to one thread
    meanwhile (:func:`bounds.blas_threads.one_blas_thread`, unless the user set a thread count):
    the solves factorise ``32 × 32``
    matrices, on which OpenBLAS's threads only spin — measured 10 ms of CPU per ``32 × 32``
    inverse threaded, 0.06 ms on one thread, on a loaded two-core machine — and a worker is one
    core's worth of work anyway.
    """
    from ..blas_threads import one_blas_thread

    with one_blas_thread():
        extras = _shared_hessians(tasks)
        return [run_task(t, extras.get(i)) for i, t in enumerate(tasks)]


def _shared_hessians(tasks: Sequence[Task]) -> dict[int, dict[str, Any]]:
    """``{index: {"_shared": SharedHessian}}`` for the exact pruning tasks of the batch that
    share ``H`` and budget with another (:mod:`solvers.prune.batch`: the margin, the ``H``-only
    diagonal splits and the heuristics' masks of all those rows computed once)."""
    from solvers.prune.batch import shared_hessian

    fams: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        if t.kind == "prune" and t.method == "exact" and not t.options:
            key = (t.H.shape, t.k, t.nm, id(t.H))
            fams.setdefault(key, []).append(i)
    out: dict[int, dict[str, Any]] = {}
    for (_, k, nm, _), idx in fams.items():
        try:
            shared = shared_hessian(tasks[idx[0]].H, np.stack([tasks[i].w0 for i in idx]),
                                    k=k, nm=nm)
        except Exception as exc:  # noqa: BLE001 - each task then solves on its own
            log.debug("shared H set-up failed (%s): solving alone", exc)
            continue
        if shared is not None:
            out.update({i: {"_shared": shared} for i in idx})
    return out


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with every value JSON can write as it is, the others as ``str``: one
    ``json.dumps`` of the whole dict when it all serialises (a row's usual case: one call, not
    one per key), else key by key."""
    try:
        json.dumps(info or {}, default=_plain)
        return {str(k): v for k, v in (info or {}).items()}
    except (TypeError, ValueError):
        pass
    out = {}
    for k, v in (info or {}).items():
        try:
            json.dumps(v, default=_plain)
            out[str(k)] = v
        except (TypeError, ValueError):
            out[str(k)] = str(v)
    return out
