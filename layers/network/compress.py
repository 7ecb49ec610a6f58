"""Compress a network layer by layer: capture, solve (a callback), write the weights back.

For each chosen layer ``ℓ`` (in module order) the callback receives the layer's
:class:`~layers.export.LayerExport` (``H`` per chunk, ``W0`` rounded through float16 unless
full precision) and returns the new weight rows ``W`` (channels × n), which are written into the
module (reshaped to the weight's own layout and dtype; biases and every other tensor unchanged).

* ``mode="sequential"`` (default): ``H_ℓ = X_ℓᵀX_ℓ`` where ``X_ℓ`` are the inputs layer ``ℓ``
  receives when the calibration data runs through the network whose layers before ``ℓ`` are
  already compressed (one forward pass per layer, cut short after ``ℓ`` when the model runs each
  layer once). This is what GPTQ and SparseGPT do on real models.
* ``mode="parallel"``: every ``H_ℓ`` from the original network (one pass over all layers); the
  weights are written after every layer has been captured.

A ``lookup`` callback may return a layer's weights without solving (a resumed run): they are
written and the layer is not captured.

Example
-------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
>>> batches = [torch.randn(8, 3)]
>>> done = compress_network(net, batches, select_layers(net),
...                         lambda spec, ex: ex.W0.round())
>>> sorted(done)
['0', '2']
>>> bool((net[0].weight == net[0].weight.round()).all())
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import UnknownNameError, UnsupportedLayerError, name_list
from ..export import LayerExport, export_layers, exportable_layers
from ..unfold import LayerSpec, layer_spec

MODES = ("sequential", "parallel")

SolveFn = Callable[[LayerSpec, LayerExport], np.ndarray]
LookupFn = Callable[[LayerSpec], "np.ndarray | None"]


def select_layers(model: nn.Module, layers: Sequence[str] | None = None,
                  skip: Sequence[str] | None = None) -> list[LayerSpec]:
    """The conv and linear layers to compress, in module order.

    ``layers``: only these (default: every Linear, Conv1d, Conv2d and transformers Conv1D
    layer); ``skip``: minus these. A name that is not a module raises
    :class:`~layers.errors.UnknownNameError` (listing the valid names), a module of another type
    :class:`~layers.errors.UnsupportedLayerError`; an empty selection is an error too.
    """
    modules = dict(model.named_modules())
    valid = [s.name for s in exportable_layers(model)]
    for name in list(layers or []) + list(skip or []):
        if name not in modules:
            raise UnknownNameError(f"unknown layer {name!r}; conv/linear layers: "
                                   f"{name_list(valid)}")
        layer_spec(name, modules[name])  # UnsupportedLayerError for other module types
    chosen = set(valid if not layers else layers) - set(skip or [])
    specs = [s for s in exportable_layers(model) if s.name in chosen]
    if not specs:
        raise UnsupportedLayerError("no conv or linear layer left to compress (check --layer "
                                    "and --skip)")
    return specs


def set_weight_matrix(spec: LayerSpec, W: np.ndarray) -> None:
    """Write ``W`` (channels × n rows, as :meth:`LayerSpec.weight_matrix` gives them) into the
    layer's weight, in its own shape and dtype."""
    W = np.asarray(W, dtype=np.float64)
    if W.shape != (spec.channels, spec.n):
        raise ValueError(f"layer {spec.name!r}: weights of shape {W.shape}, expected "
                         f"({spec.channels}, {spec.n})")
    if not np.all(np.isfinite(W)):
        raise ValueError(f"layer {spec.name!r}: the new weights contain NaN or inf")
    weight = spec.module.weight
    t = torch.from_numpy(W)
    t = t.t() if spec.kind == "transformer_conv1d" else t
    with torch.no_grad():
        weight.copy_(t.reshape(weight.shape).to(weight.dtype))


def compress_network(
    model: nn.Module,
    batches: Iterable,
    specs: Sequence[LayerSpec],
    solve: SolveFn,
    *,
    mode: str = "sequential",
    opt_dim: int | None = None,
    unfold: str = "exact",
    full_precision: bool = False,
    stop_early: bool = False,
    lookup: LookupFn | None = None,
    progress: Callable[[str], None] | None = None,
    captured: dict[str, LayerExport] | None = None,
) -> dict[str, np.ndarray]:
    """Compress ``specs`` of ``model`` in place; returns layer name → the weights written.

    ``batches`` must be re-iterable (a list): sequential mode runs it once per layer.
    ``stop_early`` cuts each pass after the captured layer(s) (only valid when every layer runs
    once per forward pass, as in the built-in models). ``progress`` is called with each finished
    layer's name. ``captured`` (parallel mode only): the layers' exports from the original
    network, captured once beforehand (e.g. by :func:`capture_original` for a sweep); the
    layers missing from it are captured here.
    """
    if captured is not None and mode != "parallel":
        raise ValueError("captured exports serve the parallel mode only")
    captured = dict(captured or {})
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    batches = list(batches)
    done: dict[str, np.ndarray] = {}
    pending: list[LayerSpec] = []
    for spec in specs:
        W = lookup(spec) if lookup is not None else None
        if W is not None:
            done[spec.name] = np.asarray(W, dtype=np.float64)
            if mode == "sequential":
                set_weight_matrix(spec, done[spec.name])
            if progress is not None:
                progress(spec.name)
        else:
            pending.append(spec)
        if mode == "sequential" and pending:
            s = pending.pop()
            ex = export_layers(model, batches, [s.name], opt_dim=opt_dim, unfold=unfold,
                               full_precision=full_precision, stop_early=stop_early)
            done[s.name] = _checked(s, solve(s, ex.layers[s.name]))
            set_weight_matrix(s, done[s.name])
            if progress is not None:
                progress(s.name)
    if mode == "parallel":
        missing = [s.name for s in pending if s.name not in captured]
        if missing:
            captured.update(capture_original(model, batches, missing, opt_dim=opt_dim,
                                             unfold=unfold, full_precision=full_precision,
                                             stop_early=stop_early))
        for s in pending:
            done[s.name] = _checked(s, solve(s, captured[s.name]))
            if progress is not None:
                progress(s.name)
        for s in specs:
            set_weight_matrix(s, done[s.name])
    return {s.name: done[s.name] for s in specs}


def capture_original(model: nn.Module, batches: Iterable, names: Sequence[str], *,
                     opt_dim: int | None = None, unfold: str = "exact",
                     full_precision: bool = False, stop_early: bool = False
                     ) -> dict[str, LayerExport]:
    """The exports of ``names`` from ``model`` as it is (one pass over ``batches``)."""
    ex = export_layers(model, list(batches), list(names), opt_dim=opt_dim, unfold=unfold,
                       full_precision=full_precision, stop_early=stop_early)
    return dict(ex.layers)


def _checked(spec: LayerSpec, W: np.ndarray) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    if W.shape != (spec.channels, spec.n):
        raise ValueError(f"the solve callback returned shape {W.shape} for layer {spec.name!r}, "
                         f"expected ({spec.channels}, {spec.n})")
    return W


def state_fingerprint(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) over the model's state dict (names, shapes, dtypes, bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else
                      t.float().numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the state dict (restore with ``model.load_state_dict(snap)``)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save_state_dict(model: nn.Module, path) -> None:
    """``torch.save(model.state_dict())`` to ``path`` atomically (a temporary file, renamed):
    exactly the model's keys, loadable with ``load_state_dict(strict=True)``."""
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)
