"""The settings of one ``pqbound network`` run, checked once before any work.

A method is ``NAME`` or ``KIND:NAME`` (``quant:exact``, ``prune:exact``): a bare name must be
registered for exactly one kind (:mod:`solvers.registry`). Quantization runs at ``bits``;
pruning at ``density`` or an N:M pattern when given, otherwise at the equal-size density of
``bits`` under the accounting (:func:`bounds.compare.accounting.prune_density`; ``paper``:
``b/16``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from solvers.problem import ProblemError, validate_bits
from solvers.registry import get_method, methods

from ..channel_solve import parse_nm
from ..compare.accounting import ACCOUNTINGS, prune_density

MODES = ("sequential", "parallel")
SCALES = ("channel", "tensor")
#: Default time limit (seconds per problem) of certified methods: keep their best solution.
CERTIFIED_TIME_LIMIT = 0.2


def resolve_method(name: str) -> tuple[str, str]:
    """``(kind, name)`` of a method given as ``NAME`` or ``KIND:NAME``."""
    kind, _, bare = str(name).rpartition(":")
    kinds = [kind] if kind else ["quant", "prune"]
    for k in kinds:
        if k not in ("quant", "prune"):
            raise ProblemError(f"method {name!r}: the kind must be quant or prune")
    hits = [k for k in kinds if any(m.name == bare for m in methods(k))]
    if not hits:
        valid = sorted({f"{m.name}" for k in ("quant", "prune") for m in methods(k)})
        raise ProblemError(f"unknown method {name!r}; valid: {', '.join(valid)} (quant:NAME or "
                           f"prune:NAME where both kinds have it)")
    if len(hits) > 1:
        raise ProblemError(f"method {name!r} exists for quantization and pruning: say "
                           f"quant:{bare} or prune:{bare}")
    get_method(hits[0], bare).load()  # a missing optional backend fails here, early
    return hits[0], bare


@dataclass
class NetworkConfig:
    """One run: a method at one size on the chosen layers (see :func:`run_network`)."""

    model: str = "mobilenet_v2"
    method: str = "gptq"
    bits: int = 4
    density: float | None = None
    nm: str | tuple[int, int] | None = None
    mode: str = "sequential"
    layers: list[str] | None = None
    skip: list[str] = field(default_factory=list)
    opt_dim: int | None = None
    samples: int = 64
    heldout: int = 64
    seed: int = 0
    batch_size: int = 16
    scale: str = "channel"
    accounting: str = "paper"
    time_limit: float | None = None
    full_precision: bool = False
    weights: str | None = None
    images: str | None = None
    text: str | None = None
    inputs: str | None = None
    labels: str | None = None
    max_length: int = 128
    resamples: int = 1000
    options: dict[str, Any] = field(default_factory=dict)

    def checked(self) -> NetworkConfig:
        """A validated copy: method kind resolved, sizes in range, ``nm`` as a pair."""
        cfg = NetworkConfig(**asdict(self))
        kind, name = resolve_method(cfg.method)
        cfg.method = f"{kind}:{name}"
        cfg.bits = validate_bits(cfg.bits)
        if cfg.mode not in MODES:
            raise ProblemError(f"unknown mode {cfg.mode!r}; valid: {', '.join(MODES)}")
        if cfg.scale not in SCALES:
            raise ProblemError(f"unknown scale {cfg.scale!r}; valid: {', '.join(SCALES)}")
        if cfg.accounting not in ACCOUNTINGS:
            raise ProblemError(f"unknown accounting {cfg.accounting!r}; valid: "
                               f"{', '.join(ACCOUNTINGS)}")
        if cfg.density is not None:
            d = float(cfg.density)
            if not math.isfinite(d) or not 0.0 <= d <= 1.0:
                raise ProblemError(f"density must lie in [0, 1], got {cfg.density!r}")
            cfg.density = d
        if isinstance(cfg.nm, str):
            cfg.nm = parse_nm(cfg.nm)
        if cfg.nm is not None:
            N, M = (int(v) for v in cfg.nm)
            if M < 1 or not 0 <= N <= M:
                raise ProblemError(f"N:M pattern needs 0 <= N <= M and M >= 1, got {N}:{M}")
            cfg.nm = (N, M)
        if cfg.density is not None and cfg.nm is not None:
            raise ProblemError("give --density or --nm, not both")
        if kind == "quant" and (cfg.density is not None or cfg.nm is not None):
            raise ProblemError(f"{cfg.method} is a quantization method: --density and --nm are "
                               "for pruning methods")
        if cfg.opt_dim is not None and (int(cfg.opt_dim) != cfg.opt_dim or cfg.opt_dim < 1):
            raise ProblemError(f"--opt-dim must be a positive integer, got {cfg.opt_dim!r}")
        for nm_, v in (("samples", cfg.samples), ("heldout samples", cfg.heldout),
                       ("batch size", cfg.batch_size)):
            if int(v) != v or v < 1:
                raise ProblemError(f"{nm_} must be a positive integer, got {v!r}")
        if cfg.resamples < 0:
            raise ProblemError(f"resamples must be >= 0, got {cfg.resamples}")
        if cfg.time_limit is not None and not (math.isfinite(cfg.time_limit)
                                               and cfg.time_limit > 0):
            raise ProblemError(f"--time-limit must be > 0 seconds, got {cfg.time_limit!r}")
        if cfg.time_limit is None and get_method(kind, name).certified:
            cfg.time_limit = CERTIFIED_TIME_LIMIT
        if cfg.labels is not None and cfg.images is None:
            raise ProblemError("--labels needs --images DIR (the labelled folder)")
        get_method(kind, name).check_options(cfg.options)
        return cfg

    @property
    def kind(self) -> str:
        return self.method.split(":")[0]

    @property
    def method_name(self) -> str:
        return self.method.split(":")[1]

    @property
    def target_density(self) -> float | None:
        """The density of a pruning run (None for an N:M run and for quantization)."""
        if self.kind != "prune" or self.nm is not None:
            return None
        if self.density is not None:
            return self.density
        return prune_density(self.bits, self.accounting)

    @property
    def compression(self) -> str:
        """``int4``, ``d0.25`` or ``nm2:4``: the size label of results and reports."""
        if self.kind == "quant":
            return f"int{self.bits}"
        if self.nm is not None:
            return f"nm{self.nm[0]}:{self.nm[1]}"
        return f"d{self.target_density:.6g}"

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per weight under the run's accounting (FP16 baseline, paper: mask free):
        ``bits`` for quantization, ``16·density`` for pruning (``16·N/M`` for N:M)."""
        if self.kind == "quant":
            return float(self.bits)
        d = self.nm[0] / self.nm[1] if self.nm is not None else self.target_density
        extra = 1.0 if self.accounting == "bitmask" else 0.0
        return 16.0 * d + extra

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nm"] = None if self.nm is None else f"{self.nm[0]}:{self.nm[1]}"
        return d
