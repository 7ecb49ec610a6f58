"""The plan of a comparison run: what it solves, decided once, before any solve.

:func:`make_plan` turns the resolved settings and the full-layer problems into a
:class:`RunPlan`: the protocol, the certified methods that give the whole-channel bounds and, per
layer (:class:`LayerPlan`), the chunk ranges, the sampled channels and chunks, the scales,
densities and budgets per bit width, the block splits of the whole-channel certificate
(:func:`solvers.whole_channel.block_split`) and the problem hashes. The tasks
(:meth:`RunPlan.tasks`) and the whole-channel derivation (:mod:`bounds.compare.derive`) read
these; nothing is resolved or hashed twice.

Per layer and sampled channel the tasks are

* every chunk problem in the run (scope ``chunk``): quantization at each bit width with every
  quantization method, at the run's scale rule (``scale_rule``, default per-channel scales
  for the output error, :mod:`bounds.scale_choice`); pruning at the budget the accounting
  matches to it and at each N:M pattern whose groups fit the chunk, with every pruning method;
* when every chunk is in the run (whole-channel figures): the certified method on the whole
  channel directly (scope ``whole``, unless ``whole_direct`` is off) and on every block ``B_i``
  of the split (scope ``block``): quantization at each bit width, pruning at every budget
  ``k = 1 … min(n_i − 1, K)`` (the budget DP needs them all) and at each N:M pattern whose
  groups never straddle a chunk;
* with the paper's scale rule beside the run's own (``paper_scale``, the default), the chunk
  problems once more at the paper's per-tensor MSE scale (scope ``paper``), quantization only,
  with the certified bound method and round-to-nearest (those of the run's methods).

On the layers of ``scale_range_layers`` (default: the model's stem) the certified bound over
every scale in a range is derived after the solves (:func:`bounds.compare.derive.range_rows`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.problem import LayerProblem, density_to_k
from solvers.registry import get_method
from solvers.whole_channel import BlockSplit, block_split

from ..protocols import Protocol, get_protocol
from ..provenance import pqbound_version
from .accounting import prune_density, zero_fraction
from .settings import CompareConfig, bound_method
from .tasks import Task, array_hash, task_key

log = logging.getLogger(__name__)


@dataclass
class LayerPlan:
    """What the run does on one layer."""

    layer: str
    problem: LayerProblem  # the full layer (no chunks)
    chunks: list[tuple[int, int]]
    chunk_ids: list[int]
    channels: list[int]
    whole: bool  # all chunks in the run: whole-channel figures are derived
    scales: dict[int, np.ndarray]  # the run's scale rule, one per channel
    densities: dict[int, float]
    zero_fractions: dict[int, float]
    calibration: str = ""  # the calibration fingerprint of the problem
    problem_hash: str = ""  # of the full layer's H and W0
    channel_hashes: dict[int, str] = field(default_factory=dict)  # whole channel (H_c, w0_c)
    splits: dict[int, BlockSplit] = field(default_factory=dict)
    note: str = ""
    scale_rule: str = ""
    paper_scales: dict[int, np.ndarray] = field(default_factory=dict)  # when solved beside
    scale_range: bool = False  # derive the bound over every scale in the run's range
    formats: dict[str, Any] = field(default_factory=dict)  # name -> FormatLevels (--formats)
    format_record: dict[str, Any] = field(default_factory=dict)

    def chunk_k(self, bits: int, chunk: int) -> int:
        """The pruning budget of one chunk at ``bits`` bits: ``round(d·n_chunk)``."""
        a, b = self.chunks[chunk]
        return density_to_k(self.densities[bits], b - a)

    def budget(self, bits: int) -> int:
        """The whole channel's pruning budget at ``bits`` bits: the sum of the chunks'."""
        return sum(self.chunk_k(bits, i) for i in range(len(self.chunks)))

    def nm_fits(self, M: int) -> bool:
        """Whether N:M groups of ``M`` never straddle a chunk boundary."""
        return all((b - a) % M == 0 for a, b in self.chunks)

    def record(self, bits: tuple[int, ...]) -> dict[str, Any]:
        """What the run's settings record of this layer (``layer_problems`` in the store)."""
        return {"hash": self.problem_hash, "calibration": self.calibration,
                "n": self.problem.n, "channels_total": self.problem.channels,
                "channels": self.channels, "chunks": len(self.chunks),
                "chunk_ids": self.chunk_ids, "whole": self.whole, "note": self.note,
                "densities": {str(b): self.densities[b] for b in bits},
                "zero_fractions": {str(b): self.zero_fractions[b] for b in bits},
                "rows": self.problem.meta.get("rows"),
                "scale_rule": self.scale_rule, "scale_range": self.scale_range,
                "scales": {str(b): [float(self.scales[b][c]) for c in self.channels]
                           for b in bits},
                "paper_scales": {str(b): float(self.paper_scales[b][0])
                                 for b in bits if b in self.paper_scales},
                "splits": {str(c): s.info() for c, s in self.splits.items()},
                **({"formats": self.format_record} if self.formats else {})}


@dataclass
class RunPlan:
    """A whole run: the resolved settings, what follows from them, and the layers' plans."""

    cfg: CompareConfig  # resolved
    model: str
    protocol: Protocol
    quant_bound: str | None  # the certified method giving whole-channel bounds (or None)
    prune_bound: str | None
    settings: dict[str, Any]  # cfg.settings(), as stored
    settings_hash: str  # of the settings that can change a result
    version: str  # pqbound's, part of every task key
    layers: list[LayerPlan] = field(default_factory=list)

    def bound_method(self, kind: str) -> str | None:
        return self.quant_bound if kind == "quant" else self.prune_bound

    def layer_records(self) -> dict[str, dict[str, Any]]:
        return {pl.layer: pl.record(self.cfg.bits) for pl in self.layers}

    def tasks(self) -> list[Task]:
        """Every solve of the run, layer by layer (see the module docstring)."""
        return [t for pl in self.layers for t in _LayerTasks(self, pl).build()]


def make_plan(cfg: CompareConfig, problems: Mapping[str, LayerProblem]) -> RunPlan:
    """The plan of a run with resolved settings ``cfg`` on the full-layer ``problems``."""
    settings = cfg.settings()
    run = RunPlan(
        cfg=cfg, model=cfg.model, protocol=get_protocol(cfg.protocol),
        quant_bound=bound_method(cfg.quant_methods, "quant"),
        prune_bound=bound_method(cfg.prune_methods, "prune"),
        settings=settings,
        settings_hash=task_key(settings={k: v for k, v in settings.items()
                                         if k not in ("layers", "images", "text")})[:16],
        version=pqbound_version(),
    )
    run.layers = [plan_layer(name, p, cfg) for name, p in problems.items()]
    return run


def plan_layer(layer: str, problem: LayerProblem, cfg: CompareConfig) -> LayerPlan:
    """Sample the channels and chunks of one layer and compute what its tasks share."""
    from bounds.scale_choice import PAPER_RULE, choose_scales, parse_scale_rule
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
    scales, dens, zfs, paper = {}, {}, {}, {}
    method, per_channel = parse_scale_rule(cfg.scale_rule)
    for b in cfg.bits:
        scales[b] = choose_scales(problem, b, method=method, per_channel=per_channel,
                                  channels=chans)
        if cfg.paper_rule_beside:
            m, pc = parse_scale_rule(PAPER_RULE)
            paper[b] = choose_scales(problem, b, method=m, per_channel=pc)
        zfs[b] = zero_fraction(problem.W0, scales[b], b)
        dens[b] = prune_density(b, cfg.accounting, zero_fraction=zfs[b])
    plan = LayerPlan(layer, problem, chunks, chunk_ids, chans, whole, scales, dens, zfs,
                     calibration=calibration_fingerprint(problem),
                     problem_hash=array_hash(problem.H, problem.W0), note=note,
                     scale_rule=cfg.scale_rule, paper_scales=paper,
                     scale_range=cfg.scale_range is not None
                     and layer in (cfg.scale_range_layers or ()))
    if cfg.formats:
        from .formats import plan_formats

        plan.formats, plan.format_record, skipped = plan_formats(
            problem, cfg.formats, scale_method=cfg.format_scale,
            accounting=cfg.format_accounting)
        plan.note = "; ".join([plan.note, *skipped]) if plan.note else "; ".join(skipped)
    if whole:
        for c in chans:
            plan.channel_hashes[c] = array_hash(problem.hessian(c), problem.W0[c])
            if len(chunks) > 1:
                plan.splits[c] = block_split(problem.hessian(c), chunks,
                                             construction=cfg.construction)
    return plan


def calibration_fingerprint(problem: LayerProblem) -> str:
    """The calibration fingerprint the exporter recorded in ``problem.meta`` (``""`` if none)."""
    for key in ("calibration", "calibration_fingerprint", "calibration_hash"):
        if key in problem.meta:
            return str(problem.meta[key])
    return ""


def _box(box_factor: float | None, w0: np.ndarray) -> float | None:
    """The absolute pruning box ``c·max|w0|`` of a problem (``None``: no box)."""
    amax = float(np.max(np.abs(w0)))
    return None if box_factor is None or amax == 0 else box_factor * amax


def _limits(cfg: CompareConfig, kind: str, method: str) -> tuple[float | None, int | None]:
    """(time limit, node limit) of one method's solves.

    Without ``cfg.node_limit``: ``cfg.time_limit`` for all. With it (reproducible figures): a
    method with a ``node_limit`` parameter (``exact``) gets it and no time limit; a heuristic
    gets no time limit either (its work is bounded by its own iteration counts: AdaRound's
    early stop on time would make the best figure depend on the machine); a certified method
    without a node limit (a general solver) keeps ``cfg.time_limit`` — its figures are then
    not reproducible, and a warning says so.
    """
    if cfg.node_limit is None:
        return cfg.time_limit, None
    m = get_method(kind, method)
    if "node_limit" in inspect.signature(m.load()).parameters:
        return None, cfg.node_limit
    if not m.certified:
        return None, None
    _warn_time_limited(kind, method)
    return cfg.time_limit, None


@functools.cache
def _warn_time_limited(kind: str, method: str) -> None:
    log.warning("%s method %r takes no node limit: it keeps the time limit, so its figures "
                "depend on the machine", kind, method)


class _LayerTasks:
    """Builds the tasks of one layer; each knows its key, its data and its row's identity."""

    def __init__(self, run: RunPlan, plan: LayerPlan) -> None:
        self.run, self.plan, self.cfg = run, plan, run.cfg
        self.out: list[Task] = []

    def add(self, kind: str, method: str, scope: str, chunk: int, c: int, comp: str,
            H: np.ndarray, w0: np.ndarray, a: int, b: int, ph: str, **kw: Any) -> None:
        time_limit, node_limit = _limits(self.cfg, kind, method)
        limit = {"time_limit": time_limit} if node_limit is None else {"node_limit": node_limit}
        key = task_key(problem=ph, kind=kind, method=method, scope=scope, compression=comp,
                       **limit, version=self.run.version,
                       **{k: v for k, v in kw.items() if k != "validate"})
        self.out.append(Task(
            key=key, kind=kind, method=method, scope=scope, model=self.run.model,
            layer=self.plan.layer, chunk=chunk, channel=c, compression=comp, H=H, w0=w0,
            input_start=a, input_stop=b, time_limit=time_limit, node_limit=node_limit,
            problem_hash=ph,
            calibration=self.plan.calibration, settings_hash=self.run.settings_hash, **kw))

    def build(self) -> list[Task]:
        """Chunk by chunk, each chunk's channels together (so a batch of consecutive tasks
        shares one ``H``: a shared-Hessian layer's chunk ``H`` is one array, not a copy per
        channel — the full MobileNetV2 study has 113,712 chunk-channel pairs), then the
        whole-channel tasks channel by channel."""
        P = self.plan.problem
        for ci in self.plan.chunk_ids:
            a, b = self.plan.chunks[ci]
            shared = np.ascontiguousarray(P.H[a:b, a:b]) if P.shared_hessian else None
            for c in self.plan.channels:
                H = shared if shared is not None else np.ascontiguousarray(
                    P.hessian(c)[a:b, a:b])
                self.chunk(c, ci, H, np.ascontiguousarray(P.W0[c, a:b]))
        for c in self.plan.channels:
            Hc, w0 = P.hessian(c), P.W0[c]
            split = self.plan.splits.get(c)
            if split is not None:
                if self.cfg.whole_direct:
                    self.whole(c, Hc, w0)
                self.blocks(c, split, w0)
        return self.out

    def chunk(self, c: int, ci: int, H: np.ndarray, w: np.ndarray) -> None:
        """The paper's problem: chunk ``ci`` of channel ``c`` (its ``H`` block and ``w0``
        slice), every method."""
        cfg, plan = self.cfg, self.plan
        a, b = plan.chunks[ci]
        ph = array_hash(H, w)
        box = _box(self.run.protocol.box_factor, w)
        for bits in cfg.bits:
            comp = f"{bits}bit"
            s = float(plan.scales[bits][c])
            for m in cfg.quant_methods:
                self.add("quant", m, "chunk", ci, c, comp, H, w, a, b, ph, bits=bits, scale=s)
            if bits in plan.paper_scales:
                sp = float(plan.paper_scales[bits][c])
                for m in self.paper_methods():
                    self.add("quant", m, "paper", ci, c, comp, H, w, a, b, ph, bits=bits,
                             scale=sp)
            k = density_to_k(plan.densities[bits], b - a)
            for m in cfg.prune_methods:
                self.add("prune", m, "chunk", ci, c, comp, H, w, a, b, ph,
                         bits=bits, k=k, density=plan.densities[bits], box=box)
        for N, M in cfg.nm:
            if (b - a) % M:
                continue
            for m in cfg.prune_methods:
                self.add("prune", m, "chunk", ci, c, f"nm{N}:{M}", H, w, a, b, ph,
                         nm=(N, M), k=(b - a) // M * N, density=N / M, box=box)
        self.formats(c, ci, H, w, ph)

    def formats(self, c: int, ci: int, H: np.ndarray, w: np.ndarray, ph: str) -> None:
        """``--formats``: chunk ``ci`` of channel ``c`` over each format's levels (those of the
        chunk's inputs, built on the whole layer), every method that applies."""
        from .formats import PREFIX, methods_for

        a, b = self.plan.chunks[ci]
        for name, f in self.plan.formats.items():
            nm = f.spec.nm
            if nm is not None and (b - a) % nm[1]:
                continue
            lv = f.levels(c)
            lv = lv if lv.ndim == 1 else np.ascontiguousarray(lv[a:b])
            k = None if nm is None else (b - a) // nm[1] * nm[0]
            for m in methods_for(f.spec, self.cfg.format_methods):
                self.add("levels", m, "chunk", ci, c, PREFIX + name, H, w, a, b, ph,
                         bits=f.spec.bits, levels=lv, nm=nm, k=k,
                         density=None if nm is None else nm[0] / nm[1])

    def paper_methods(self) -> list[str]:
        """The methods solved at the paper's scale: the certified bound method and RTN."""
        return [m for m in self.cfg.quant_methods if m in (self.run.quant_bound, "rtn")]

    def whole(self, c: int, Hc: np.ndarray, w0: np.ndarray) -> None:
        """The certified methods on the whole channel directly (time-limited): their bounds are
        certified too, and their solutions feasible for the whole channel."""
        cfg, plan = self.cfg, self.plan
        qb, pb = self.run.quant_bound, self.run.prune_bound
        n, phw = plan.problem.n, plan.channel_hashes[c]
        box = _box(self.run.protocol.box_factor, w0)
        for bits in cfg.bits:
            if qb:
                self.add("quant", qb, "whole", -1, c, f"{bits}bit", Hc, w0, 0, n, phw,
                         bits=bits, scale=float(plan.scales[bits][c]))
            if pb:
                self.add("prune", pb, "whole", -1, c, f"{bits}bit", Hc, w0, 0, n, phw,
                         bits=bits, k=plan.budget(bits), density=plan.densities[bits],
                         box=box)
        for N, M in cfg.nm:
            if pb and plan.nm_fits(M):
                self.add("prune", pb, "whole", -1, c, f"nm{N}:{M}", Hc, w0, 0, n, phw,
                         nm=(N, M), k=n // M * N, density=N / M, box=box)

    def blocks(self, c: int, split: BlockSplit, w0: np.ndarray) -> None:
        """The block problems ``B_i`` of the split (validated: they are built here)."""
        cfg, plan = self.cfg, self.plan
        qb, pb = self.run.quant_bound, self.run.prune_bound
        box = _box(self.run.protocol.box_factor, w0)
        kmax = max(plan.budget(bits) for bits in cfg.bits)
        for i, ((a, b), B) in enumerate(zip(plan.chunks, split.blocks, strict=True)):
            w = np.ascontiguousarray(w0[a:b])
            ph = array_hash(B, w)
            if qb:
                for bits in cfg.bits:
                    self.add("quant", qb, "block", i, c, f"{bits}bit", B, w, a, b, ph,
                             bits=bits, scale=float(plan.scales[bits][c]), validate=True)
            if pb:
                for k in range(1, min(b - a - 1, kmax) + 1):
                    self.add("prune", pb, "block", i, c, f"k={k}", B, w, a, b, ph,
                             k=k, box=box, validate=True)
                for N, M in cfg.nm:
                    if plan.nm_fits(M):
                        self.add("prune", pb, "block", i, c, f"nm{N}:{M}", B, w, a, b, ph,
                                 nm=(N, M), k=(b - a) // M * N, density=N / M, box=box,
                                 validate=True)
