"""Pruning vs quantization on the weight tensors of real models (the paper's model-zoo study).

For one weight tensor ``w`` (flattened, ``n`` entries), after conversion to FP16 (the baseline
dtype; the math then runs in float64 on the FP16 values):

* ``kurtosis``: sample excess kurtosis, Fisher and biased,
  ``scipy.stats.kurtosis(w, fisher=True, bias=True) = m4/m2² − 3`` with central sample moments.
* **Quantization**, per-tensor symmetric on the signed grid of :mod:`solvers.grid`
  (``zmin = −2^(b−1)``, ``zmax = 2^(b−1) − 1``), ``q = s·clip(rint(w/s), zmin, zmax)``, with the
  MSE-optimal scale ``s* = argmin_s Σ(q − w)²`` (:func:`mse_optimal_scale`: 8000 candidates
  ``s = r·s_minmax``, ``s_minmax = max|w|/zmax``, ``r`` equally spaced in ``(0, 2]``, each
  evaluated exactly by :func:`solvers.scales.mse_scale`, then a bounded Brent polish between
  the best candidate's neighbours; the optimum of a small tensor can lie above
  ``s_minmax``, where nothing is clipped but the rounding pattern is better).
  ``quant_sqnr_db = 10·log10(Σw² / Σ(q − w)²)``; ``quant_zero_fraction`` = fraction of zero
  codes.
* **Magnitude pruning** at equal compression: keep the ``k = round(n·b/16)`` largest ``|w|``
  (:func:`solvers.problem.density_to_k`), zero the rest: ``prune_sqnr_db = 10·log10(Σw² /
  Σ_pruned w²)``.
* **Corrected pruning**: the same with keep ratio ``(1 − quant_zero_fraction)·b/16``, crediting
  the zeros quantization produces for free (``prune_sqnr_corrected_db``).

An SQNR is ``math.inf`` when the error is exactly zero (``null`` in JSON). Tensors that have no
SQNR or kurtosis raise :class:`~solvers.problem.ProblemError`: empty, non-finite, beyond the FP16
range, all zero (signal power 0) or constant (zero variance: kurtosis undefined).

Example
-------
>>> import numpy as np
>>> w = np.random.default_rng(0).standard_normal(4096)
>>> r = analyse_tensor(w, bits=[4])
>>> r.bits[4].quant_sqnr_db > r.bits[4].prune_sqnr_db
True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from solvers.grid import round_to_grid
from solvers.problem import ProblemError, density_to_k, validate_bits
from solvers.scales import mse_scale

log = logging.getLogger(__name__)

#: Default bit widths of the tensor study.
DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)
#: Candidates of the scale search: ratios of the min-max scale, equally spaced in (0, MAX_RATIO].
SCALE_CANDIDATES = 8000
#: Largest ratio searched. Small tensors can have their optimum above the min-max scale
#: (MobileNetV2 ``features.0.0`` at 8 bits: 1.029·s_minmax gives 37.29 dB, the best scale
#: <= s_minmax 37.15 dB), so the search goes to twice it.
MAX_RATIO = 2.0
_FP16_MAX = float(np.finfo(np.float16).max)


# -------------------------------------------------------------------------- single tensor


def to_fp16(w: Any, *, name: str = "tensor") -> np.ndarray:
    """Flatten, round to float16 (the baseline dtype), return float64; check it is usable."""
    w = np.asarray(w)
    if w.size == 0:
        raise ProblemError(f"{name}: empty tensor")
    w64 = w.astype(np.float64).ravel()
    if not np.all(np.isfinite(w64)):
        raise ProblemError(f"{name}: contains NaN or infinite entries")
    if float(np.max(np.abs(w64))) > _FP16_MAX:
        raise ProblemError(f"{name}: values beyond the FP16 range (±{_FP16_MAX:g})")
    return w64.astype(np.float16).astype(np.float64)


def sample_kurtosis(w: np.ndarray) -> float:
    """Excess sample kurtosis (Fisher, biased): ``m4/m2² − 3``."""
    return float(stats.kurtosis(np.asarray(w, dtype=np.float64).ravel(), fisher=True,
                                bias=True))


def quant_sse(w: np.ndarray, scale: float, bits: int) -> tuple[float, float]:
    """``(Σ(q − w)², zero fraction of the codes)`` at ``scale`` (round-to-nearest, ties even)."""
    codes = round_to_grid(w, scale, bits)
    err = float(np.sum((scale * codes - w) ** 2))
    return err, float(np.mean(codes == 0))


def mse_optimal_scale(w: np.ndarray, bits: int, *, candidates: int = SCALE_CANDIDATES,
                      max_ratio: float = MAX_RATIO) -> float:
    """Per-tensor MSE-optimal scale on the signed grid (see the module docstring).

    :func:`solvers.scales.mse_scale` at the study's resolution: ratios of the min-max scale
    ``max|w|/zmax`` in ``(0, MAX_RATIO]``, 4000 candidates per unit ratio, each evaluated
    exactly, then a Brent polish. An all-zero tensor gets 1.0.
    """
    return float(mse_scale(np.asarray(w, dtype=np.float64).ravel(), bits,
                           candidates=candidates, max_ratio=max_ratio))


def prune_sse(w_sq_sorted: np.ndarray, keep: float) -> float:
    """``Σ`` of the ``n − k`` smallest squares, ``k = round(keep·n)`` (magnitude pruning)."""
    n = w_sq_sorted.size
    k = density_to_k(min(max(keep, 0.0), 1.0), n)
    return float(np.sum(w_sq_sorted[: n - k]))


def _db(power: float, err: float) -> float:
    return math.inf if err <= 0.0 else 10.0 * math.log10(power / err)


@dataclass(frozen=True)
class TensorBits:
    """One tensor at one bit width."""

    bits: int
    scale: float
    quant_sqnr_db: float
    quant_zero_fraction: float
    prune_sqnr_db: float
    prune_sqnr_corrected_db: float

    @property
    def quant_wins(self) -> bool:
        return self.quant_sqnr_db > self.prune_sqnr_db

    def to_dict(self) -> dict[str, Any]:
        return {
            "quant_sqnr_db": _finite_or_none(self.quant_sqnr_db),
            "quant_zero_fraction": self.quant_zero_fraction,
            "prune_sqnr_db": _finite_or_none(self.prune_sqnr_db),
            "prune_sqnr_corrected_db": _finite_or_none(self.prune_sqnr_corrected_db),
            "scale": self.scale,
        }


@dataclass(frozen=True)
class TensorResult:
    """One weight tensor: kurtosis and one :class:`TensorBits` per bit width."""

    name: str
    shape: tuple[int, ...]
    kurtosis: float
    bits: dict[int, TensorBits] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "kurtosis": _finite_or_none(self.kurtosis),
            "shape": list(self.shape),
            "bits": {str(b): r.to_dict() for b, r in sorted(self.bits.items())},
        }

    @classmethod
    def from_dict(cls, name: str, doc: dict[str, Any]) -> TensorResult:
        """Inverse of :meth:`to_dict` (``null`` SQNRs become ``inf``)."""
        def num(x):
            return math.inf if x is None else float(x)

        bits = {
            int(b): TensorBits(int(b), float(r.get("scale", math.nan)), num(r["quant_sqnr_db"]),
                               float(r["quant_zero_fraction"]), num(r["prune_sqnr_db"]),
                               num(r["prune_sqnr_corrected_db"]))
            for b, r in doc["bits"].items()
        }
        k = doc["kurtosis"]
        return cls(name, tuple(doc.get("shape", ())), math.nan if k is None else float(k), bits)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def analyse_tensor(w: Any, bits: Iterable[int] = DEFAULT_BITS, *, name: str = "tensor",
                   fp16: bool = True) -> TensorResult:
    """Kurtosis, quantization and (corrected) pruning SQNRs of one weight tensor.

    ``fp16=False`` skips the FP16 rounding (the values are used as float64).
    """
    shape = tuple(int(d) for d in np.shape(w))
    if fp16:
        v = to_fp16(w, name=name)
    else:
        v = np.asarray(w, dtype=np.float64).ravel()
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ProblemError(f"{name}: empty tensor or non-finite entries")
    power = float(np.sum(v * v))
    if power == 0.0:
        raise ProblemError(f"{name}: all-zero tensor: the signal power is 0, so no SQNR exists")
    if float(np.max(v)) == float(np.min(v)):
        raise ProblemError(f"{name}: constant tensor ({v.size} entries equal to {v[0]:g}): zero "
                           "variance, so the kurtosis is undefined (and quantization is exact)")
    bits = sorted({validate_bits(b) for b in bits})
    kurt = sample_kurtosis(v)
    sq_sorted = np.sort(v * v)
    out: dict[int, TensorBits] = {}
    for b in bits:
        s = mse_optimal_scale(v, b)
        err_q, zf = quant_sse(v, s, b)
        keep = b / 16.0
        out[b] = TensorBits(
            bits=b,
            scale=s,
            quant_sqnr_db=_db(power, err_q),
            quant_zero_fraction=zf,
            prune_sqnr_db=_db(power, prune_sse(sq_sorted, keep)),
            prune_sqnr_corrected_db=_db(power, prune_sse(sq_sorted, (1.0 - zf) * keep)),
        )
    return TensorResult(name, shape, kurt, out)


# -------------------------------------------------------------------------- models


def _is_weight_layer(module: Any) -> bool:
    import torch.nn as nn

    if isinstance(module, nn.Linear | nn.modules.conv._ConvNd):
        return True
    # transformers' GPT-2 style ``Conv1D`` is a Linear layer with a transposed weight
    return type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None \
        and getattr(module.weight, "ndim", 0) == 2


def module_weights(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    """``(module name, weight)`` for every Conv (any dim, transposed too), Linear and
    transformers ``Conv1D`` module."""
    for name, module in model.named_modules():
        if _is_weight_layer(module) and getattr(module, "weight", None) is not None:
            yield name, module.weight.detach().cpu().float().numpy()


def state_dict_weights(state: dict[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    """Conv/Linear-shaped weights of a state dict: keys ``<module>.weight`` with 2 to 5 dims.

    Keys whose module name contains ``embed`` are skipped: embedding tables are 2-D but are
    not Linear layers.
    """
    for key, value in state.items():
        if not key.endswith(".weight") and key != "weight":
            continue
        ndim = len(getattr(value, "shape", ()))
        module = key[: -len(".weight")] if key.endswith(".weight") else ""
        if not 2 <= ndim <= 5 or "embed" in module.lower():
            continue
        arr = value.detach().cpu().float().numpy() if hasattr(value, "detach") else value
        yield module, np.asarray(arr)


def load_weights(source: Any) -> list[tuple[str, np.ndarray]]:
    """The Conv/Linear weight tensors of ``source``.

    ``source`` is a model reference (a built-in name of :data:`layers.models.MODEL_NAMES`,
    ``hf:PATH``, ``module:factory``: via :func:`layers.models.resolve_model`), a
    ``torch.nn.Module``, a state dict, or a path to a torch checkpoint (``torch.save`` of a
    state dict, of ``{"state_dict": …}`` / ``{"model": …}``, or of a whole module) or a
    ``.safetensors`` file.
    """
    if isinstance(source, dict):
        return list(state_dict_weights(source))
    if hasattr(source, "named_modules"):
        return list(module_weights(source))
    name = str(source)
    from pathlib import Path

    path = Path(name)
    if path.exists():
        return list(_load_path(path))
    from layers.errors import UnknownNameError
    from layers.models import resolve_model

    try:
        model = resolve_model(name).module
    except UnknownNameError as exc:
        raise ProblemError(f"{exc}, or an existing checkpoint file") from exc
    except ValueError as exc:  # layers' errors are ValueErrors with clear messages
        raise ProblemError(str(exc)) from exc
    return list(module_weights(model))


def _load_path(path: Any) -> Iterator[tuple[str, np.ndarray]]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError as exc:  # pragma: no cover - optional
            raise ProblemError("reading .safetensors needs the safetensors package") from exc
        return state_dict_weights(load_file(str(path)))
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - retry for pickled whole modules
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ProblemError(f"{path}: not a readable torch checkpoint ({first})") from exc
    if hasattr(obj, "named_modules"):
        return module_weights(obj)
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj = inner
                break
            if hasattr(inner, "named_modules"):
                return module_weights(inner)
        return state_dict_weights(obj)
    raise ProblemError(f"{path}: expected a state dict or a module, got {type(obj).__name__}")


@dataclass
class ModelStudy:
    """All analysed tensors of a model (in order) and the skipped ones with their reasons."""

    tensors: dict[str, TensorResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: tensor name → :meth:`TensorResult.to_dict`."""
        return {name: r.to_dict() for name, r in self.tensors.items()}

    def bit_widths(self) -> list[int]:
        return sorted({b for r in self.tensors.values() for b in r.bits})

    def summary(self) -> list[dict[str, Any]]:
        """Per bit width: in how many tensors quantization wins (plain and corrected)."""
        rows = []
        for b in self.bit_widths():
            rs = [r.bits[b] for r in self.tensors.values() if b in r.bits]
            diffs = [x.quant_sqnr_db - x.prune_sqnr_db for x in rs
                     if math.isfinite(x.quant_sqnr_db - x.prune_sqnr_db)]
            rows.append({
                "bits": b,
                "tensors": len(rs),
                "quant_wins": sum(x.quant_sqnr_db > x.prune_sqnr_db for x in rs),
                "quant_wins_corrected": sum(
                    x.quant_sqnr_db > x.prune_sqnr_corrected_db for x in rs),
                "median_gap_db": float(np.median(diffs)) if diffs else math.nan,
            })
        return rows


def analyse_model(source: Any, bits: Iterable[int] = DEFAULT_BITS, *,
                  progress: bool = False, done: dict[str, TensorResult] | None = None,
                  on_tensor: Callable[[ModelStudy], None] | None = None) -> ModelStudy:
    """Analyse every Conv/Linear weight tensor of ``source`` (see :func:`load_weights`).

    ``done`` holds results of an earlier, interrupted run (tensors with all requested bit
    widths are reused); ``on_tensor(study)`` is called after every tensor (the CLI writes its
    JSON file there, so an interruption loses nothing). Tensors that cannot be analysed are
    skipped with their reason in ``study.skipped`` and a logged warning.
    """
    bits = sorted({validate_bits(b) for b in bits})
    weights = load_weights(source)
    if not weights:
        raise ProblemError(f"{source!r}: no Conv or Linear weight tensors found")
    study = ModelStudy()
    done = done or {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(weights), unit="tensor", desc="tensors", leave=False)
    try:
        for name, w in weights:
            prev = done.get(name)
            if prev is not None and all(b in prev.bits for b in bits):
                study.tensors[name] = TensorResult(prev.name, prev.shape, prev.kurtosis,
                                                   {b: prev.bits[b] for b in bits})
            else:
                try:
                    study.tensors[name] = analyse_tensor(w, bits, name=name)
                except ProblemError as exc:
                    study.skipped[name] = str(exc)
                    log.warning("skipped %s", exc)
            if on_tensor is not None:
                on_tensor(study)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return study
