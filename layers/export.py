"""Turn a model plus calibration batches into per-layer, per-chunk ``(H, W0)`` arrays.

This is the torch side of the export; it knows nothing of solvers. ``bounds.export`` wraps the
results into :class:`solvers.problem.LayerProblem` objects with metadata and scale tables.

For each requested layer and chunk ``[start, stop)`` of its ``n`` inputs::

    H_g   = X_g[:, start:stop]ᵀ X_g[:, start:stop]    (float64, per input group g)
    W0    = weight rows restricted to [start, stop)   (float16-rounded unless full precision)
    H[c]  = H_g(c)                                    (per channel when the layer has groups)
    norm  = W0[c]ᵀ H[c] W0[c]

``dead_inputs`` marks input coordinates that never fire (``H_ii = 0``: an all-zero column of
``X``), ``dead_channels`` channels with ``norm = 0``. Both stay in the problem, marked.

A chunk with fewer calibration rows than inputs (``rows < stop − start``) has a singular ``H``
(rank ≤ rows): whole families of weights give the same error, pruning can often reach error 0,
and certified bounds may be 0 (reported as "no bound"). The export then logs a warning for each
such chunk, naming the layer, the chunk and the counts.

Example
-------
>>> import torch
>>> layer = torch.nn.Conv2d(2, 4, 3, padding=1)
>>> batches = [torch.randn(2, 2, 8, 8)]
>>> out = export_layers(layer, batches, opt_dim=None, full_precision=True)
>>> ex = out.layers[""]
>>> ex.chunks[0].H.shape, ex.W0.shape, ex.rows
((18, 18), (4, 18), 128)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from .capture import CaptureResult, accumulate
from .errors import UnknownNameError, UnsupportedLayerError, name_list
from .unfold import LayerSpec, check_unfold_mode, is_supported, layer_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ChunkExport:
    """One chunk of one layer: inputs ``[start, stop)`` of every channel's weight row."""

    index: int
    start: int
    stop: int
    H: np.ndarray  # (b, b) shared, or (C, b, b) per channel
    W0: np.ndarray  # (C, b)
    dead_inputs: np.ndarray  # (b,) shared, or (C, b) per channel
    dead_channels: np.ndarray  # (C,)
    norms: np.ndarray  # (C,)


@dataclass(frozen=True, eq=False)
class LayerExport:
    """All chunks of one layer, with the whole (rounded) weight matrix and bookkeeping."""

    spec: LayerSpec
    W0: np.ndarray  # (C, n) whole weight rows, as analysed
    chunks: list[ChunkExport]
    rows: int  # rows of X (samples × output positions, or real tokens)
    calls: int  # forward calls captured
    seconds: float  # time spent unfolding and accumulating
    weight_dtype: str  # "float16" or the module's own dtype


@dataclass(frozen=True, eq=False)
class ExportResult:
    layers: dict[str, LayerExport]
    samples: int
    fingerprint: str
    seconds: float


def exportable_layers(model: nn.Module) -> list[LayerSpec]:
    """Every supported layer of ``model`` (Linear, Conv1d, Conv2d, Conv1D), in module order."""
    return [layer_spec(name, m) for name, m in model.named_modules() if is_supported(m)]


def resolve_layers(model: nn.Module, names: Sequence[str] | None) -> list[LayerSpec]:
    """The specs of ``names`` (all exportable layers when ``None``), with clear errors."""
    modules = dict(model.named_modules())
    valid = [s.name for s in exportable_layers(model)]
    if names is None:
        if not valid:
            raise UnsupportedLayerError("the model has no Linear, Conv1d, Conv2d or Conv1D layer")
        names = valid
    if isinstance(names, str):
        names = [names]
    specs, seen = [], set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        if name not in modules:
            raise UnknownNameError(
                f"unknown layer {name!r}; exportable layers: {name_list(valid)}"
            )
        specs.append(layer_spec(name, modules[name]))
    return specs


def export_layers(
    model: nn.Module,
    batches: Iterable,
    layers: Sequence[str] | None = None,
    *,
    opt_dim: int | None = None,
    unfold: str = "exact",
    full_precision: bool = False,
    stop_early: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Accumulate ``H`` for ``layers`` of ``model`` over ``batches`` and split into chunks.

    Parameters
    ----------
    model : nn.Module
        Any module; its ``named_modules()`` names identify layers (``""`` for the model itself).
    batches : iterable
        Calibration batches: tensors, tuples (positional arguments) or mappings (keywords).
    layers : sequence of str, optional
        Layer names; all exportable layers when ``None``.
    opt_dim : int, optional
        Chunk size (the paper's ``opt_dim``); ``None`` gives one chunk per layer.
    unfold : {"exact", "kernel"}
        The unfold mode of convolutions: ``exact``, patches as the layer computes them;
        ``kernel``, ``unfold(kernel)`` alone (see :mod:`layers.unfold`).
    full_precision : bool
        Keep the weights' own precision instead of rounding them through float16.
    stop_early, progress :
        See :func:`layers.capture.accumulate`.
    """
    check_unfold_mode(unfold)
    if opt_dim is not None and (int(opt_dim) != opt_dim or opt_dim < 1):
        raise ValueError(f"opt_dim must be a positive integer, got {opt_dim!r}")
    specs = resolve_layers(model, layers)
    # Check the weights before any forward pass (NaN/inf, float16 overflow).
    weights = {s.name: s.weight_matrix(full_precision=full_precision) for s in specs}
    cap: CaptureResult = accumulate(model, batches, specs, opt_dim=opt_dim, unfold=unfold,
                                    stop_early=stop_early, require_all=layers is not None,
                                    progress=progress)
    out = {}
    for s in specs:
        if s.name not in cap.layers:
            continue
        c = cap.layers[s.name]
        W = weights[s.name]
        dtype = str(s.module.weight.dtype).replace("torch.", "")
        chunks = _chunks(s, W, c.acc.bounds, c.acc.blocks())
        _warn_rank_deficient(s.name, chunks, c.acc.rows)
        out[s.name] = LayerExport(
            spec=s, W0=W, chunks=chunks,
            rows=c.acc.rows, calls=c.calls, seconds=c.seconds,
            weight_dtype=dtype if full_precision else "float16",
        )
    return ExportResult(out, cap.samples, cap.fingerprint, cap.seconds)


def _chunks(spec: LayerSpec, W: np.ndarray, bounds, blocks) -> list[ChunkExport]:
    group = spec.channel_group
    chunks = []
    for k, ((a, b), Hg) in enumerate(zip(bounds, blocks, strict=True)):
        Hg = Hg.numpy()
        Wk = np.ascontiguousarray(W[:, a:b])
        dead_g = np.diagonal(Hg, axis1=1, axis2=2) == 0.0  # (G, b)
        if spec.groups == 1:
            H, dead = Hg[0], dead_g[0]
            norms = ((Wk @ H) * Wk).sum(axis=1)  # wᵀHw per channel (BLAS; einsum was ~10x slower)
        else:
            H, dead = Hg[group], dead_g[group]
            norms = np.einsum("ci,cij,cj->c", Wk, H, Wk)
        norms = np.maximum(norms, 0.0)
        chunks.append(ChunkExport(k, a, b, H, Wk, dead, norms == 0.0, norms))
    return chunks


def _warn_rank_deficient(layer: str, chunks: list[ChunkExport], rows: int) -> None:
    """Warn, per chunk, when ``X`` has fewer rows than the chunk has inputs (``H`` singular)."""
    for ch in chunks:
        n = ch.stop - ch.start
        if rows < n:
            log.warning("layer %s chunk %d: %d calibration rows < %d inputs, H is singular "
                        "(rank <= %d): certified bounds may be 0 ('no bound'); calibrate on "
                        "more samples", layer or "(model)", ch.index, rows, n, rows)
