"""``pqbound network --allocate``: per-layer bit widths (or densities) under a total size budget.

The flow of :func:`run_allocation`:

1. **Curves.** Every chosen layer is captured once in *parallel* mode (its ``H`` from the
   original network, so a layer's error at a size does not depend on the other layers' choices)
   and solved with the run's method at every size of ``options`` (bit widths; for a pruning
   method the equal-size densities ``b/16`` under the paper's accounting). Each (layer, size) is
   one row of the results store, with the same key as a ``pqbound network --mode parallel
   --bits b`` run of the same settings would give it: those runs and this one share rows, and a
   killed run resumes. A layer's curve: its normalised error ``Σ error / Σ norm`` per size (best
   found), the certified bound ``Σ lower_bound / Σ norm`` where the method proves one
   (``exact``), and the size ``weights × bits per weight`` (FP16 baseline; scales and masks not
   charged, the paper's accounting). With ``bounds_from`` (``--allocate-bounds quant:exact``)
   every layer and size is also solved by that certified method (rows under their own keys)
   and each curve point holds the better solution and the certified bound (:func:`combine`).
2. **Allocation.** :func:`solvers.allocation.allocate`: the multiple-choice knapsack minimising
   the summed normalised error within ``budget × Σ weights`` bits, solved exactly, with its
   certified lower bound (the trivial 0 where the method proves nothing).
3. **Baselines.** The uniform setting at every size, and the sensitivity heuristic: the same
   knapsack on HAWQ's Hessian-trace proxy (:func:`solvers.allocation.hessian_trace_proxy`,
   computed from the same ``H`` with RTN at the layer's scales for quantization, per-channel
   magnitude pruning for pruning), solutions taken from the same solved rows.
4. **End to end.** Each network (uniform per size, allocated, heuristic) is assembled from the
   solved weights and measured on the held-out set (:mod:`layers.network.evaluate`).
   ``DIR/state_dict.pt`` holds the allocated network, ``DIR/allocation.json`` everything.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from solvers.allocation import (
    LayerCurve,
    LayerOption,
    allocate,
    hessian_trace_proxy,
    uniform_choice,
)
from solvers.problem import ProblemError, density_to_k

from ..compare.store import ResultStore
from ..compare.tasks import task_key
from ..export import _as_problem_error, check_writable
from ..provenance import pqbound_version, versions
from .layer_solve import cached_layer_scales, solve_layer
from .run import OUTPUT_ONLY, SCOPE, _row, _write_json, decode_weights, prepare, select
from .settings import NetworkConfig

log = logging.getLogger(__name__)

#: The sizes (bits per weight) the allocation chooses from by default.
DEFAULT_OPTIONS = (2, 3, 4, 6, 8)


def option_configs(cfg: NetworkConfig, options: tuple[int, ...]) -> dict[int, NetworkConfig]:
    """One checked configuration per size: the run's method at ``bits = b`` (parallel mode)."""
    if not options:
        raise ProblemError("--allocate needs at least one size to choose from")
    if cfg.density is not None or cfg.nm is not None:
        raise ProblemError("--allocate chooses each layer's density from the bit widths: "
                           "drop --density / --nm")
    out = {}
    for b in sorted(set(int(v) for v in options)):
        out[b] = replace(cfg, bits=b, mode="parallel").checked()
    return out


def bound_configs(cfg: NetworkConfig, options: tuple[int, ...], bounds_from: str | None
                  ) -> dict[int, NetworkConfig]:
    """The configurations of ``--allocate-bounds METHOD`` per size (``{}`` without it): a
    certified method of the same kind as the run's, at the same sizes and settings."""
    if bounds_from is None:
        return {}
    from solvers.registry import get_method

    from .settings import resolve_method

    kind, name = resolve_method(bounds_from)
    main_kind, main_name = resolve_method(cfg.method)
    if kind != main_kind:
        raise ProblemError(f"--allocate-bounds {bounds_from}: a {kind} method cannot bound the "
                           f"{main_kind} method {cfg.method}")
    if not get_method(kind, name).certified:
        raise ProblemError(f"--allocate-bounds {bounds_from}: not a certified method (it "
                           f"proves no bound); use {kind}:exact")
    if name == main_name:
        raise ProblemError(f"--allocate-bounds {bounds_from} is the run's own method: its "
                           f"bounds are already in the curves")
    return option_configs(replace(cfg, method=f"{kind}:{name}"), options)


def combine(main: tuple[np.ndarray, dict[str, Any]], bound: tuple[np.ndarray, dict[str, Any]],
            bound_method: str) -> tuple[np.ndarray, dict[str, Any]]:
    """One layer at one size solved by the run's method and by a certified method: the
    better solution (least error; the run's method on a tie) and the certified method's
    bound. Both solve the same problem (same ``H``, ``W0``, scales or kept count), so the bound
    holds for either solution."""
    (Wm, rm), (Wb, rb) = main, bound
    rec = dict(rm, lower_bound=rb["lower_bound"], bound_method=bound_method,
               errors={"method": rm["error"], "bound_method": rb["error"]})
    if rb["error"] < rm["error"]:
        rec.update(error=rb["error"], solution_method=bound_method)
        return Wb, rec
    rec["solution_method"] = "method"
    return Wm, rec


def _settings(c: NetworkConfig, loaded, module, split) -> dict[str, Any]:
    from layers.network.compress import state_fingerprint
    from layers.network.data import fingerprint

    s = {k: v for k, v in c.as_dict().items() if k not in OUTPUT_ONLY}
    s.update(model_name=loaded.name, model_state=state_fingerprint(module),
             calibration=fingerprint(split.calibration), scope=SCOPE, version=pqbound_version())
    return s


def proxy_error(c: NetworkConfig, export: Any, W0: np.ndarray, norm: float, *,
                scale_cache: dict | None = None) -> float:
    """HAWQ's Hessian-trace proxy of one layer at ``c``'s size (see the module docstring);
    ``scale_cache`` as in :func:`~bounds.network.layer_solve.cached_layer_scales`."""
    spec = export.spec
    if norm <= 0:
        return 0.0
    h = np.zeros((spec.channels, spec.n))
    for ch in export.chunks:
        H = np.asarray(ch.H)
        h[:, ch.start:ch.stop] = np.diagonal(H, axis1=-2, axis2=-1)
    if c.kind == "quant":
        s = cached_layer_scales(W0, c.bits, c.scale, scale_cache)[:, None]
        q = 2 ** (c.bits - 1)
        W = s * np.clip(np.round(W0 / s), -q, q - 1)
    else:
        W = W0.copy()
        for ch in export.chunks:
            n = ch.stop - ch.start
            k = density_to_k(c.target_density, n)
            block = W[:, ch.start:ch.stop]
            order = np.argsort(-np.abs(block), axis=1, kind="stable")
            np.put_along_axis(block, order[:, k:], 0.0, axis=1)
    return hessian_trace_proxy(h, W0, W, norm)


def run_allocation(cfg: NetworkConfig, out: str | os.PathLike[str], *, budget: float,
                   options: tuple[int, ...] = DEFAULT_OPTIONS, target: str = "error",
                   db: str | os.PathLike[str] | None = None, progress: bool = False,
                   bounds_from: str | None = None) -> dict[str, Any]:
    """Solve every layer at every size, allocate within ``budget`` bits per weight (averaged
    over the chosen layers' weights), measure uniform / allocated / heuristic networks end to
    end; returns the document written to ``out/allocation.json``. ``bounds_from``: a certified
    method (``quant:exact``, ``prune:exact``) also run on every layer and size; each curve point
    then holds the better of the two solutions and the certified method's bound
    (:func:`combine`), so a fast method's allocation gets a certified floor."""
    from layers.network.compress import save_state_dict, set_weight_matrix, snapshot
    from layers.network.evaluate import compare_outputs, model_outputs

    t0 = time.perf_counter()
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ProblemError(f"--budget-bits must be a positive number of bits per weight, "
                           f"got {budget!r}")
    configs = option_configs(cfg, options)
    bconfigs = bound_configs(cfg, options, bounds_from)
    roles = {("method", b): c for b, c in configs.items()}
    roles.update({("bound", b): c for b, c in bconfigs.items()})
    base = next(iter(configs.values()))
    least = min(c.bits_per_weight for c in configs.values())
    if budget < least:
        raise ProblemError(f"budget of {budget:g} bits per weight is infeasible: the smallest "
                           f"size offered takes {least:g} (--allocate-bits)")
    out = check_writable(out)
    loaded, split, labels = prepare(base)
    module = loaded.module
    specs = select(base, module)
    original = snapshot(module)
    with _as_problem_error():
        kind, ref = model_outputs(module, split.heldout)
    # one row key chain and run per (role, size): role "method" (the run's) or "bound"
    settings = {r: _settings(c, loaded, module, split) for r, c in roles.items()}
    keys: dict[tuple[str, int], dict[str, str]] = {}
    for r in roles:
        prev, keys[r] = None, {}
        for s in specs:
            prev = task_key(settings=settings[r], layer=s.name, previous=prev)
            keys[r][s.name] = prev
    run_ids = {r: task_key(settings=settings[r], layers=[s.name for s in specs])
               for r in roles}
    solved: dict[str, dict[int, tuple[np.ndarray, dict[str, Any]]]] = {}
    store = ResultStore(Path(db) if db is not None else out / "results.sqlite")
    try:
        for r in roles:
            store.begin_run(run_ids[r], settings[r], versions(), keys[r].values())
        done = store.done_keys([k for kr in keys.values() for k in kr.values()])
        resumed = []

        def finish(spec, rows):
            solved[spec.name] = {
                b: rows["method", b] if ("bound", b) not in rows else
                combine(rows["method", b], rows["bound", b], bconfigs[b].method)
                for b in configs}

        def lookup(spec):
            if not all(keys[r][spec.name] in done for r in roles):
                return None
            rows = {}
            for r in roles:
                row = store.rows(task_key=keys[r][spec.name], solutions=True)[0]
                if r[0] == "method" and "proxy" not in (row["info_json"] or {}):
                    return None  # a plain network row: solve again to get the proxy
                rows[r] = (decode_weights(row["weights"]), row["info_json"])
            finish(spec, rows)
            resumed.append(spec.name)
            return spec.weight_matrix(full_precision=True)  # leave the layer as it is

        def solve(spec, export):
            W0 = np.asarray(export.W0, dtype=float)
            scales: dict = {}  # the solves and the RTN proxy share each size's scales
            rows = {}
            for r, c in roles.items():
                W, rec = solve_layer(c, export, scale_cache=scales)
                if r[0] == "method":
                    rec["proxy"] = proxy_error(c, export, W0, rec["norm"], scale_cache=scales)
                rows[r] = (W, rec)
                store.write(_row(c, settings[r], keys[r][spec.name], run_ids[r], loaded.name,
                                 rec, W))
            finish(spec, rows)
            return spec.weight_matrix(full_precision=True)

        from layers.network.compress import compress_network

        with _as_problem_error():
            compress_network(module, split.calibration, specs, solve, mode="parallel",
                             opt_dim=base.opt_dim, full_precision=base.full_precision,
                             stop_early=loaded.builtin, lookup=lookup)
        solve_seconds = time.perf_counter() - t0
        curves, proxies = build_curves(specs, configs, solved)
        weights_total = sum(s.channels * s.n for s in specs)
        budget_bits = int(math.floor(budget * weights_total))
        alloc = allocate(curves, budget_bits, target=target)
        heur = allocate(proxies, budget_bits)

        def measure(choice: tuple[int, ...]) -> dict[str, Any]:
            for s, curve, i in zip(specs, curves, choice, strict=True):
                set_weight_matrix(s, solved[s.name][_bits(curve.options[i])][0])
            with _as_problem_error():
                _, outputs = model_outputs(module, split.heldout)
            return compare_outputs(kind, ref, outputs, labels=labels,
                                   resamples=base.resamples, seed=base.seed)

        networks = []
        for b in configs:
            choice = uniform_choice(curves, _label(configs[b]))
            networks.append(_network(f"uniform {b} bits", curves, choice, weights_total,
                                     measure(choice)))
        networks.append(_network("heuristic (Hessian trace)", curves, heur.choice,
                                 weights_total, measure(heur.choice)))
        networks.append(_network("allocated", curves, alloc.choice, weights_total,
                                 measure(alloc.choice)))
        save_state_dict(module, out / "state_dict.pt")  # the allocated network, measured last
        module.load_state_dict(original)
        doc = {
            "command": "network --allocate", "model": loaded.name, "weights": base.weights,
            "method": base.method, "kind": base.kind, "settings": base.as_dict(),
            "bounds_from": next(iter(bconfigs.values())).method if bconfigs else None,
            "options_bits": list(configs), "budget_bits_per_weight": budget,
            "budget_bits": budget_bits, "weights_total": weights_total, "target": target,
            "split": split.describe(), "outputs": kind,
            "allocation": {
                "layers": {c.name: c.options[i].label for c, i in zip(curves, alloc.choice,
                                                                       strict=True)},
                "size_bits": alloc.size_bits,
                "bits_per_weight": alloc.size_bits / weights_total,
                "summed_error": alloc.objective, "summed_bound": alloc.bound_sum,
                "lower_bound": alloc.lower_bound, "gap": alloc.gap, "method": alloc.method,
                "certified_layers": sum(any(o.bound is not None for o in c.options)
                                        for c in curves),
            },
            "heuristic": {
                "layers": {c.name: c.options[i].label for c, i in zip(curves, heur.choice,
                                                                       strict=True)},
                "predicted_error": heur.objective,
            },
            "networks": networks,
            "curves": [{"layer": c.name, "weights": s.channels * s.n,
                        "options": [{"label": o.label, "size_bits": o.size_bits,
                                     "error": o.error, "bound": o.bound,
                                     "proxy": p.error}
                                    for o, p in zip(c.options, pc.options, strict=True)]}
                       for s, c, pc in zip(specs, curves, proxies, strict=True)],
            "resumed_layers": resumed, "solve_seconds": round(solve_seconds, 3),
            "state_dict": str(out / "state_dict.pt"),
            "seconds": round(time.perf_counter() - t0, 3), "versions": versions(),
        }
        _write_json(out / "allocation.json", doc)
        for r in roles:
            store.finish_run(run_ids[r], {"allocation": str(out / "allocation.json")})
    finally:
        store.close()
    return doc


def _label(c: NetworkConfig) -> str:
    """``"4 bits"``, or ``"4 bits (density 0.25)"`` for pruning (first word: the bits)."""
    if c.kind == "quant":
        return f"{c.bits} bits"
    return f"{c.bits} bits (density {c.target_density:g})"


def _bits(o: LayerOption) -> int:
    return int(o.label.split()[0])


def build_curves(specs, configs: dict[int, NetworkConfig],
                 solved: dict[str, dict[int, tuple[np.ndarray, dict[str, Any]]]]
                 ) -> tuple[list[LayerCurve], list[LayerCurve]]:
    """``(curves, proxy curves)``: per layer one option per size, errors normalised by the
    layer's norm (a layer with zero norm, e.g. dead inputs, has error 0 at every size)."""
    curves, proxies = [], []
    for s in specs:
        opts, prox = [], []
        for b, c in configs.items():
            _, rec = solved[s.name][b]
            norm = float(rec["norm"])
            size = int(math.ceil(c.bits_per_weight * s.channels * s.n - 1e-9))
            err = rec["error"] / norm if norm > 0 else 0.0
            lb = rec.get("lower_bound")
            bound = None if lb is None or norm <= 0 else min(max(lb / norm, 0.0), err)
            opts.append(LayerOption(_label(c), size, err, bound))
            prox.append(LayerOption(_label(c), size, float(rec["proxy"])))
        curves.append(LayerCurve(s.name, tuple(opts)))
        proxies.append(LayerCurve(s.name, tuple(prox)))
    return curves, proxies


def _network(name: str, curves: list[LayerCurve], choice: tuple[int, ...], weights_total: int,
             metrics: dict[str, Any]) -> dict[str, Any]:
    chosen = [c.options[i] for c, i in zip(curves, choice, strict=True)]
    size = sum(o.size_bits for o in chosen)
    return {"name": name, "size_bits": size, "bits_per_weight": size / weights_total,
            "summed_error": math.fsum(o.error for o in chosen),
            "summed_bound": math.fsum(o.certified for o in chosen), "metrics": metrics}
