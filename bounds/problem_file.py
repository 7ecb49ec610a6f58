"""The problem file: one ``.npz`` per layer chunk, readable and writable with numpy alone.

Keys (see docs/problem-file.md)::

    H             (n, n) float64, or (C, n, n) where channels see different inputs
    W0            (C, n) float64 original weights (a single-channel file may carry w0 (n,))
    layer         str    module name, e.g. "features.8.conv.0.0"
    chunk         int    chunk index (0 when the layer is not chunked)
    input_start   int    first input coordinate of the block in the flattened weight row
    input_stop    int    one past the last
    rows          int    number of calibration rows X has
    scale, bits   optional: a given quantization scale (scalar or per channel) and bit width
    levels        optional (L,) or (n, L) float64: the allowed values of every weight (shared,
                  or per input with group scales and zero points baked in), sorted, instead
                  of scale/bits; ``pqbound solve quant`` then solves over them
    scales_mse_tensor, scales_minmax_tensor        optional (16,): per-tensor scales for bits
    scales_mse_channel, scales_minmax_channel      1..16 (row b-1), computed on the *whole*
                                                   weight tensor / rows, not just this chunk
    dead_inputs   optional (n,) bool: inputs that never fire (all-zero column of X)
    dead_channels optional (C,) bool: channels with norm w0ᵀHw0 = 0
    meta_json     optional str: any further metadata as JSON (model, protocol, samples, …)

Files are read with ``allow_pickle=False``: a problem file can never run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from solvers.problem import LayerProblem, ProblemError, validate_levels

#: Scalar metadata keys stored as their own arrays.
SCALAR_KEYS = ("layer", "chunk", "input_start", "input_stop", "rows", "bits")
#: Array metadata keys stored as their own arrays.
ARRAY_KEYS = (
    "scale",
    "scales_mse_tensor",
    "scales_minmax_tensor",
    "scales_mse_channel",
    "scales_minmax_channel",
    "dead_inputs",
    "dead_channels",
    "levels",
)


def save_problem(path: str | os.PathLike[str], problem: LayerProblem) -> Path:
    """Write ``problem`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    arrays: dict[str, Any] = {"H": problem.H, "W0": problem.W0}
    extra: dict[str, Any] = {}
    for key, value in problem.meta.items():
        if key in SCALAR_KEYS:
            arrays[key] = np.asarray(value)
        elif key in ARRAY_KEYS:
            arrays[key] = np.asarray(value)
        else:
            extra[key] = value
    arrays["meta_json"] = np.asarray(json.dumps(extra, default=_json_default, sort_keys=True))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    except OSError as exc:
        raise ProblemError(f"cannot write problem file in {path.parent}: {exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_problem(path: str | os.PathLike[str]) -> LayerProblem:
    """Read a problem file (validating it through :class:`LayerProblem`)."""
    path = Path(path)
    if not path.exists():
        raise ProblemError(f"problem file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ProblemError(f"{path} is not a readable .npz problem file: {exc}") from None
    if "H" not in files:
        raise ProblemError(f"{path} has no 'H' array (keys: {sorted(files)})")
    if "W0" in files:
        W0 = files["W0"]
    elif "w0" in files:
        W0 = np.atleast_2d(files["w0"])
    else:
        raise ProblemError(f"{path} has neither 'W0' nor 'w0' (keys: {sorted(files)})")
    meta: dict[str, Any] = {}
    if "meta_json" in files:
        try:
            meta.update(json.loads(str(files["meta_json"])))
        except json.JSONDecodeError as exc:
            raise ProblemError(f"{path}: meta_json is not valid JSON: {exc}") from None
    for key in SCALAR_KEYS:
        if key in files:
            meta[key] = files[key].item()
    for key in ARRAY_KEYS:
        if key in files:
            value = files[key]
            meta[key] = value.item() if value.ndim == 0 else value
    meta.setdefault("source", str(path))
    try:
        problem = LayerProblem(files["H"], W0, meta)
        if "levels" in problem.meta:
            problem.meta["levels"] = validate_levels(problem.meta["levels"], problem.n)
        return problem
    except ProblemError as exc:
        raise ProblemError(f"{path}: {exc}") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in problem metadata")
