"""Export per-chunk quadratic problems from real PyTorch layers (the Python API).

Joins :mod:`layers` (models, calibration data, ``H = XᵀX`` accumulation) with
:class:`solvers.problem.LayerProblem` and the problem file. For every requested layer and every
chunk of ``opt_dim`` consecutive inputs of its flattened weight rows::

    H      = X[:, a:b]ᵀ X[:, a:b]        (n_chunk × n_chunk float64; (C, n, n) with groups)
    W0     = weight rows, inputs a:b      (float16-rounded, then float64, unless full_precision)
    error(w) = (w − W0[c])ᵀ H (w − W0[c]) = ‖X w − X W0[c]‖²   (channel c, chunk only)

Each problem's ``meta`` records how it was made (``layer``, ``chunk``, ``input_start``,
``input_stop``, ``rows``, ``model``, ``protocol`` and its ``unfold`` mode, ``samples``,
``weight_dtype``, ``calibration`` fingerprint, ``kind`` …), the scale tables of the *whole* layer
(``scales_mse_tensor``, ``scales_minmax_tensor`` (16,), ``scales_mse_channel``,
``scales_minmax_channel`` (16, C), row ``bits − 1``) and the ``dead_inputs`` / ``dead_channels``
masks.

Example
-------
>>> from bounds.export import export_model, write_problems
>>> probs = export_model("mobilenet_v2", layers=["features.8.conv.0.0"], opt_dim=32,
...                      samples=8)                                  # doctest: +SKIP
>>> [p.n for p in probs["features.8.conv.0.0"]]                        # doctest: +SKIP
[32, 32]
>>> write_problems(probs, "out")                                     # doctest: +SKIP
[PosixPath('out/features.8.conv.0.0__chunk0.npz'), PosixPath('out/features.8.conv.0.0__chunk1.npz')]
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from layers.errors import LayerExportError
from solvers.problem import LayerProblem, ProblemError

from .problem_file import save_problem
from .protocols import get_protocol
from .provenance import versions

log = logging.getLogger(__name__)


class LayerInfo(NamedTuple):
    """One exportable layer, as ``pqbound layers`` lists it."""

    name: str
    type: str
    weight_shape: tuple[int, ...]
    n: int
    channels: int
    groups: int


def list_layers(model: Any = "mobilenet_v2", *, weights: Any = None) -> list[LayerInfo]:
    """Every exportable layer of ``model`` (a reference or an ``nn.Module``), in order.

    ``model`` is anything :func:`resolve` takes. ``n`` is the number of inputs each output
    channel sees (the length of a weight row): ``in_features`` for Linear, ``(C_in/groups)·kh·kw``
    for Conv2d.
    """
    from layers.export import exportable_layers

    module = resolve(model, weights=weights).module
    with _as_problem_error():
        return [
            LayerInfo(s.name, s.module_type, tuple(int(d) for d in s.weight_shape), s.n,
                      s.channels, s.groups)
            for s in exportable_layers(module)
        ]


def export_model(
    model: Any = "mobilenet_v2",
    *,
    layers: Sequence[str] | str | None = None,
    samples: int = 64,
    opt_dim: int | None = None,
    protocol: str = "exact",
    full_precision: bool = False,
    images: str | os.PathLike[str] | None = None,
    text: str | os.PathLike[str] | None = None,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = False,
    inputs: Any = None,
    state_dict: Any = None,
    scale_bits: Sequence[int] | None = None,
    max_length: int = 128,
) -> dict[str, list[LayerProblem]]:
    """Export ``layers`` of ``model`` as per-chunk problems, in memory.

    Parameters
    ----------
    model : str or nn.Module
        A built-in name (``"mobilenet_v2"``, ``"efficientnet_lite0"``, ``"minilm"``: see
        :data:`layers.models.MODEL_NAMES`), ``"hf:PATH"`` (a local Hugging Face checkpoint
        folder), ``"module:factory"`` / ``"path/to/file.py:factory"`` (your own module), any
        ``nn.Module``, or a :class:`layers.models.LoadedModel` from :func:`resolve`.
    layers : str or sequence of str, optional
        Module names (``pqbound layers`` lists them); every exportable layer when ``None``.
    samples : int
        Number of built-in calibration samples (photo crops or sentences, or the first images of
        ``images``). Ignored with ``inputs``, which are used whole.
    opt_dim : int, optional
        Split each weight row into consecutive chunks of ``opt_dim`` inputs (the paper used
        32); one chunk per layer when ``None``.
    protocol : {"exact", "paper"}
        The protocol (:mod:`bounds.protocols`) whose unfold mode builds conv patches:
        ``exact``, as the layer computes them (stride, padding and padding mode, dilation,
        groups); ``paper``, ``unfold(kernel_size)`` alone, as the reference code of Kuzmin et
        al. 2023 did. Its other settings (samples, chunks, box) are ``pqbound compare``'s.
    full_precision : bool
        Analyse the weights in their own precision instead of rounding them through float16.
    images, text : path, optional
        A folder of images (image models) or a UTF-8 file of sentences, one per line (text
        models, through the model's tokenizer), instead of the built-in calibration set; a
        user module takes either.
    seed : int
        Seed of the random crops and flips.
    batch_size : int
        Samples per forward pass.
    progress : bool
        Show tqdm progress bars on stderr.
    inputs : path, tensor, tuple, dict or iterable of batches, optional
        Calibration inputs for any model (a user module needs these, ``images`` or ``text``): a
        file (:func:`layers.calibration.read_inputs`: ``torch.save``'d tensor / tuple / dict of
        tensors, ``.npy``, ``.npz``) or a tensor or dict of tensors, split along the first
        dimension into ``batch_size`` batches; or an iterable (a list, a generator …) yielding
        tensors, tuples of positional arguments or mappings of keyword arguments.
    state_dict : mapping or path, optional
        Weights to load into the module first (``strict=True``, in place; the first missing
        and unexpected keys are named otherwise); a path is a ``torch.save``'d state dict
        (``weights_only=True``) or a ``.safetensors`` file.
    scale_bits : sequence of int, optional
        Bit widths whose whole-tensor scale tables are computed (default: all of 1..16; the rows
        of other widths are NaN). The per-channel MSE search is most of an export's time on wide
        layers, so a run that knows its bit widths should pass them.
    max_length : int
        Tokens per sequence of text calibration (longer sentences are truncated).

    Returns
    -------
    dict
        Layer name → list of :class:`~solvers.problem.LayerProblem`, one per chunk, in order.

    Raises
    ------
    ProblemError
        Unknown model or layer (the valid names are listed), a reference that cannot be loaded
        (no checkpoint, a factory that fails, weights that do not match), unsupported layer
        type, NaN/inf in weights or activations, calibration data that does not fit the model,
        missing weights.
    """
    from layers.export import export_layers

    unfold = get_protocol(protocol).unfold
    if opt_dim is not None and (isinstance(opt_dim, bool) or int(opt_dim) != opt_dim
                                or opt_dim < 1):
        raise ProblemError(f"opt_dim must be a positive integer, got {opt_dim!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ProblemError(f"batch_size must be a positive integer, got {batch_size!r}")
    loaded = resolve(model, weights=state_dict)
    module, name = loaded.module, loaded.name
    calib = calibration(loaded, samples=samples, batch_size=batch_size, seed=seed,
                        images=images, text=text, inputs=inputs, max_length=max_length)
    source = getattr(calib, "source", "inputs")
    with _as_problem_error():
        total = getattr(calib, "samples", None)
        bar = _bar(progress, total, "calibration", "sample")
        try:
            result = export_layers(
                module, calib, layers, opt_dim=opt_dim, unfold=unfold,
                full_precision=full_precision, stop_early=loaded.builtin,
                progress=bar.update if bar is not None else None,
            )
        finally:
            if bar is not None:
                bar.close()
    out: dict[str, list[LayerProblem]] = {}
    bar = _bar(progress, len(result.layers), "problems", "layer")
    for lname, ex in result.layers.items():
        t0 = time.perf_counter()
        tables = _scale_tables(ex.W0, lname, scale_bits)
        base = {
            "layer": lname,
            "rows": int(ex.rows),
            "model": name,
            "protocol": protocol,
            "unfold": unfold,
            "samples": int(result.samples),
            "weight_dtype": ex.weight_dtype,
            "calibration": result.fingerprint,
            "calibration_source": source,
            "seed": int(seed),
            "kind": ex.spec.kind,
            "module_type": ex.spec.module_type,
            "weight_shape": [int(d) for d in ex.spec.weight_shape],
            "channels": int(ex.spec.channels),
            "groups": int(ex.spec.groups),
            "layer_n": int(ex.spec.n),
            "opt_dim": None if opt_dim is None else int(opt_dim),
            "chunks": len(ex.chunks),
            "accumulate_seconds": round(float(ex.seconds), 6),
            **tables,
        }
        probs = []
        for ch in ex.chunks:
            meta = dict(base, chunk=ch.index, input_start=ch.start, input_stop=ch.stop,
                        dead_inputs=ch.dead_inputs, dead_channels=ch.dead_channels)
            try:
                probs.append(LayerProblem(ch.H, ch.W0, meta))
            except ProblemError as exc:
                raise ProblemError(f"layer {lname!r}, chunk {ch.index}: {exc}") from None
            if ch.dead_channels.any() or ch.dead_inputs.any():
                log.info("layer %s chunk %d: %d dead inputs, %d dead channels", lname, ch.index,
                         int(np.count_nonzero(ch.dead_inputs)), int(ch.dead_channels.sum()))
        for p in probs:
            p.meta["problem_seconds"] = round(time.perf_counter() - t0, 6)
        out[lname] = probs
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def problem_filename(layer: str, chunk: int) -> str:
    """``<layer>__chunk<k>.npz`` (the module itself, named ``""``, becomes ``model``)."""
    safe = (layer or "model").replace(os.sep, "_").replace("/", "_")
    return f"{safe}__chunk{int(chunk)}.npz"


def write_problems(
    problems: Mapping[str, Sequence[LayerProblem]], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write every chunk problem to ``out_dir/<layer>__chunk<k>.npz``; return the paths.

    The folder is created if needed; :class:`ProblemError` if it cannot be written to. Each file
    is written atomically (temporary file, then rename), so an interrupted export leaves only
    complete files.
    """
    out = check_writable(out_dir)
    paths = []
    for layer, probs in problems.items():
        for p in probs:
            paths.append(save_problem(out / problem_filename(layer, p.meta.get("chunk", 0)), p))
    return paths


def check_writable(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed and check a file can be written there."""
    out = Path(out_dir)
    try:
        if out.exists() and not out.is_dir():
            raise OSError(f"{out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".pqbound-write-test")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ProblemError(f"cannot write to output folder {str(out)!r}: {exc}") from None
    return out


def summary(problems: Mapping[str, Sequence[LayerProblem]]) -> dict[str, Any]:
    """A JSON-able record of an export: settings and, per layer, shapes, rows and dead counts."""
    layers = {}
    head: dict[str, Any] = {}
    for layer, probs in problems.items():
        if not probs:
            continue
        m = probs[0].meta
        head = {k: m.get(k) for k in ("model", "protocol", "unfold", "samples", "weight_dtype",
                                      "calibration", "calibration_source", "seed", "opt_dim")}
        layers[layer] = {
            "kind": m.get("kind"),
            "type": m.get("module_type"),
            "weight_shape": m.get("weight_shape"),
            "n": m.get("layer_n"),
            "channels": probs[0].channels,
            "chunks": len(probs),
            "rows": m.get("rows"),
            "dead_inputs": int(sum(np.count_nonzero(p.meta["dead_inputs"]) for p in probs)),
            "dead_channels": int(sum(np.count_nonzero(p.meta["dead_channels"]) for p in probs)),
            "accumulate_seconds": m.get("accumulate_seconds"),
        }
    return {**head, "layers": layers}


def write_manifest(problems: Mapping[str, Sequence[LayerProblem]],
                   out_dir: str | os.PathLike[str], extra: dict | None = None) -> Path:
    """Write ``export.json`` (see :func:`summary`) next to the problem files."""
    doc = summary(problems)
    doc["versions"] = versions()
    if extra:
        doc.update(extra)
    path = Path(out_dir) / "export.json"
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------


def resolve(model: Any, *, weights: Any = None):
    """:func:`layers.models.resolve_model` with :class:`ProblemError` for every bad input.

    ``weights`` is a state-dict file, or a mapping of name → tensor, loaded strictly.
    """
    from layers.models import resolve_model
    from layers.models.weights import load_weights_into

    with _as_problem_error():
        if isinstance(weights, Mapping):
            loaded = resolve_model(model)
            load_weights_into(loaded.module, weights, source="state_dict")
            return loaded
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise ProblemError(f"state_dict must be a mapping or a path, got "
                               f"{type(weights).__name__}")
        return resolve_model(model, weights=weights)


def calibration(model: Any, **options: Any):
    """The calibration batches :func:`export_model` would use for ``model`` (a reference or a
    :class:`layers.models.LoadedModel`); ``options`` are those of
    :func:`layers.calibration.make_calibration` (``samples``, ``batch_size``, ``seed``,
    ``images``, ``text``, ``inputs``, ``max_length``). :class:`ProblemError` on bad input."""
    from layers.calibration import make_calibration

    loaded = resolve(model)
    with _as_problem_error():
        return make_calibration(loaded, **options)


def _scale_tables(W: np.ndarray, layer: str, bits: Sequence[int] | None,
                  ) -> dict[str, np.ndarray]:
    from solvers.scales import scale_tables

    try:
        return scale_tables(W, bits)
    except ProblemError as exc:
        raise ProblemError(f"layer {layer!r}: {exc}") from None


def _bar(progress: bool, total, desc: str, unit: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True)


class _as_problem_error:
    """Context manager: re-raise :class:`layers.errors.LayerExportError` as ProblemError."""

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is not None and isinstance(exc, LayerExportError) and not isinstance(
            exc, ProblemError
        ):
            raise ProblemError(str(exc)) from exc
        return False
