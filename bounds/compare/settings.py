"""The settings of a comparison run and the choice of methods.

:class:`CompareConfig` holds every setting of a ``pqbound compare`` run (all of them are written
at the top of its report); :meth:`CompareConfig.resolved` applies the protocol's forced
settings (:mod:`bounds.protocols`) and checks everything before any work. :func:`parse_methods`
reads ``--methods``, :func:`check_methods` fails at start-up when a method cannot be loaded
here, and :func:`bound_method` picks the certified method whose bounds the whole-channel figures
use.

Examples
--------
>>> cfg = CompareConfig(bits=(4, 2, 4), protocol="paper").resolved()
>>> cfg.bits, cfg.opt_dim, cfg.samples, cfg.box_factor
((2, 4), 32, 64, 2.0)
>>> parse_methods(["exact", "quant:rtn", "prune:obs"])
(('exact', 'rtn'), ('exact', 'obs'))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solvers.problem import ProblemError
from solvers.registry import get_method, methods

from ..protocols import get_protocol
from ..scale_choice import PAPER_RULE, parse_scale_rule
from .accounting import ACCOUNTINGS

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
    "efficientnet_lite0": [
        "_conv_stem",                # 3×3 stem conv, 3 → 32 channels, stride 2 (n = 27)
        "_blocks.1._expand_conv",    # 1×1 expansion conv, 16 → 96 (n = 16)
        "_blocks.1._depthwise_conv",  # 3×3 depthwise conv, stride 2 (n = 9 per channel)
        "_blocks.3._depthwise_conv",  # 5×5 depthwise conv (n = 25 per channel)
        "_blocks.1._project_conv",   # 1×1 projection conv, 96 → 24 (n = 96: three 32-chunks)
        "_fc",                       # the classifier, 1280 → 1000 (n = 1280: forty 32-chunks)
    ],
    "minilm": [
        "encoder.layer.0.attention.self.query",  # attention projection, 384 → 384
        "encoder.layer.0.intermediate.dense",    # MLP expansion, 384 → 1536
        "encoder.layer.0.output.dense",          # MLP projection, 1536 → 384
    ],
}

#: The stem layer of each built-in model: the default report bounds its quantization error over
#: every scale in a range (``scale_range_layers``; see :mod:`solvers.scale_range`).
STEM_LAYERS: dict[str, str] = {"mobilenet_v2": "features.0.0",
                               "efficientnet_lite0": "_conv_stem"}

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
    #: search nodes per certified solve, instead of ``time_limit`` for the methods that take
    #: one (``exact``): figures that do not depend on the machine or its load
    node_limit: int | None = None
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
    # How the quantization scale is chosen (bounds.scale_choice.SCALE_RULES); the paper's rule
    # (one per-tensor weight-MSE scale) is also solved beside it when paper_scale is on.
    scale_rule: str = "output-channel"
    paper_scale: bool = True
    # Certified bound over every scale in [lo, hi] × the min-max scale (per channel: each
    # channel's own; per tensor: the tensor's), on these layers (None: the model's stem layer).
    scale_range: tuple[float, float] | None = (0.1, 2.0)
    scale_range_layers: tuple[str, ...] | None = None
    scale_range_intervals: int = 128  # interval centres solved at most, per bit width
    # --formats (bounds/compare/formats.py): formats side by side at equal bits per weight
    formats: tuple[str, ...] = ()
    format_methods: tuple[str, ...] = ()  # () = DEFAULT_FORMAT_METHODS
    format_accounting: str = "hardware"
    format_scale: str = "mse"

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
        if cfg.node_limit is not None:
            if isinstance(cfg.node_limit, bool) or int(cfg.node_limit) != cfg.node_limit \
                    or cfg.node_limit < 1:
                raise ProblemError(f"node_limit must be an integer >= 1, got {cfg.node_limit!r}")
            cfg.node_limit = int(cfg.node_limit)
        if cfg.samples < 1:
            raise ProblemError(f"samples must be >= 1, got {cfg.samples}")
        cfg.nm = tuple((int(a), int(b)) for a, b in cfg.nm)
        for N, M in cfg.nm:
            if M < 1 or not 0 <= N <= M:
                raise ProblemError(f"N:M pattern needs 0 <= N <= M, got {N}:{M}")
        if proto.name == "paper" and cfg.scale_rule != PAPER_RULE:
            log.warning("protocol paper uses the %s scale rule", PAPER_RULE)
            cfg.scale_rule = PAPER_RULE
        parse_scale_rule(cfg.scale_rule)
        if cfg.scale_range is not None:
            lo, hi = (float(x) for x in cfg.scale_range)
            if not 0 < lo <= hi < float("inf"):
                raise ProblemError(f"scale_range needs 0 < lo <= hi, got {list(cfg.scale_range)}")
            cfg.scale_range = (lo, hi)
        if cfg.scale_range_layers is None:
            stem = STEM_LAYERS.get(cfg.model)
            cfg.scale_range_layers = (stem,) if stem else ()
        cfg.scale_range_layers = tuple(cfg.scale_range_layers)
        if cfg.scale_range_intervals < 1:
            raise ProblemError(f"scale_range_intervals must be >= 1, got "
                               f"{cfg.scale_range_intervals}")
        check_methods(cfg.quant_methods, cfg.prune_methods)
        if cfg.format_methods and not cfg.formats:
            raise ProblemError("format methods were given without formats: add --formats NAME …")
        if cfg.formats:
            from solvers.formats import SCALE_METHODS

            from .formats import DEFAULT_FORMAT_METHODS, canonical_formats, check_format_methods

            cfg.formats = canonical_formats(cfg.formats)
            cfg.format_methods = check_format_methods(
                cfg.format_methods or DEFAULT_FORMAT_METHODS, cfg.format_accounting)
            if cfg.format_scale not in SCALE_METHODS:
                raise ProblemError(f"unknown format scale rule {cfg.format_scale!r}; valid: "
                                   f"{', '.join(SCALE_METHODS)}")
        return cfg

    @property
    def paper_rule_beside(self) -> bool:
        """Whether the paper's scale rule is solved beside the run's own."""
        return self.paper_scale and self.scale_rule != PAPER_RULE

    @property
    def box_factor(self) -> float | None:
        return get_protocol(self.protocol).box_factor

    def settings(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items()}
        d["bits"] = list(self.bits)
        d["nm"] = [f"{a}:{b}" for a, b in self.nm]
        d["quant_methods"] = list(self.quant_methods)
        d["prune_methods"] = list(self.prune_methods)
        if self.formats:
            d["formats"] = list(self.formats)
            d["format_methods"] = list(self.format_methods)
        else:  # a run without formats keeps the settings (and run id) it had before them
            for key in ("formats", "format_methods", "format_accounting", "format_scale"):
                d.pop(key)
        d["box_factor"] = self.box_factor
        d["scale_range"] = None if self.scale_range is None else list(self.scale_range)
        d["scale_range_layers"] = (None if self.scale_range_layers is None
                                   else list(self.scale_range_layers))
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



def bound_method(names: Sequence[str], kind: str) -> str | None:
    """The certified method used for lower bounds: ``exact`` if requested, else the first
    certified one, else ``None``."""
    cert = [n for n in names if get_method(kind, n).certified]
    if "exact" in cert:
        return "exact"
    return cert[0] if cert else None

