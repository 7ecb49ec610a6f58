"""Named protocols: the bundles of settings a run is made under, written at the top of every report.

A protocol fixes how the problems are built and compared; it is the one table of them
(``pqbound export --protocol`` and ``pqbound compare --protocol`` both read it):

* ``exact`` (default): conv inputs unfolded with the layer's real stride, padding and dilation
  (unfold mode ``"exact"``); per-tensor symmetric scale from an MSE search on the FP16 weights;
  no box on pruned weights; the run's own sample count and chunking.
* ``paper`` (Kuzmin et al. 2023): 64 calibration images, FP16 weights, per-tensor symmetric MSE
  scale, conv patches unfolded with the kernel alone (unfold mode ``"kernel"``: stride,
  padding, dilation ignored), ``opt_dim = 32`` chunks, pruning density ``b/16`` (mask free) and
  the big-M box ``|w_i| ≤ 2·max|w0|`` (``max`` over the chunk's weights, as each chunk is its
  own problem).

The unfold modes themselves are the torch side's (:data:`layers.unfold.UNFOLD_MODES`); the
export applies a protocol's unfold mode, a comparison all of its settings.

Examples
--------
>>> get_protocol("paper").unfold, get_protocol("paper").opt_dim
('kernel', 32)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from solvers.problem import ProblemError


@dataclass(frozen=True)
class Protocol:
    name: str
    samples: int | None  # forced calibration count (None: the run's choice)
    opt_dim: int | None  # forced chunk size (None: the run's choice)
    box_factor: float | None  # pruning box c·max|w0|, None for no box
    accounting: str | None  # forced accounting (None: the run's choice)
    full_precision: bool  # False: weights taken in FP16
    scale: str  # how the quantization scale is chosen
    description: str
    unfold: str  # conv patches: "exact" (the layer's own) or "kernel" (kernel only)

    def to_dict(self) -> dict:
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {
    "exact": Protocol(
        name="exact", samples=None, opt_dim=None, box_factor=None, accounting=None,
        full_precision=False, scale="per-tensor symmetric, MSE search on FP16 weights",
        description="the layer's real stride/padding/dilation; no box on pruned weights",
        unfold="exact",
    ),
    "paper": Protocol(
        name="paper", samples=64, opt_dim=32, box_factor=2.0, accounting="paper",
        full_precision=False, scale="per-tensor symmetric, MSE search on FP16 weights",
        description="Kuzmin et al. 2023: 64 images, FP16, kernel-only unfold, opt-dim 32 "
        "chunks, density b/16, pruning box ±2·max|w0|",
        unfold="kernel",
    ),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; :class:`ProblemError` naming the valid ones otherwise."""
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ProblemError(
            f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}") from None
