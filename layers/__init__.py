"""pqbound's torch side: models, calibration data, ``H = XᵀX`` accumulation and export.

Knows nothing of solvers: it returns numpy arrays that :mod:`bounds.export` turns into
problems. Main entry points:

* :func:`layers.models.load_model` / :data:`layers.models.MODEL_NAMES`: built-in models.
* :class:`layers.calibration.ImageCalibration`, :class:`layers.calibration.TextCalibration`.
* :func:`layers.export.export_layers`, :func:`layers.export.exportable_layers`.
"""

from .errors import (
    CalibrationError,
    LayerExportError,
    ModelNotAvailableError,
    NonFiniteError,
    UnknownNameError,
    UnsupportedLayerError,
)

__all__ = [
    "CalibrationError",
    "LayerExportError",
    "ModelNotAvailableError",
    "NonFiniteError",
    "UnknownNameError",
    "UnsupportedLayerError",
]
