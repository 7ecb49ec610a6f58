"""Whole-model throughput: every chunk of every MobileNetV2 layer at 4 bits.

Three figures, in problems (one output channel of one chunk) per second:

* **export**: ``bounds.export.export_model("mobilenet_v2", opt_dim=32)`` over every conv and linear
  layer, wall time in this process divided by the number of problems it produced;
* **exact quantization** (4 bits, per-tensor MSE scale) and **exact pruning** (density 4/16, the
  equal-compression rule; no box) on a pool of ``workers`` local processes (one thread each),
  wall time of the pool run divided by the number of problems solved.

Solving every channel of every chunk can take long; ``sample`` < 1 solves a seeded random share of
each layer's problems (at least one per layer) and the report says so. Each solve has a time limit;
how many stopped there is reported beside the rate.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _init_worker() -> None:
    from .threads import pin_threads

    pin_threads(1)
    import warnings

    warnings.simplefilter("ignore")
    from .runner import warm_up_local

    warm_up_local()


def _solve_batch(task: dict) -> dict:
    """Solve the listed channels of one chunk; return counts and summed solver seconds."""
    from solvers.problem import LayerProblem
    from solvers.registry import get_method

    lp = LayerProblem(task["H"], task["W0"])
    fn = get_method(task["kind"], "exact").load()
    statuses: Counter[str] = Counter()
    secs = 0.0
    for c, scale in zip(task["channels"], task["scales"], strict=True):
        if task["kind"] == "quant":
            p = lp.quant(int(c), scale=float(scale), bits=task["bits"])
        else:
            p = lp.prune(int(c), density=task["density"])
        t0 = time.perf_counter()
        res = fn(p, time_limit=task["time_limit"])
        secs += time.perf_counter() - t0
        statuses[res.status.value] += 1
    return {"count": len(task["channels"]), "statuses": dict(statuses), "seconds": secs}


def export_all(samples: int, seed: int, opt_dim: int = 32) -> tuple[dict, float]:
    """Every layer's chunks, and the export's wall time."""
    from bounds.export import export_model

    t0 = time.perf_counter()
    problems = export_model(model="mobilenet_v2", layers=None, samples=samples,
                            opt_dim=opt_dim, seed=seed)
    return problems, time.perf_counter() - t0


def make_tasks(problems: dict, *, kind: str, bits: int, density: float, sample: float,
               seed: int, time_limit: float) -> tuple[list[dict], int]:
    """Batches of (chunk, sampled channels); also the total number of problems."""
    from bounds.scale_choice import choose_scales

    rng = np.random.default_rng(seed)
    tasks, total = [], 0
    for name, chunks in problems.items():
        layer_total = sum(lp.channels for lp in chunks)
        total += layer_total
        want = max(1, int(round(sample * layer_total)))
        pairs = [(j, c) for j, lp in enumerate(chunks) for c in range(lp.channels)]
        if want < len(pairs):
            pick = rng.choice(len(pairs), size=want, replace=False)
            pairs = [pairs[i] for i in sorted(pick)]
        per_chunk: dict[int, list[int]] = {}
        for j, c in pairs:
            per_chunk.setdefault(j, []).append(c)
        for j, chans in per_chunk.items():
            lp = chunks[j]
            scales = choose_scales(lp, bits)[chans] if kind == "quant" else [0.0] * len(chans)
            tasks.append({"kind": kind, "H": lp.H, "W0": lp.W0, "channels": chans,
                          "scales": list(map(float, scales)), "bits": bits, "density": density,
                          "time_limit": time_limit, "layer": name})
    return tasks, total


def solve_pool(tasks: Sequence[dict], workers: int, progress: Any = None) -> dict:
    """Run the tasks on a process pool; wall time measured after the workers warmed up."""
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
        # start and warm every worker before the clock starts
        list(pool.map(_noop, range(workers * 2)))
        t0 = time.perf_counter()
        futs = [pool.submit(_solve_batch, t) for t in tasks]
        count, statuses, secs = 0, Counter(), 0.0
        for f in as_completed(futs):
            r = f.result()
            count += r["count"]
            statuses.update(r["statuses"])
            secs += r["seconds"]
            if progress is not None:
                progress.update(r["count"])
        wall = time.perf_counter() - t0
    return {"problems": count, "wall": wall, "statuses": dict(statuses), "cpu_seconds": secs,
            "rate": count / wall if wall > 0 else None}


def _noop(_: int) -> None:
    time.sleep(0.05)


def run_throughput(*, samples: int, seed: int, sample: float, workers: int, time_limit: float,
                   bits: int = 4, progress_factory: Any = None) -> dict:
    problems, export_s = export_all(samples, seed)
    n_chunks = sum(len(c) for c in problems.values())
    out: dict[str, Any] = {"layers": len(problems), "chunks": n_chunks, "samples": samples,
                           "export_seconds": export_s, "sample": sample, "workers": workers,
                           "time_limit": time_limit, "bits": bits}
    for kind, density in (("quant", None), ("prune", bits / 16.0)):
        tasks, total = make_tasks(problems, kind=kind, bits=bits, density=density or 0.0,
                                  sample=sample, seed=seed, time_limit=time_limit)
        out["problems_total"] = total
        n = sum(len(t["channels"]) for t in tasks)
        bar = progress_factory(n, f"throughput {kind}") if progress_factory else None
        try:
            out[kind] = solve_pool(tasks, workers, bar)
        finally:
            if bar is not None:
                bar.close()
    out["export_rate"] = out["problems_total"] / export_s if export_s > 0 else None
    return out
