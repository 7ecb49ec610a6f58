"""Run a heuristic on every channel of a :class:`~solvers.problem.LayerProblem` at once.

With a shared ``H`` this calls the vectorised ``*_layer`` function (one factorisation of ``H``
for all channels); with per-channel Hessians (grouped / depthwise convolutions) it runs the
per-channel function channel by channel. Either way it returns one
:class:`~solvers.result.SolveResult` per channel, as the registry functions would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..problem import LayerProblem, ProblemError
from ..registry import get_method
from ..result import SolveResult
from .adaround import adaround_layer
from .gptq import gptq_layer
from .magnitude import magnitude_layer
from .obq import obq_layer
from .obs import obs_layer
from .rtn import rtn_layer
from .sparsegpt import sparsegpt_layer

QUANT_LAYER: dict[str, Callable[..., Any]] = {
    "rtn": rtn_layer,
    "gptq": gptq_layer,
    "obq": obq_layer,
    "adaround": adaround_layer,
}
PRUNE_LAYER: dict[str, Callable[..., Any]] = {
    "magnitude": magnitude_layer,
    "magnitude-refit": lambda H, W0, k=None, **kw: magnitude_layer(H, W0, k, refit=True, **kw),
    "obs": obs_layer,
    "sparsegpt": sparsegpt_layer,
}


def quant_layer_results(
    problem: LayerProblem,
    method: str,
    *,
    scale: float | np.ndarray,
    bits: int,
    time_limit: float | None = None,
    **options: Any,
) -> list[SolveResult]:
    """Quantize every channel of ``problem`` with heuristic ``method``.

    ``scale`` is a scalar or one scale per channel. ``time_limit`` is passed to the methods that
    use it (OBQ, AdaRound), for the whole layer.

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import LayerProblem
    >>> lp = LayerProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[0.3, 0.4]]))
    >>> [r.codes.tolist() for r in quant_layer_results(lp, "gptq", scale=1.0, bits=4, damp=0)]
    [[0, 1]]
    """
    if method not in QUANT_LAYER:
        raise ProblemError(f"no layer version of quant method {method!r}; "
                           f"valid: {', '.join(QUANT_LAYER)}")
    if time_limit is not None and method in ("obq", "adaround"):
        options["time_limit"] = time_limit
    if problem.shared_hessian:
        return QUANT_LAYER[method](problem.H, problem.W0, scale, bits, **options).results()
    fn = get_method("quant", method).load()
    scales = np.broadcast_to(np.asarray(scale, dtype=float), (problem.channels,))
    return [fn(problem.quant(c, scale=float(scales[c]), bits=bits), **options)
            for c in range(problem.channels)]


def prune_layer_results(
    problem: LayerProblem,
    method: str,
    *,
    k: int | None = None,
    density: float | None = None,
    nm: tuple[int, int] | None = None,
    box_factor: float | None = None,
    time_limit: float | None = None,
    **options: Any,
) -> list[SolveResult]:
    """Prune every channel of ``problem`` with heuristic ``method`` (``time_limit`` unused).

    Examples
    --------
    >>> import numpy as np
    >>> from solvers import LayerProblem
    >>> lp = LayerProblem(np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[1.0, 0.5]]))
    >>> [round(r.objective, 12) for r in prune_layer_results(lp, "obs", k=1)]
    [0.375]
    """
    if method not in PRUNE_LAYER:
        raise ProblemError(f"no layer version of prune method {method!r}; "
                           f"valid: {', '.join(PRUNE_LAYER)}")
    budget = {"density": density, "nm": nm, "box_factor": box_factor}
    if problem.shared_hessian:
        return PRUNE_LAYER[method](problem.H, problem.W0, k, **budget, **options).results()
    fn = get_method("prune", method).load()
    kw: dict[str, Any] = {"nm": nm, "box_factor": box_factor}
    if density is not None:
        kw["density"] = density
    else:
        kw["k"] = k
    return [fn(problem.prune(c, **kw), **options) for c in range(problem.channels)]
