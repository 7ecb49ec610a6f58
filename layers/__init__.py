"""pqbound's torch side: models, calibration data, ``H = XᵀX`` accumulation and export.

Knows nothing of solvers: it returns numpy arrays that :mod:`bounds.export` turns into
problems. Main entry points:

* :func:`layers.models.resolve_model`: a model reference (a built-in name of
  :data:`layers.models.MODEL_NAMES`, ``hf:PATH``, ``module:factory``, ``file.py:factory``)
  → :class:`layers.models.LoadedModel`; :func:`layers.models.load_model` for built-ins.
* :func:`layers.calibration.make_calibration` (photos, sentences, image folders, text files,
  saved inputs), :class:`layers.calibration.ImageCalibration`,
  :class:`layers.calibration.TextCalibration`, :class:`layers.calibration.InputBatches`.
* :func:`layers.export.export_layers`, :func:`layers.export.exportable_layers`.
"""

from .errors import (
    CalibrationError,
    LayerExportError,
    ModelLoadError,
    ModelNotAvailableError,
    NonFiniteError,
    UnknownNameError,
    UnsupportedLayerError,
)

__all__ = [
    "CalibrationError",
    "LayerExportError",
    "ModelLoadError",
    "ModelNotAvailableError",
    "NonFiniteError",
    "UnknownNameError",
    "UnsupportedLayerError",
]
