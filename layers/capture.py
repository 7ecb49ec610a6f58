"""Run calibration batches through a model and feed each requested layer's inputs to its
:class:`~layers.hessian.HessianAccumulator` via forward pre-hooks.

Nothing is stored but the accumulators: each hook unfolds its layer's input in bounded slices
and adds ``XᵀX`` at once. A module called several times in one forward pass (shared weights)
accumulates every call. For text batches (a mapping with an ``attention_mask``) only the rows of
real tokens enter Linear/Conv1D layers whose input is (batch, tokens, features).

The calibration *fingerprint* is a SHA-256 over the inputs as the model received them (for text:
each sequence's real tokens), independent of the batch size, so results computed from different
calibration sets never mix.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import CalibrationError, LayerExportError
from .hessian import HessianAccumulator
from .unfold import LayerSpec, patches

log = logging.getLogger(__name__)


class _Stop(Exception):
    """Raised by the last hook of a pass to skip the rest of the forward."""


@dataclass
class LayerCapture:
    """The accumulator of one layer plus bookkeeping."""

    spec: LayerSpec
    acc: HessianAccumulator
    calls: int = 0
    seconds: float = 0.0


@dataclass
class CaptureResult:
    layers: dict[str, LayerCapture]
    samples: int
    fingerprint: str
    seconds: float
    batches: int = 0
    forward_seconds: float = field(default=0.0)


def accumulate(
    model: nn.Module,
    batches: Iterable,
    specs: list[LayerSpec],
    *,
    opt_dim: int | None = None,
    unfold: str = "exact",
    stop_early: bool = False,
    require_all: bool = True,
    progress: Callable[[int], None] | None = None,
) -> CaptureResult:
    """Accumulate ``H`` for every layer in ``specs`` over all ``batches``.

    Parameters
    ----------
    model : nn.Module
        Called as ``model(batch)`` for a tensor, ``model(*batch)`` for a tuple/list and
        ``model(**batch)`` for a mapping, under ``torch.no_grad()`` in eval mode.
    batches : iterable
        Calibration batches (first dimension = samples).
    specs : list of LayerSpec
        The layers to capture.
    opt_dim : int, optional
        Chunk size of the accumulators (see :class:`~layers.hessian.HessianAccumulator`).
    unfold : {"exact", "kernel"}
        The unfold mode of convolutions (see :mod:`layers.unfold`).
    stop_early : bool
        Cut each forward pass short once every requested layer has run (only valid when no layer
        runs twice per pass, as in the built-in models).
    require_all : bool
        Raise when a requested layer never runs; otherwise drop it from the result with a
        warning (used when exporting "all layers": e.g. ``nn.MultiheadAttention.out_proj`` is
        applied through its weight, never called).
    progress : callable, optional
        Called with the number of samples of each finished batch.
    """
    caps = {
        s.name: LayerCapture(s, HessianAccumulator(s.groups, s.n, opt_dim)) for s in specs
    }
    state: dict = {"mask": None, "seen": set()}

    def make_hook(cap: LayerCapture):
        def hook(module, args, kwargs=None):
            if not args:
                raise LayerExportError(f"layer {cap.spec.name!r} was called without inputs")
            t0 = time.perf_counter()
            for At in patches(cap.spec, args[0], unfold=unfold, row_mask=state["mask"]):
                cap.acc.update(At)
            cap.calls += 1
            cap.seconds += time.perf_counter() - t0
            state["seen"].add(cap.spec.name)
            if stop_early and len(state["seen"]) == len(caps):
                raise _Stop

        return hook

    handles = [c.spec.module.register_forward_pre_hook(make_hook(c)) for c in caps.values()]
    digest = hashlib.sha256()
    samples = nbatches = 0
    t_start = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                size = _batch_size(batch)
                _hash_batch(digest, batch)
                state["mask"] = batch.get("attention_mask") if isinstance(batch, Mapping) else None
                state["seen"] = set()
                try:
                    _call(model, batch)
                except _Stop:
                    pass
                except LayerExportError:
                    raise
                except (RuntimeError, TypeError, ValueError, IndexError) as exc:
                    raise CalibrationError(
                        f"calibration batch {nbatches} ({_describe(batch)}) does not fit the "
                        f"model: {exc}"
                    ) from exc
                samples += size
                nbatches += 1
                if progress is not None:
                    progress(size)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if nbatches == 0:
        raise CalibrationError("no calibration data: the batches were empty")
    missing = [name for name, c in caps.items() if c.calls == 0]
    if missing and not require_all and len(missing) < len(caps):
        log.warning("skipping layer(s) that never ran in the forward pass: %s",
                    ", ".join(missing))
        caps = {k: v for k, v in caps.items() if v.calls}
    elif missing:
        raise LayerExportError(
            f"layer(s) {', '.join(missing)} never ran during the calibration forward pass "
            f"(called through their weights directly, or not on the path of the inputs)"
        )
    total = time.perf_counter() - t_start
    log.info("captured %d layers over %d samples in %.2f s", len(caps), samples, total)
    return CaptureResult(caps, samples, "sha256:" + digest.hexdigest()[:16], total, nbatches)


def _call(model: nn.Module, batch) -> None:
    if isinstance(batch, torch.Tensor):
        model(batch)
    elif isinstance(batch, Mapping):
        model(**batch)
    elif isinstance(batch, (tuple, list)):
        model(*batch)
    else:
        raise CalibrationError(
            f"a calibration batch must be a tensor, a tuple of tensors or a mapping of "
            f"keyword tensors, got {type(batch).__name__}"
        )


def _batch_size(batch) -> int:
    first = batch
    if isinstance(batch, Mapping):
        first = next(iter(batch.values()), None)
    elif isinstance(batch, (tuple, list)):
        first = batch[0] if batch else None
    if not isinstance(first, torch.Tensor) or first.ndim == 0:
        raise CalibrationError(
            f"a calibration batch must hold tensors with a leading batch dimension, got "
            f"{_describe(batch)}"
        )
    return int(first.shape[0])


def _describe(batch) -> str:
    if isinstance(batch, torch.Tensor):
        return f"tensor {tuple(batch.shape)}"
    if isinstance(batch, Mapping):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in batch.items()) + "}"
    if isinstance(batch, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in batch) + ")"
    return type(batch).__name__


def _hash_batch(digest, batch) -> None:
    if isinstance(batch, Mapping) and "attention_mask" in batch and "input_ids" in batch:
        ids, mask = batch["input_ids"], batch["attention_mask"].to(torch.bool)
        for row, m in zip(ids, mask, strict=True):
            digest.update(row[m].to(torch.int64).numpy().tobytes())
            digest.update(b"|")
        return
    tensors = (
        list(batch.values()) if isinstance(batch, Mapping)
        else list(batch) if isinstance(batch, (tuple, list)) else [batch]
    )
    tensors = [t.detach().cpu().contiguous() for t in tensors if isinstance(t, torch.Tensor)]
    for i in range(_batch_size(batch)):  # per sample: independent of the batch size
        for t in tensors:
            digest.update(f"{t.dtype}{tuple(t.shape[1:])}".encode())
            digest.update(t[i].numpy().tobytes())
