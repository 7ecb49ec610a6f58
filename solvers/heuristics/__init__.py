"""Practical post-training methods the bounds are compared against.

Quantization: :func:`~.rtn.rtn` (round to nearest), :func:`~.gptq.gptq` (GPTQ),
:func:`~.obq.obq` (OBQ, greedy order), :func:`~.adaround.adaround` (AdaRound).
Pruning: :func:`~.magnitude.magnitude`, :func:`~.magnitude.magnitude_refit`,
:func:`~.obs.obs_greedy` (OBS greedy), :func:`~.sparsegpt.sparsegpt` (SparseGPT),
:func:`~.wanda.wanda` and :func:`~.wanda.wanda_refit` (Wanda).
Any number format (:class:`~solvers.problem.LevelProblem`, :mod:`.levels`): RTN, GPTQ over
levels (act-order; static groups, and dynamic groups on a whole layer with
:func:`~.levels.gptq_format_layer`), Wanda then nearest level or GPTQ, prune-then-quantize and
SparseGPT's joint sparse + quantized pass.

Each has a per-channel registry function ``fn(problem, *, time_limit=None, **options)`` returning
a :class:`~solvers.result.SolveResult` (status ``heuristic``, ``lower_bound=None``) and a
vectorised whole-layer function ``*_layer(H, W0, …)`` (shared ``H``) returning a
:class:`~._layer.LayerRun`; ``LayerRun.results()`` gives the per-channel results. The
per-channel functions run the layer code with one channel. Every objective is the exact error on
the undamped ``H``. A refit of the kept weights (``refit=True``) is the project's one refit,
:func:`solvers.prune.refit.unboxed_refit`; the exact pruning solver's incumbents
(:mod:`solvers.prune.incumbents`) run magnitude, OBS and SparseGPT from here. See
docs/heuristics.md.
"""

from ._layer import LayerRun, layer_results
from .adaround import adaround, adaround_layer
from .gptq import gptq, gptq_layer
from .magnitude import magnitude, magnitude_layer, magnitude_masks, magnitude_refit
from .obq import obq, obq_layer
from .obs import obs_greedy, obs_layer
from .rtn import rtn, rtn_layer
from .sparsegpt import sparsegpt, sparsegpt_layer
from .wanda import wanda, wanda_layer, wanda_refit

__all__ = [
    "LayerRun",
    "adaround",
    "adaround_layer",
    "gptq",
    "gptq_layer",
    "layer_results",
    "magnitude",
    "magnitude_layer",
    "magnitude_masks",
    "magnitude_refit",
    "obq",
    "obq_layer",
    "obs_greedy",
    "obs_layer",
    "rtn",
    "rtn_layer",
    "sparsegpt",
    "sparsegpt_layer",
    "wanda",
    "wanda_layer",
    "wanda_refit",
]
