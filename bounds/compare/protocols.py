"""Named protocols: the settings a comparison runs under, written at the top of every report.

* ``exact`` (default): conv inputs unfolded with the layer's real stride, padding and dilation;
  per-tensor symmetric scale from an MSE search on the FP16 weights; no box on pruned weights;
  the run's own sample count and chunking.
* ``paper`` (Kuzmin et al. 2023): 64 calibration images, FP16 weights, per-tensor symmetric MSE
  scale, conv patches unfolded with the kernel alone (stride, padding, dilation ignored),
  ``opt_dim = 32`` chunks, pruning density ``b/16`` (mask free) and the big-M box
  ``|w_i| ≤ 2·max|w0|`` (``max`` over the chunk's weights, as each chunk is its own problem).
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

    def to_dict(self) -> dict:
        return asdict(self)


PROTOCOLS: dict[str, Protocol] = {
    "exact": Protocol(
        name="exact", samples=None, opt_dim=None, box_factor=None, accounting=None,
        full_precision=False, scale="per-tensor symmetric, MSE search on FP16 weights",
        description="the layer's real stride/padding/dilation; no box on pruned weights",
    ),
    "paper": Protocol(
        name="paper", samples=64, opt_dim=32, box_factor=2.0, accounting="paper",
        full_precision=False, scale="per-tensor symmetric, MSE search on FP16 weights",
        description="Kuzmin et al. 2023: 64 images, FP16, kernel-only unfold, opt-dim 32 "
        "chunks, density b/16, pruning box ±2·max|w0|",
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ProblemError(
            f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}") from None
