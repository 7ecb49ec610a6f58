"""Errors raised on the torch side; all are :class:`ValueError` subclasses with clear messages.

``bounds`` turns them into :class:`solvers.problem.ProblemError` (or prints them) at the CLI.
"""

from __future__ import annotations


class LayerExportError(ValueError):
    """Base class: bad input to model loading, calibration or export."""


class ModelNotAvailableError(LayerExportError):
    """A built-in model's weights (or its optional dependencies) are not installed."""


class ModelLoadError(LayerExportError):
    """A model reference that cannot be loaded: no checkpoint at the path, an architecture or
    factory that cannot build the module, weights that do not match it."""


class UnknownNameError(LayerExportError):
    """An unknown model or layer name; the message lists the valid ones."""


class UnsupportedLayerError(LayerExportError):
    """A module type the exporter cannot turn into per-channel quadratic problems."""


class NonFiniteError(LayerExportError):
    """NaN or infinite values in weights or activations."""


class CalibrationError(LayerExportError):
    """Calibration data that is missing, empty or of the wrong shape."""


def name_list(names, limit: int = 60) -> str:
    """``names`` joined for an error message, shortened after ``limit`` entries."""
    names = list(names)
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f", … ({len(names) - limit} more)"
    return shown
