"""Which quantization scale a layer chunk's channels get.

Order of precedence: a scale the user gives; the scale stored in the problem file (when its
``bits`` match); the per-tensor or per-channel scales the exporter computed on the *whole* weight
tensor (``scales_mse_tensor`` …, row ``bits - 1``); otherwise the scale searched on the chunk's own
``W0`` (documented fallback for hand-made files, which may hold just one chunk of a tensor).
"""

from __future__ import annotations

import numpy as np

from solvers.problem import LayerProblem, ProblemError, validate_bits, validate_scale
from solvers.scales import minmax_scale, mse_scale

SCALE_METHODS = ("mse", "minmax")


def choose_scales(
    problem: LayerProblem,
    bits: int,
    *,
    scale: float | None = None,
    method: str = "mse",
    per_channel: bool = False,
) -> np.ndarray:
    """One scale per channel of ``problem`` (equal entries for a per-tensor scale)."""
    bits = validate_bits(bits)
    C = problem.channels
    if scale is not None:
        return np.full(C, validate_scale(scale))
    if method not in SCALE_METHODS:
        raise ProblemError(f"unknown scale method {method!r}; valid: {', '.join(SCALE_METHODS)}")
    meta = problem.meta
    if "scale" in meta and meta.get("bits") == bits:
        s = np.broadcast_to(np.asarray(meta["scale"], dtype=float), (C,)).copy()
        for v in s:
            validate_scale(v)
        return s
    key = f"scales_{method}_{'channel' if per_channel else 'tensor'}"
    if key in meta:
        table = np.asarray(meta[key], dtype=float)
        row = np.broadcast_to(table[bits - 1], (C,)).astype(float).copy()
        if np.any(np.isnan(row)):
            raise ProblemError(
                f"this problem's {key} table has no entry for {bits} bits (the export computed "
                "other bit widths): pass --scale, or export again with these bits"
            )
        return row
    if per_channel:
        fn = mse_scale if method == "mse" else minmax_scale
        return np.asarray(fn(problem.W0, bits, per_channel=True), dtype=float)
    fn = mse_scale if method == "mse" else minmax_scale
    return np.full(C, float(fn(problem.W0, bits)))
