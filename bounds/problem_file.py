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

from .files import file_mode

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
        os.chmod(tmp, file_mode())  # mkstemp made it 0600: give it the user's umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_problem(path: str | os.PathLike[str]) -> LayerProblem:
    """Read a problem file (validating it through :class:`LayerProblem`).

    Every way a file can be wrong — missing, a folder, empty, not a zip archive (a text file
    renamed ``.npz``, a single ``.npy`` array), truncated, holding object (pickled) arrays,
    non-numeric ``H`` / ``W0`` / ``scale`` / ``levels``, a metadata key of the wrong type or
    shape, ``meta_json`` that is not a JSON object — raises :class:`ProblemError` with one line
    naming the file and the key. Nothing is ever unpickled.
    """
    path = Path(path)
    if not path.exists():
        raise ProblemError(f"problem file {str(path)!r} does not exist")
    files = _read_arrays(path)
    if not files:
        raise ProblemError(f"{path} holds no arrays (an empty .npz): not a problem file")
    if "H" not in files:
        raise ProblemError(f"{path} has no 'H' array (keys: {sorted(files)})")
    for key in ("H", "W0", "w0"):
        if key in files:
            _check_kind(path, key, files[key], "iuf", "numbers")
    if "W0" in files:
        W0 = files["W0"]
    elif "w0" in files:
        W0 = np.atleast_2d(files["w0"])
    else:
        raise ProblemError(f"{path} has neither 'W0' nor 'w0' (keys: {sorted(files)})")
    meta: dict[str, Any] = {}
    if "meta_json" in files:
        meta.update(_meta_json(path, files["meta_json"]))
    for key in SCALAR_KEYS:
        if key in files:
            value = files[key]
            if value.size != 1:
                raise ProblemError(f"{path}: {key!r} must be a single value, got shape "
                                   f"{value.shape}")
            if key == "layer":
                _check_kind(path, key, value, "U", "text")
            else:
                _check_kind(path, key, value, "iuf", "an integer")
                if not float(value.item()).is_integer():
                    raise ProblemError(f"{path}: {key!r} must be an integer, got "
                                       f"{value.item()}")
            meta[key] = value.item()
    for key in ARRAY_KEYS:
        if key in files:
            value = files[key]
            if key.startswith("dead_"):
                _check_kind(path, key, value, "b", "booleans")
            else:
                _check_kind(path, key, value, "iuf", "numbers")
            meta[key] = value.item() if value.ndim == 0 else value
    meta.setdefault("source", str(path))
    try:
        problem = LayerProblem(files["H"], W0, meta)
        if "levels" in problem.meta:
            problem.meta["levels"] = validate_levels(problem.meta["levels"], problem.n)
        return problem
    except ProblemError as exc:
        raise ProblemError(f"{path}: {exc}") from None


#: The first bytes of a zip archive (an ``.npz``): a local file header, or an empty archive.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, loaded without pickles; one-line errors."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise ProblemError(f"cannot read problem file {path}: {exc.strerror or exc}") from None
    if not head:
        raise ProblemError(f"{path} is empty (0 bytes): not a problem file")
    if head.startswith(b"\x93NUMPY"):
        raise ProblemError(f"{path} is a single .npy array, not an .npz problem file (save H "
                           "and W0 together with numpy.savez)")
    if head[:4] not in _ZIP_MAGIC:
        raise ProblemError(f"{path} is not an .npz file (not a zip archive of arrays; a text "
                           "or other file renamed?): write problem files with numpy.savez")
    files: dict[str, np.ndarray] = {}
    key = None
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                value = data[key]
                if not isinstance(value, np.ndarray):
                    raise ProblemError(f"{path}: member {key!r} is not a numpy array (a zip "
                                       "archive, but not one numpy.savez wrote)")
                files[key] = value
    except ProblemError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc) or "object" in str(exc):
            where = f"array {key!r}" if key is not None else "an array"
            raise ProblemError(f"{path}: {where} holds Python objects, which a problem file "
                               "never does (numbers and text only)") from None
        raise ProblemError(f"{path} is not a readable .npz problem file "
                           f"({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - zipfile, EOF, CRC, header errors: all one line
        what = f" (array {key!r})" if key is not None else ""
        raise ProblemError(f"{path} is a damaged or truncated .npz file{what}: "
                           f"{type(exc).__name__}: {_first_line(exc)}") from None
    return files


def _check_kind(path: Path, key: str, value: np.ndarray, kinds: str, what: str) -> None:
    """Refuse ``value`` unless its dtype kind is one of ``kinds`` (numpy's kind letters)."""
    if value.dtype.kind not in kinds:
        raise ProblemError(f"{path}: {key!r} must hold {what}, got dtype {value.dtype}")


def _meta_json(path: Path, value: np.ndarray) -> dict[str, Any]:
    if value.dtype.kind != "U" or value.size != 1:
        raise ProblemError(f"{path}: 'meta_json' must be one JSON string, got dtype "
                           f"{value.dtype} and shape {value.shape}")
    try:
        meta = json.loads(str(value.item()))
    except json.JSONDecodeError as exc:
        raise ProblemError(f"{path}: meta_json is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ProblemError(f"{path}: meta_json must be a JSON object, got "
                           f"{type(meta).__name__}")
    return meta


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in problem metadata")
