"""Solve one captured layer with the run's method: ``(H, W0)`` per chunk → the new weights.

Each chunk of the layer becomes a :class:`solvers.problem.LayerProblem` (by default one chunk:
each whole output channel is one problem) and is solved by
:func:`bounds.channel_solve.solve_quant_channels` or
:func:`~bounds.channel_solve.solve_prune_channels` (whole-layer heuristics vectorised over the
channels, certified methods channel by channel under the time limit, keeping their best
solution). Quantization scales are searched on the *whole* layer's float16-rounded weights
(MSE over 100 candidates, :func:`solvers.scales.mse_scale`), one per output channel (``scale=
"channel"``, the default) or one per layer (``"tensor"``, the paper's protocol). Pruning keeps
``round(density·n_chunk)`` weights per channel and chunk, or an N:M pattern.

The layer's figures (DESIGN.md): ``error = Σ_c (w_c − w0_c)ᵀ H (w_c − w0_c)`` and
``norm = Σ_c w0_cᵀ H w0_c`` over channels (and chunks: with ``opt_dim`` the cross terms
between chunks are not counted), ``SQNR = 10·log10(norm / error)``; a certified method's
``lower_bound`` is the sum of its channels' proved bounds.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from solvers.problem import LayerProblem, ProblemError, density_to_k
from solvers.result import _json_float, sqnr_db
from solvers.scales import mse_scale

from ..channel_solve import PruneSpec, solve_prune_channels, solve_quant_channels
from .settings import NetworkConfig


def layer_scales(W0: np.ndarray, bits: int, scale: str) -> np.ndarray:
    """One MSE scale per channel of the whole layer (equal entries for ``"tensor"``)."""
    if scale == "channel":
        return np.asarray(mse_scale(W0, bits, per_channel=True), dtype=float)
    return np.full(W0.shape[0], float(mse_scale(W0, bits)))


def cached_layer_scales(W0: np.ndarray, bits: int, scale: str,
                        cache: dict | None = None) -> np.ndarray:
    """:func:`layer_scales`, memoised in ``cache`` (a dict the caller keeps, e.g. one per
    sweep: the runs of one bit width share the scales whatever their method). The key holds a
    BLAKE2 digest of ``W0``'s bytes and its shape, so a cache never serves other weights."""
    if cache is None:
        return layer_scales(W0, bits, scale)
    import hashlib

    W0 = np.ascontiguousarray(W0, dtype=float)
    key = (hashlib.blake2b(W0.tobytes(), digest_size=16).hexdigest(), W0.shape, int(bits),
           scale)
    if key not in cache:
        cache[key] = layer_scales(W0, bits, scale)
    return cache[key].copy()


def solve_layer(cfg: NetworkConfig, export: Any, *, scale_cache: dict | None = None
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """``(W, record)`` for a :class:`layers.export.LayerExport`: the solved weight rows
    (channels × n) and the layer's figures. ``cfg`` must be :meth:`NetworkConfig.checked`.
    ``scale_cache``: see :func:`cached_layer_scales` (same scales, computed once)."""
    spec, W0 = export.spec, np.asarray(export.W0, dtype=float)
    W = np.zeros_like(W0)
    results = []
    scales = (cached_layer_scales(W0, cfg.bits, cfg.scale, scale_cache)
              if cfg.kind == "quant" else None)
    for ch in export.chunks:
        meta = {"layer": spec.name, "chunk": ch.index}
        if scales is not None:
            meta.update(scale=scales, bits=cfg.bits)
        try:
            prob = LayerProblem(ch.H, ch.W0, meta)
            if cfg.kind == "quant":
                res = solve_quant_channels(prob, bits=cfg.bits, method=cfg.method_name,
                                           time_limit=cfg.time_limit, options=cfg.options)
            else:
                pspec = PruneSpec(nm=cfg.nm) if cfg.nm is not None else PruneSpec(
                    k=density_to_k(cfg.target_density, prob.n))
                res = solve_prune_channels(prob, pspec, method=cfg.method_name,
                                           time_limit=cfg.time_limit, options=cfg.options)
        except ProblemError as exc:
            raise ProblemError(f"layer {spec.name!r}, chunk {ch.index}: {exc}") from None
        for c, r in res:
            W[c, ch.start:ch.stop] = r.weights
        results.extend(r for _, r in res)
    norm = float(sum(r.norm for r in results))
    err = float(sum(r.objective for r in results))
    bounds = [r.lower_bound for r in results]
    lb = None if any(b is None for b in bounds) else float(sum(bounds))
    record = {
        "layer": spec.name, "kind": spec.kind, "type": spec.module_type,
        "channels": int(spec.channels), "n": int(spec.n), "chunks": len(export.chunks),
        "rows": int(export.rows), "error": err, "norm": norm,
        "sqnr_db": _json_float(sqnr_db(norm, err)),
        "lower_bound": lb, "sqnr_upper_db": _json_float(sqnr_db(norm, lb)),
        "nonzeros": int(np.count_nonzero(W)), "weights": int(W.size),
        "seconds": float(sum(r.seconds for r in results)),
        "status": dict(Counter(r.status.value for r in results)),
    }
    if scales is not None:
        record["scale_min"], record["scale_max"] = float(scales.min()), float(scales.max())
    return W, record
