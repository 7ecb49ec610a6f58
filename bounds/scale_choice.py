"""Which quantization scale a layer chunk's channels get.

Order of precedence: a scale the user gives; the scale stored in the problem file (when its
``bits`` match); the per-tensor or per-channel scales the exporter computed on the *whole* weight
tensor (``scales_mse_tensor`` …, row ``bits - 1``); otherwise the scale searched on the chunk's own
``W0`` (documented fallback for hand-made files, which may hold just one chunk of a tensor).

The ``output`` method (per channel only) needs each channel's full ``H``: the scale whose
round-to-nearest has the least output error (:func:`solvers.scales.output_scale`); it is
computed for the channels asked for (``channels=``), the others get the per-channel MSE scale.

A **scale rule** names a method and its granularity (``"output-channel"``, ``"mse-tensor"``, …,
:data:`SCALE_RULES`); :func:`parse_scale_rule` reads one and :data:`RULE_TEXT` describes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from solvers.problem import LayerProblem, ProblemError, validate_bits, validate_scale
from solvers.scales import minmax_scale, mse_scale, output_scale

SCALE_METHODS = ("mse", "minmax", "output")

#: Scale rules for comparison runs, and what each means (written beside every verdict).
RULE_TEXT: dict[str, str] = {
    "output-channel": "per-channel scales minimising round-to-nearest's output error "
                      "(s·q − w0)ᵀH(s·q − w0)",
    "mse-tensor": "one per-tensor scale minimising the weights' rounding MSE (the paper's)",
    "mse-channel": "per-channel scales minimising the weights' rounding MSE",
    "minmax-tensor": "one per-tensor min-max scale",
    "minmax-channel": "per-channel min-max scales",
}
SCALE_RULES = tuple(RULE_TEXT)
#: The paper's rule (Kuzmin et al. 2023).
PAPER_RULE = "mse-tensor"


def parse_scale_rule(rule: str) -> tuple[str, bool]:
    """``"output-channel"`` → ``("output", True)``: the method and whether per channel."""
    if rule not in RULE_TEXT:
        raise ProblemError(f"unknown scale rule {rule!r}; valid: {', '.join(SCALE_RULES)}")
    method, _, gran = rule.partition("-")
    return method, gran == "channel"


def choose_scales(
    problem: LayerProblem,
    bits: int,
    *,
    scale: float | None = None,
    method: str = "mse",
    per_channel: bool = False,
    channels: Sequence[int] | None = None,
) -> np.ndarray:
    """One scale per channel of ``problem`` (equal entries for a per-tensor scale).

    ``channels``: with ``method="output"``, the channels that get the output-error scale
    (default: all); the others get the per-channel MSE scale.
    """
    bits = validate_bits(bits)
    C = problem.channels
    if scale is not None:
        return np.full(C, validate_scale(scale))
    if method not in SCALE_METHODS:
        raise ProblemError(f"unknown scale method {method!r}; valid: {', '.join(SCALE_METHODS)}")
    if method == "output":
        if not per_channel:
            raise ProblemError("the output scale method is per channel only "
                               "(--per-channel, per_channel=True)")
        s = choose_scales(problem, bits, method="mse", per_channel=True)
        for c in range(C) if channels is None else channels:
            s[c] = output_scale(problem.hessian(c), problem.W0[c], bits)
        return s
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
