"""``pqbound network``: compress every chosen layer of a model, measure the network, save it.

The flow of :func:`run_network`:

1. check the settings (:class:`~bounds.network.settings.NetworkConfig`) and the output folder;
2. load the model and split the data into calibration and held-out sets that share no photo,
   sentence, file or input row (:mod:`layers.network.data`, where the split is stated);
3. the original network's outputs on the held-out set;
4. compress layer by layer (:func:`layers.network.compress.compress_network`), sequential
   (each layer's ``H`` from the already-compressed predecessors) or parallel, each layer solved
   by :func:`bounds.network.layer_solve.solve_layer` and written to the results store as soon as
   it is solved (one row per layer: its weights, figures and status). The row's key chains the
   run's settings (model and calibration fingerprints, method, size, mode, chunks, scales …),
   the layer and the previous layer's key, so a killed run started again reuses every finished
   layer and solves the rest, giving the same network;
5. the compressed network's end-to-end figures against the original's, with bootstrap
   intervals (:mod:`layers.network.evaluate`);
6. ``DIR/state_dict.pt`` (exactly the model's keys: ``load_state_dict(strict=True)``) and
   ``DIR/summary.json`` (settings, split, per-layer figures, end-to-end figures), both written
   atomically.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from solvers.problem import ProblemError

from ..compare.store import ResultStore
from ..compare.tasks import task_key
from ..export import _as_problem_error, check_writable, resolve
from ..provenance import pqbound_version, versions
from .labels import read_labels
from .layer_solve import solve_layer
from .settings import NetworkConfig

log = logging.getLogger(__name__)

SCOPE = "network"
#: Settings that do not change the compressed network (left out of the row keys).
OUTPUT_ONLY = ("heldout", "labels", "resamples")


def encode_weights(W: np.ndarray) -> dict[str, Any]:
    """A weight matrix as JSON: float64 bytes, zlib-compressed, base64 (exact round trip)."""
    W = np.ascontiguousarray(W, dtype="<f8")
    return {"format": "zlib-f8", "shape": list(W.shape),
            "data": base64.b64encode(zlib.compress(W.tobytes(), 6)).decode("ascii")}


def decode_weights(obj: dict[str, Any]) -> np.ndarray:
    if not isinstance(obj, dict) or obj.get("format") != "zlib-f8":
        raise ProblemError("a network row's weights are not in the zlib-f8 format")
    raw = zlib.decompress(base64.b64decode(obj["data"]))
    return np.frombuffer(raw, dtype="<f8").reshape(obj["shape"]).copy()


def prepare(cfg: NetworkConfig):
    """``(loaded model, split, labels or None)`` with every bad input as a ProblemError."""
    from layers.network.data import make_split

    loaded = resolve(cfg.model, weights=cfg.weights)
    with _as_problem_error():
        split = make_split(loaded, samples=cfg.samples, heldout=cfg.heldout, seed=cfg.seed,
                           batch_size=cfg.batch_size, images=cfg.images, text=cfg.text,
                           inputs=cfg.inputs, max_length=cfg.max_length)
    labels = None
    if cfg.labels is not None:
        labels = read_labels(cfg.labels, split.heldout_files, root=cfg.images)
    return loaded, split, labels


def select(cfg: NetworkConfig, module) -> list:
    """The layers to compress, checked against an N:M pattern."""
    from layers.hessian import chunk_bounds
    from layers.network.compress import select_layers

    with _as_problem_error():
        specs = select_layers(module, cfg.layers, cfg.skip)
    if cfg.nm is not None:
        M = cfg.nm[1]
        bad = [s.name for s in specs
               if any((b - a) % M for a, b in chunk_bounds(s.n, cfg.opt_dim))]
        if bad:
            raise ProblemError(f"the {cfg.nm[0]}:{M} pattern needs M to divide every row (or "
                               f"chunk) length; it does not for {', '.join(bad[:8])}"
                               f"{' …' if len(bad) > 8 else ''}: --skip them")
    return specs


def run_network(cfg: NetworkConfig, out: str | os.PathLike[str], *,
                db: str | os.PathLike[str] | None = None, progress: bool = False,
                prepared: tuple | None = None, reference: tuple | None = None,
                save_state: bool = True, captured: dict | None = None,
                scale_cache: dict | None = None) -> dict[str, Any]:
    """Run one network compression (module docstring); returns the summary written to
    ``out/summary.json``. ``db`` is the results store (default ``out/results.sqlite``).
    ``prepared`` (from :func:`prepare`) and ``reference`` (the original's held-out outputs)
    let a sweep load the model and data once; the model is compressed in place.
    ``out/outputs.npz`` keeps both networks' held-out outputs (``reference``, ``compressed``,
    ``kind``, ``labels``) for paired comparisons; ``save_state=False`` skips the state dict.
    ``captured`` (parallel mode): the layers' exports from the original network, captured once
    by a sweep. ``scale_cache``: a dict kept across runs (a sweep's) so that runs of one bit
    width search each layer's quantization scales once
    (:func:`~bounds.network.layer_solve.cached_layer_scales`)."""
    from layers.network.compress import (
        compress_network,
        save_state_dict,
        state_fingerprint,
    )
    from layers.network.data import fingerprint
    from layers.network.evaluate import compare_outputs, model_outputs

    t0 = time.perf_counter()
    cfg = cfg.checked()
    out = check_writable(out)
    loaded, split, labels = prepared if prepared is not None else prepare(cfg)
    module = loaded.module
    specs = select(cfg, module)
    with _as_problem_error():
        kind, ref = reference if reference is not None else model_outputs(module, split.heldout)
    settings = {k: v for k, v in cfg.as_dict().items() if k not in OUTPUT_ONLY}
    settings.update(model_name=loaded.name, model_state=state_fingerprint(module),
                    calibration=fingerprint(split.calibration), scope=SCOPE,
                    version=pqbound_version())
    keys, prev = [], None
    for s in specs:
        prev = task_key(settings=settings, layer=s.name, previous=prev)
        keys.append(prev)
    key_of = dict(zip((s.name for s in specs), keys, strict=True))
    run_id = task_key(settings=settings, layers=[s.name for s in specs])
    store = ResultStore(Path(db) if db is not None else out / "results.sqlite")
    records: dict[str, dict[str, Any]] = {}
    resumed: list[str] = []
    try:
        store.begin_run(run_id, settings, versions(), keys)
        done = store.done_keys(keys)

        def lookup(spec):
            key = key_of[spec.name]
            if key not in done:
                return None
            row = store.rows(task_key=key, solutions=True)[0]
            records[spec.name] = dict(row["info_json"], resumed=True)
            resumed.append(spec.name)
            return decode_weights(row["weights"])

        def solve(spec, export):
            W, rec = solve_layer(cfg, export, scale_cache=scale_cache)
            records[spec.name] = rec
            store.write(_row(cfg, settings, key_of[spec.name], run_id, loaded.name, rec, W))
            return W

        if len(done) < len(keys):  # load (or compile) the kernels before any timed solve
            from ..compare.warm_up import warm_up_announced

            warm_up_announced(progress, groups=warm_up_groups(cfg))
        bar = _bar(progress, len(specs))
        try:
            with _as_problem_error():
                compress_network(module, split.calibration, specs, solve, mode=cfg.mode,
                                 opt_dim=cfg.opt_dim, full_precision=cfg.full_precision,
                                 stop_early=loaded.builtin, lookup=lookup,
                                 progress=(lambda name: bar.update(1)) if bar else None,
                                 captured=captured if cfg.mode == "parallel" else None)
        finally:
            if bar is not None:
                bar.close()
        with _as_problem_error():
            _, outputs = model_outputs(module, split.heldout)
        metrics = compare_outputs(kind, ref, outputs, labels=labels, resamples=cfg.resamples,
                                  seed=cfg.seed)
        layers = [records[s.name] for s in specs]
        err, norm = sum(r["error"] for r in layers), sum(r["norm"] for r in layers)
        summary = {
            "command": "network", "model": loaded.name, "weights": cfg.weights,
            "settings": cfg.as_dict(), "method": cfg.method, "kind": cfg.kind,
            "compression": cfg.compression, "bits_per_weight": cfg.bits_per_weight,
            "density": cfg.target_density, "split": split.describe(),
            "calibration": settings["calibration"], "model_state": settings["model_state"],
            "outputs": kind, "metrics": metrics,
            "layers": layers, "layer_count": len(layers), "resumed_layers": resumed,
            "total": {"error": err, "norm": norm,
                      "weights": int(sum(r["weights"] for r in layers)),
                      "nonzeros": int(sum(r["nonzeros"] for r in layers)),
                      "solve_seconds": float(sum(r["seconds"] for r in layers))},
            "run_id": run_id,
            "state_dict": str(out / "state_dict.pt") if save_state else None,
            "seconds": round(time.perf_counter() - t0, 3), "versions": versions(),
        }
        if save_state:
            save_state_dict(module, out / "state_dict.pt")
        _write_outputs(out / "outputs.npz", kind, ref, outputs, labels)
        _write_json(out / "summary.json", summary)
        store.finish_run(run_id, {k: summary[k] for k in ("metrics", "compression", "method",
                                                           "bits_per_weight", "seconds")})
    finally:
        store.close()
    return summary


@contextmanager
def limit_threads(threads: int | None):
    """Run the body with at most ``threads`` threads in torch and in the BLAS/OpenMP pools
    (threadpoolctl); restore them afterwards. ``None`` leaves them.

    On a shared machine, threads beyond the free cores cost far more than they give: the
    threads of one BLAS call or one convolution wait for each other across scheduler time
    slices (measured on the project's 2-core machine at a load average of 4–7: one held-out
    pass of MobileNetV2 took 4.3 s with one thread against 12 s with two; a GPTQ run of the
    sweep 15 s against 115 s, its per-channel 9×9 Cholesky factorisations 0.06 ms each instead
    of 4.7 ms). The results do not depend on the thread count beyond floating-point summation
    order. (pqbound's numba kernels are serial; starting numba's OpenMP layer would reset
    torch's thread count, so it is left alone.)"""
    if threads is None:
        yield
        return
    if int(threads) != threads or threads < 1:
        raise ProblemError(f"--threads must be a positive integer, got {threads!r}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(threads)):
            yield
    finally:
        torch.set_num_threads(before)


def _row(cfg: NetworkConfig, settings: dict, key: str, run_id: str, model: str,
         rec: dict[str, Any], W: np.ndarray) -> dict[str, Any]:
    status = rec["status"]
    return {
        "task_key": key, "run_id": run_id, "model": model, "layer": rec["layer"],
        "chunk": None, "channel": -1, "scope": SCOPE, "kind": cfg.kind,
        "method": cfg.method_name, "compression": cfg.compression,
        "bits": cfg.bits if cfg.kind == "quant" else None,
        "nm": cfg.nm, "density": cfg.target_density, "n": rec["n"],
        "status": max(status, key=status.get) if status else "heuristic",
        "objective": rec["error"], "lower_bound": rec["lower_bound"], "norm": rec["norm"],
        "seconds": rec["seconds"], "nodes": 0, "method_version": settings["version"],
        "calibration": settings["calibration"], "settings_hash": run_id,
        "weights": encode_weights(W), "info_json": rec,
    }


def _write_outputs(path: Path, kind: str, ref, outputs, labels) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, kind=kind, reference=ref, compressed=outputs,
                        labels=np.asarray([] if labels is None else labels, dtype=np.int64))
    os.replace(tmp, path)


def read_outputs(path: str | os.PathLike[str]) -> tuple[str, np.ndarray, np.ndarray, Any]:
    """``(kind, reference, compressed, labels or None)`` from a run's ``outputs.npz``."""
    with np.load(path, allow_pickle=False) as z:
        labels = z["labels"] if z["labels"].size else None
        return str(z["kind"]), z["reference"], z["compressed"], labels


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_plain, allow_nan=True) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="layers", unit="layer", file=sys.stderr, leave=False,
                dynamic_ncols=True)


def warm_up_groups(cfg: NetworkConfig) -> tuple[str, ...]:
    """The kernel groups (:data:`solvers.warm_up.GROUPS`) a run with ``cfg`` (checked) can meet:
    the exact solver of its kind and the scale search, or the practical methods."""
    if cfg.method_name == "exact":
        return (cfg.kind, "scales") if cfg.kind == "quant" else (cfg.kind,)
    return ("heuristics", "scales")
