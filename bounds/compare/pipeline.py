"""The per-layer comparison: export → plan tasks → solve (resumably) → whole-layer figures.

:func:`run_compare` is the Python API behind ``pqbound compare``. For each selected layer, chunk,
channel and bit width ``b`` it solves

* quantization at ``b`` bits with every quantization method (certified ones give the lower
  bound; ``exact`` gives the optimum where it finishes);
* pruning at the density the accounting rule matches to ``b`` bits (``b/16`` by default) with
  every pruning method, and at each requested N:M pattern;
* for layers whose chunks are all in the run, the block problems of the whole-channel split
  (:mod:`solvers.whole_channel`), from which certified bounds on each whole output channel
  follow;

stores every result as it finishes (:class:`~bounds.compare.store.ResultStore`), and derives the
whole-channel figures (stitched solutions evaluated on the full ``H``, and the certified bounds).
Re-running the same command resumes: rows already stored are not solved again.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.problem import LayerProblem, ProblemError, density_to_k, quadratic_error
from solvers.registry import get_method, methods
from solvers.whole_channel import BlockSplit, block_split, block_sum_bound, budget_bound

from ..protocols import get_protocol
from ..provenance import pqbound_version, versions
from . import tables
from .accounting import ACCOUNTINGS, prune_density, zero_fraction
from .executors import make_executor
from .store import ResultStore
from .tasks import Task, array_hash, task_key

log = logging.getLogger(__name__)

#: Representative layers used when none is given (see docs/compare.md).
DEFAULT_LAYERS: dict[str, list[str]] = {
    "mobilenet_v2": [
        "features.0.0",        # 3×3 stem conv, 3 → 32 channels, stride 2 (n = 27)
        "features.2.conv.0.0",  # 1×1 expansion conv, 16 → 96 (n = 16)
        "features.2.conv.1.0",  # 3×3 depthwise conv, stride 2 (n = 9 per channel)
        "features.2.conv.2",   # 1×1 projection conv, 96 → 24 (n = 96: three 32-chunks)
        "classifier.1",        # the classifier, 1280 → 1000 (n = 1280: forty 32-chunks)
    ],
    "minilm": [
        "encoder.layer.0.attention.self.query",  # attention projection, 384 → 384
        "encoder.layer.0.intermediate.dense",    # MLP expansion, 384 → 1536
        "encoder.layer.0.output.dense",          # MLP projection, 1536 → 384
    ],
}

DEFAULT_BITS: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
DEFAULT_QUANT_METHODS: tuple[str, ...] = ("exact", "rtn", "gptq", "adaround")
DEFAULT_PRUNE_METHODS: tuple[str, ...] = ("exact", "magnitude", "obs", "sparsegpt")


@dataclass
class CompareConfig:
    """Settings of one comparison run (every field is written at the top of the report)."""

    model: str = "mobilenet_v2"
    layers: list[str] | None = None
    bits: tuple[int, ...] = DEFAULT_BITS
    opt_dim: int | None = 32
    channels: int | None = 2  # per layer; None: all channels
    max_chunks: int | None = 3  # per layer; None: all chunks
    quant_methods: tuple[str, ...] = DEFAULT_QUANT_METHODS
    prune_methods: tuple[str, ...] = DEFAULT_PRUNE_METHODS
    nm: tuple[tuple[int, int], ...] = ()
    time_limit: float | None = 1.0
    protocol: str = "exact"
    accounting: str = "paper"
    samples: int = 32
    seed: int = 0
    whole_layer: bool = True
    whole_direct: bool = True  # also run the certified method on each whole channel
    construction: str = "auto"
    batch_size: int = 16
    images: str | None = None
    text: str | None = None

    def resolved(self) -> CompareConfig:
        """Apply the protocol's forced settings and check everything."""
        proto = get_protocol(self.protocol)
        cfg = CompareConfig(**{**self.__dict__})
        if proto.samples is not None:
            cfg.samples = proto.samples
        if proto.opt_dim is not None:
            cfg.opt_dim = proto.opt_dim
        if proto.accounting is not None and cfg.accounting != proto.accounting:
            log.warning("protocol %s uses %s accounting", proto.name, proto.accounting)
            cfg.accounting = proto.accounting
        if cfg.accounting not in ACCOUNTINGS:
            raise ProblemError(f"unknown accounting {cfg.accounting!r}; valid: {ACCOUNTINGS}")
        cfg.bits = tuple(sorted({int(b) for b in cfg.bits}))
        if not cfg.bits or any(not 1 <= b <= 16 for b in cfg.bits):
            raise ProblemError(f"bits must lie in 1..16, got {list(self.bits)}")
        if cfg.opt_dim is not None and cfg.opt_dim < 1:
            raise ProblemError(f"opt_dim must be >= 1, got {cfg.opt_dim}")
        if cfg.channels is not None and cfg.channels < 1:
            raise ProblemError(f"channels must be >= 1, got {cfg.channels}")
        if cfg.max_chunks is not None and cfg.max_chunks < 1:
            raise ProblemError(f"max_chunks must be >= 1, got {cfg.max_chunks}")
        if cfg.time_limit is not None and not cfg.time_limit > 0:
            raise ProblemError(f"time_limit must be > 0, got {cfg.time_limit}")
        if cfg.samples < 1:
            raise ProblemError(f"samples must be >= 1, got {cfg.samples}")
        cfg.nm = tuple((int(a), int(b)) for a, b in cfg.nm)
        for N, M in cfg.nm:
            if M < 1 or not 0 <= N <= M:
                raise ProblemError(f"N:M pattern needs 0 <= N <= M, got {N}:{M}")
        check_methods(cfg.quant_methods, cfg.prune_methods)
        return cfg

    @property
    def box_factor(self) -> float | None:
        return get_protocol(self.protocol).box_factor

    def settings(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items()}
        d["bits"] = list(self.bits)
        d["nm"] = [f"{a}:{b}" for a, b in self.nm]
        d["quant_methods"] = list(self.quant_methods)
        d["prune_methods"] = list(self.prune_methods)
        d["box_factor"] = self.box_factor
        d["protocol_detail"] = get_protocol(self.protocol).to_dict()
        return d


def check_methods(quant: Sequence[str], prune: Sequence[str]) -> None:
    """Fail at start-up, with one clear message, if any requested method cannot be loaded."""
    bad = []
    for kind, names in (("quant", quant), ("prune", prune)):
        for name in names:
            try:
                get_method(kind, name).load()
            except (ImportError, AttributeError, ProblemError) as exc:
                bad.append(f"{kind} {name} ({type(exc).__name__}: {exc})")
    if bad:
        avail = {kind: [m.name for m in methods(kind) if _loads(m)] for kind in ("quant", "prune")}
        raise ProblemError(
            "these methods are not available here: " + "; ".join(bad)
            + f". Available: quant {', '.join(avail['quant']) or '-'}; "
            f"prune {', '.join(avail['prune']) or '-'} (choose with --methods)"
        )


def _loads(m: Any) -> bool:
    try:
        m.load()
        return True
    except (ImportError, AttributeError, ProblemError):
        return False


def parse_methods(names: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``["exact", "rtn", "prune:obs"]`` → quant and prune method tuples.

    A bare name goes to every kind that registers it (``exact`` to both); ``quant:NAME`` or
    ``prune:NAME`` picks one kind.
    """
    quant: list[str] = []
    prune: list[str] = []
    for raw in names:
        kind, _, name = raw.rpartition(":")
        kinds = [kind] if kind else ["quant", "prune"]
        hit = False
        for k in kinds:
            if k not in ("quant", "prune"):
                raise ProblemError(f"method {raw!r}: kind must be quant or prune")
            if any(m.name == name for m in methods(k)):
                (quant if k == "quant" else prune).append(name)
                hit = True
        if not hit:
            valid = sorted({m.name for k in ("quant", "prune") for m in methods(k)})
            raise ProblemError(f"unknown method {raw!r}; valid: {', '.join(valid)}")
    return tuple(dict.fromkeys(quant)), tuple(dict.fromkeys(prune))


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------


@dataclass
class LayerPlan:
    """What the run does on one layer."""

    layer: str
    problem: LayerProblem  # the full layer (no chunks)
    chunks: list[tuple[int, int]]
    chunk_ids: list[int]
    channels: list[int]
    whole: bool  # all chunks in the run: whole-channel figures are derived
    scales: dict[int, np.ndarray]
    densities: dict[int, float]
    zero_fractions: dict[int, float]
    splits: dict[int, BlockSplit] = field(default_factory=dict)
    note: str = ""

    def chunk_k(self, bits: int, chunk: int) -> int:
        a, b = self.chunks[chunk]
        return density_to_k(self.densities[bits], b - a)


def plan_layer(layer: str, problem: LayerProblem, cfg: CompareConfig) -> LayerPlan:
    from bounds.scale_choice import choose_scales
    from layers.hessian import chunk_bounds  # layers' own chunking (imports torch: lazily)

    chunks = chunk_bounds(problem.n, cfg.opt_dim)
    rng = np.random.default_rng([cfg.seed, zlib.crc32(layer.encode())])
    if problem.shared_hessian:  # w0ᵀHw0 per channel through one BLAS product
        norms = np.einsum("ci,ci->c", problem.W0 @ problem.H, problem.W0)
    else:
        norms = np.einsum("ci,cij,cj->c", problem.W0, problem.H, problem.W0)
    live = [c for c in range(problem.channels) if norms[c] > 0]
    if cfg.channels is None or cfg.channels >= len(live):
        chans = live
    else:
        chans = sorted(int(c) for c in rng.choice(live, size=cfg.channels, replace=False))
    if cfg.max_chunks is None or cfg.max_chunks >= len(chunks):
        chunk_ids = list(range(len(chunks)))
    else:
        chunk_ids = sorted(int(i) for i in rng.choice(len(chunks), cfg.max_chunks,
                                                     replace=False))
    whole = cfg.whole_layer and len(chunk_ids) == len(chunks)
    note = ""
    if cfg.whole_layer and not whole:
        note = (f"whole-channel bound not computed: {len(chunk_ids)} of {len(chunks)} chunks "
                "in this run (use --all-chunks)")
    if len(live) < problem.channels:
        note += f"{'; ' if note else ''}{problem.channels - len(live)} dead channels skipped"
    scales, dens, zfs = {}, {}, {}
    for b in cfg.bits:
        scales[b] = choose_scales(problem, b)
        zfs[b] = zero_fraction(problem.W0, scales[b], b)
        dens[b] = prune_density(b, cfg.accounting, zero_fraction=zfs[b])
    plan = LayerPlan(layer, problem, chunks, chunk_ids, chans, whole, scales, dens, zfs,
                     note=note)
    if whole and len(chunks) > 1:
        for c in chans:
            plan.splits[c] = block_split(problem.hessian(c), chunks,
                                         construction=cfg.construction)
    return plan


def build_tasks(plan: LayerPlan, cfg: CompareConfig, model_name: str, calibration: str
                ) -> list[Task]:
    """Every solve the run needs on one layer (chunk problems and whole-layer blocks)."""
    P = plan.problem
    out: list[Task] = []
    version = pqbound_version()
    settings_hash = task_key(settings={k: v for k, v in cfg.settings().items()
                                       if k not in ("layers", "images", "text")})[:16]

    def make(kind: str, method: str, scope: str, chunk: int, c: int, comp: str,
             H: np.ndarray, w0: np.ndarray, a: int, b: int, ph: str, **kw: Any) -> Task:
        key = task_key(problem=ph, kind=kind, method=method, scope=scope, compression=comp,
                       time_limit=cfg.time_limit, version=version,
                       **{k: v for k, v in kw.items() if k != "validate"})
        return Task(key=key, kind=kind, method=method, scope=scope, model=model_name,
                    layer=plan.layer, chunk=chunk, channel=c, compression=comp, H=H, w0=w0,
                    input_start=a, input_stop=b, time_limit=cfg.time_limit,
                    problem_hash=ph, calibration=calibration, settings_hash=settings_hash,
                    **kw)

    for c in plan.channels:
        Hc = P.hessian(c)
        w0 = P.W0[c]
        for ci in plan.chunk_ids:
            a, b = plan.chunks[ci]
            H, w = np.ascontiguousarray(Hc[a:b, a:b]), np.ascontiguousarray(w0[a:b])
            ph = array_hash(H, w)
            amax = float(np.max(np.abs(w)))
            box = None if cfg.box_factor is None or amax == 0 else cfg.box_factor * amax
            for bits in cfg.bits:
                comp = f"{bits}bit"
                s = float(plan.scales[bits][c])
                for m in cfg.quant_methods:
                    out.append(make("quant", m, "chunk", ci, c, comp, H, w, a, b, ph,
                                    bits=bits, scale=s))
                k = density_to_k(plan.densities[bits], b - a)
                for m in cfg.prune_methods:
                    out.append(make("prune", m, "chunk", ci, c, comp, H, w, a, b, ph,
                                    bits=bits, k=k, density=plan.densities[bits], box=box))
            for N, M in cfg.nm:
                if (b - a) % M:
                    continue
                for m in cfg.prune_methods:
                    out.append(make("prune", m, "chunk", ci, c, f"nm{N}:{M}", H, w, a, b, ph,
                                    nm=(N, M), k=(b - a) // M * N, density=N / M, box=box))
        split = plan.splits.get(c)
        if split is None:
            continue
        qb = bound_method(cfg.quant_methods, "quant")
        pb = bound_method(cfg.prune_methods, "prune")
        amax = float(np.max(np.abs(w0)))
        box = None if cfg.box_factor is None or amax == 0 else cfg.box_factor * amax
        kmax = max(sum(plan.chunk_k(bits, i) for i in range(len(plan.chunks)))
                   for bits in cfg.bits)
        # The certified method on the whole channel directly (time-limited): its bound is
        # certified too, and its solution is feasible for the whole channel.
        n = P.n
        phw = array_hash(Hc, w0)
        if cfg.whole_direct:
            for bits in cfg.bits:
                if qb:
                    out.append(make("quant", qb, "whole", -1, c, f"{bits}bit", Hc, w0, 0, n,
                                    phw, bits=bits, scale=float(plan.scales[bits][c])))
                if pb:
                    K = sum(plan.chunk_k(bits, i) for i in range(len(plan.chunks)))
                    out.append(make("prune", pb, "whole", -1, c, f"{bits}bit", Hc, w0, 0, n,
                                    phw, bits=bits, k=K, density=plan.densities[bits],
                                    box=box))
            for N, M in cfg.nm:
                if pb and all((y - x) % M == 0 for x, y in plan.chunks):
                    out.append(make("prune", pb, "whole", -1, c, f"nm{N}:{M}", Hc, w0, 0, n,
                                    phw, nm=(N, M), k=n // M * N, density=N / M, box=box))
        for i, ((a, b), B) in enumerate(zip(plan.chunks, split.blocks, strict=True)):
            w = np.ascontiguousarray(w0[a:b])
            ph = array_hash(B, w)
            if qb:
                for bits in cfg.bits:
                    out.append(make("quant", qb, "block", i, c, f"{bits}bit", B, w, a, b, ph,
                                    bits=bits, scale=float(plan.scales[bits][c]),
                                    validate=True))
            if pb:
                for k in range(1, min(b - a - 1, kmax) + 1):
                    out.append(make("prune", pb, "block", i, c, f"k={k}", B, w, a, b, ph,
                                    k=k, box=box, validate=True))
                for N, M in cfg.nm:
                    if all((y - x) % M == 0 for x, y in plan.chunks):
                        out.append(make("prune", pb, "block", i, c, f"nm{N}:{M}", B, w, a, b,
                                        ph, nm=(N, M), k=(b - a) // M * N, density=N / M,
                                        box=box, validate=True))
    return out


def bound_method(names: Sequence[str], kind: str) -> str | None:
    """The certified method used for lower bounds: ``exact`` if requested, else the first
    certified one, else ``None``."""
    cert = [n for n in names if get_method(kind, n).certified]
    if "exact" in cert:
        return "exact"
    return cert[0] if cert else None


# --------------------------------------------------------------------------------------------
# Whole-channel figures (derived on the client from stored rows and the full H)
# --------------------------------------------------------------------------------------------


def whole_rows(plan: LayerPlan, cfg: CompareConfig, store: ResultStore, run_id: str,
               model_name: str, calibration: str) -> list[dict[str, Any]]:
    """Stitched errors and certified bounds for every whole channel of a fully covered layer."""
    if not plan.whole:
        return []
    rows = store.rows(run_id, solutions=True, layer=plan.layer)
    by: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        by[(r["scope"], r["kind"], r["method"], r["compression"], r["chunk"], r["channel"])] = r
    out = []
    P = plan.problem
    qb = bound_method(cfg.quant_methods, "quant")
    pb = bound_method(cfg.prune_methods, "prune")
    comps = [(f"{b}bit", b) for b in cfg.bits] + [(f"nm{N}:{M}", None) for N, M in cfg.nm]
    nchunks = len(plan.chunks)
    for c in plan.channels:
        H, w0 = P.hessian(c), P.W0[c]
        norm = max(0.0, float(w0 @ H @ w0))
        split = plan.splits.get(c)
        ph = array_hash(H, w0)
        for comp, bits in comps:
            for kind, names in (("quant", cfg.quant_methods), ("prune", cfg.prune_methods)):
                if kind == "quant" and bits is None:
                    continue
                best = math.inf
                for m in names:
                    parts = [by.get(("chunk", kind, m, comp, i, c)) for i in range(nchunks)]
                    if any(p is None or p["status"] == "error" or not p.get("weights")
                           for p in parts):
                        continue
                    w = np.concatenate([np.asarray(p["weights"], dtype=float) for p in parts])
                    err = quadratic_error(H, w0, w)
                    best = min(best, err)
                    out.append(_derived(plan, model_name, calibration, run_id, ph, c, kind,
                                        f"stitched {m}", comp, bits, norm, err, None, "stitched",
                                        {"from": "chunk solutions evaluated on the full H"},
                                        parts))
                obj = best if math.isfinite(best) else None
                bound = _whole_bound(plan, by, c, kind, comp, bits, split,
                                     qb if kind == "quant" else pb, obj)
                if bound is None:
                    continue
                lb, info = bound
                out.append(_derived(plan, model_name, calibration, run_id, ph, c, kind,
                                    "block-split bound",
                                    comp, bits, norm, obj, lb, "certified", info, None))
    return out


def _whole_bound(plan: LayerPlan, by: dict, c: int, kind: str, comp: str, bits: int | None,
                 split: BlockSplit | None, method: str | None, objective: float | None
                 ) -> tuple[float, dict] | None:
    """The stored block (or chunk) bounds of channel ``c`` as arrays, through
    :mod:`solvers.whole_channel`; ``None`` when a needed row is missing or has no bound."""
    if method is None:
        return None
    nchunks = len(plan.chunks)
    if split is None:  # a single chunk: the chunk problem is the whole problem
        r = by.get(("chunk", kind, method, comp, 0, c))
        if nchunks != 1 or r is None or r["lower_bound"] is None:
            return None
        lb, info = block_sum_bound([float(r["lower_bound"])], objective=objective)
    elif kind == "quant" or comp.startswith("nm"):
        rows = [by.get(("block", kind, method, comp, i, c)) for i in range(nchunks)]
        if any(r is None or r["lower_bound"] is None for r in rows):
            return None
        lb, info = block_sum_bound([float(r["lower_bound"]) for r in rows], split,
                                   objective=objective)
    else:
        solved = []
        for i, (a, b) in enumerate(plan.chunks):
            known = {}
            for k in range(1, b - a):
                r = by.get(("block", kind, method, f"k={k}", i, c))
                if r is not None and r["lower_bound"] is not None:
                    known[k] = float(r["lower_bound"])
            solved.append(known)
        K = sum(plan.chunk_k(bits, i) for i in range(nchunks))
        lb, info = budget_bound(split, plan.problem.W0[c], solved, K, objective=objective)
    info["method"] = method
    return lb, info


def _derived(plan: LayerPlan, model: str, calibration: str, run_id: str, ph: str, c: int,
             kind: str, method: str, comp: str, bits: int | None, norm: float,
             obj: float | None, lb: float | None, status: str, info: dict,
             parts: list | None) -> dict[str, Any]:
    src = sorted(p["task_key"] for p in parts) if parts else []
    key = task_key(problem=ph, kind=kind, method=method, scope="whole", compression=comp,
                   run=run_id if not parts else None, parts=src)
    weights = None
    if parts:
        weights = [x for p in parts for x in p["weights"]]
    return {
        "task_key": key, "run_id": run_id, "model": model, "layer": plan.layer, "chunk": -1,
        "channel": c, "scope": "whole", "kind": kind, "method": method, "compression": comp,
        "bits": bits, "n": plan.problem.n, "input_start": 0, "input_stop": plan.problem.n,
        "status": status, "objective": obj, "lower_bound": lb, "norm": norm, "seconds": 0.0,
        "nodes": 0, "method_version": f"pqbound {pqbound_version()}", "problem_hash": ph,
        "calibration": calibration, "message": "", "weights": weights, "info_json": info,
    }


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------


@dataclass
class CompareSummary:
    """What :func:`run_compare` returns: counts, the per-layer tables, where things are."""

    run_id: str
    db: str
    settings: dict[str, Any]
    layers: list[dict[str, Any]]
    tasks: int
    reused: int
    solved: int
    errors: int
    seconds: float
    report: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "db": self.db, "tasks": self.tasks, "reused": self.reused,
            "solved": self.solved, "errors": self.errors, "seconds": self.seconds,
            "report": self.report, "notes": self.notes, "settings": self.settings,
            "layers": self.layers,
        }

    def text(self) -> str:
        """The per-layer verdicts as plain text for the terminal."""
        return tables.summary_text(self.layers, self.settings)


def export_layers(cfg: CompareConfig, model: Any, progress: bool, inputs: Any = None
                  ) -> dict[str, LayerProblem]:
    """Full-layer problems (no chunks) from the layer exporter."""
    from bounds.export import export_model

    layers = cfg.layers
    name = model if isinstance(model, str) else None
    if not layers:
        if name not in DEFAULT_LAYERS:
            raise ProblemError(
                f"no default layer set for model {model!r}: pass layers (--layer NAME)")
        layers = DEFAULT_LAYERS[name]
    proto = get_protocol(cfg.protocol)
    probs = export_model(model, layers=list(layers), samples=cfg.samples, opt_dim=None,
                         protocol=cfg.protocol, full_precision=proto.full_precision,
                         images=cfg.images, text=cfg.text, seed=cfg.seed,
                         batch_size=cfg.batch_size, progress=progress, inputs=inputs,
                         scale_bits=cfg.bits)
    out = {}
    for layer in layers:
        plist = probs[layer]
        if len(plist) != 1:
            raise ProblemError(f"exporter returned {len(plist)} chunks for {layer} with "
                               "opt_dim=None (expected the whole layer)")
        out[layer] = plist[0]
    return out


def calibration_fingerprint(problem: LayerProblem) -> str:
    for key in ("calibration", "calibration_fingerprint", "calibration_hash"):
        if key in problem.meta:
            return str(problem.meta[key])
    return ""


def run_compare(
    model: Any = "mobilenet_v2",
    *,
    config: CompareConfig | None = None,
    db: str | os.PathLike[str] = "pqbound-results.sqlite",
    report: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    problems: dict[str, LayerProblem] | None = None,
    inputs: Any = None,
    progress: bool = False,
    **settings: Any,
) -> CompareSummary:
    """Run (or resume) a comparison; return its :class:`CompareSummary`.

    Parameters
    ----------
    model : str or torch.nn.Module
        ``"mobilenet_v2"``, ``"minilm"`` or a module (with ``layers=`` given).
    config : CompareConfig, optional
        All settings; or pass them as keywords (``bits=(2, 4)``, ``channels=2``, …).
    db : path
        The SQLite results store (created if absent; resumed if it holds this run).
    report : path, optional
        Write the Markdown/HTML report with plots to this folder at the end.
    workers : int, optional
        Local processes (default ``os.cpu_count()``; 1 runs in this process).
    scheduler : str, optional
        ``tcp://host:port`` of a Dask scheduler instead of local processes.
    problems : dict, optional
        Full-layer :class:`LayerProblem` s by layer name, instead of exporting ``model``
        (hand-made problems, tests).
    inputs : tensor or iterable of batches, optional
        Calibration batches for a user ``nn.Module`` (see :func:`bounds.export.export_model`).
    progress : bool
        A tqdm bar on stderr.

    Examples
    --------
    >>> s = run_compare("mobilenet_v2", layers=["features.0.0"], bits=(4,),
    ...                 channels=1, db="r.sqlite")          # doctest: +SKIP
    >>> s.layers[0]["verdicts"]                                # doctest: +SKIP
    """
    t_start = time.perf_counter()
    if config is None:
        config = CompareConfig(model=model if isinstance(model, str) else type(model).__name__,
                               **settings)
    elif settings:
        raise TypeError("give either config= or keyword settings, not both")
    cfg = config.resolved()
    model_name = cfg.model
    executor = make_executor(workers, scheduler)  # fail early on a bad scheduler
    try:
        store = ResultStore(db)
        try:
            if problems is None:
                problems = export_layers(cfg, model, progress, inputs)
            plans = [plan_layer(name, p, cfg) for name, p in problems.items()]
            cal = {pl.layer: calibration_fingerprint(pl.problem) for pl in plans}
            tasks = [t for pl in plans for t in build_tasks(pl, cfg, model_name, cal[pl.layer])]
            settings_d = cfg.settings()
            settings_d["layer_problems"] = {
                pl.layer: {"hash": array_hash(pl.problem.H, pl.problem.W0),
                           "calibration": cal[pl.layer], "n": pl.problem.n,
                           "channels_total": pl.problem.channels,
                           "channels": pl.channels, "chunks": len(pl.chunks),
                           "chunk_ids": pl.chunk_ids, "whole": pl.whole, "note": pl.note,
                           "densities": {str(b): pl.densities[b] for b in cfg.bits},
                           "zero_fractions": {str(b): pl.zero_fractions[b] for b in cfg.bits},
                           "rows": pl.problem.meta.get("rows"),
                           "splits": {str(c): s.info() for c, s in pl.splits.items()}}
                for pl in plans}
            settings_d["executor"] = {"kind": executor.name, "workers": executor.workers,
                                      "scheduler": scheduler}
            run_id = task_key(settings={k: v for k, v in settings_d.items()
                                        if k != "executor"})[:16]
            settings_d["run_id"] = run_id
            store.begin_run(run_id, settings_d, versions(), (t.key for t in tasks))
            done = store.done_keys([t.key for t in tasks])
            todo = [t for t in tasks if t.key not in done]
            log.info("run %s: %d tasks, %d already stored, %d to solve", run_id, len(tasks),
                     len(done), len(todo))
            solved, errors = _execute(executor, todo, store, run_id, progress, len(done))
            derived = []
            for pl in plans:
                derived.extend(whole_rows(pl, cfg, store, run_id, model_name, cal[pl.layer]))
            for row in derived:
                store.write(row)
            store.add_run_tasks(run_id, (r["task_key"] for r in derived))
            layer_tables = tables.layer_tables(store.rows(run_id), settings_d)
            summary = CompareSummary(
                run_id=run_id, db=str(db), settings=settings_d, layers=layer_tables,
                tasks=len(tasks), reused=len(done), solved=solved, errors=errors,
                seconds=time.perf_counter() - t_start,
                notes=[f"{pl.layer}: {pl.note}" for pl in plans if pl.note])
            store.finish_run(run_id, {"tasks": len(tasks), "reused": len(done),
                                      "solved": solved, "errors": errors,
                                      "seconds": summary.seconds})
        finally:
            store.close()
    finally:
        executor.close()
    if report is not None:
        from .report import build_report

        summary.report = str(build_report(db, report, run_id=run_id))
    return summary


def _execute(executor: Any, todo: list[Task], store: ResultStore, run_id: str,
             progress: bool, reused: int) -> tuple[int, int]:
    """Run ``todo``, writing each row as it arrives; return (solved, errors)."""
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="solving", unit="problem", file=sys.stderr,
                   dynamic_ncols=True, postfix={"stored before": reused})
    solved = errors = 0
    gen = executor.execute(todo)
    try:
        for row in gen:
            row["run_id"] = run_id
            store.write(row)
            solved += 1
            errors += row["status"] == "error"
            if bar is not None:
                bar.update(1)
                if errors:
                    bar.set_postfix({"stored before": reused, "errors": errors})
    finally:
        gen.close()
        if bar is not None:
            bar.close()
    return solved, errors

