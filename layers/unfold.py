"""What one output channel of a layer sees: the rows of ``X`` (im2col for convolutions).

For every supported layer the output of channel ``c`` is ``y_c = X_g(c) · w_c (+ bias)``, where
``w_c`` is the channel's flattened weight row (length ``n``) and ``X_g`` has one row per sample
and output position and one column per input the channel sees. Channels in the same group share
``X_g``; a plain layer has one group.

===================  =====================================  =========================  ========
layer                weight                                 row of X                   n
===================  =====================================  =========================  ========
``nn.Linear``        (C, n)                                 the input vector            in
transformers Conv1D  (n, C) (GPT-2 style, ``y = x W + b``)  the input vector            nx
``nn.Conv1d``        (C, Cin/G, k)                          a patch (c, k)              Cin/G·k
``nn.Conv2d``        (C, Cin/G, kh, kw)                     a patch (c, kh, kw)         Cin/G·kh·kw
===================  =====================================  =========================  ========

Patches follow ``torch.nn.functional.unfold``'s order (input channel, then kernel row, then
kernel column), which is the order of ``weight.reshape(C, -1)``. The *unfold mode* says which
patches a convolution's rows are (:data:`UNFOLD_MODES`):

* ``"exact"`` (the default): exactly the layer's own patches, with its padding (any
  ``padding_mode``, also ``"same"``), stride and dilation;
* ``"kernel"``: ``unfold(kernel_size)`` alone, i.e. stride 1, no padding, no dilation, as the
  reference code of Kuzmin et al. 2023 does (``bounds``' ``paper`` protocol uses it).

Linear layers are the same in both modes.

Patches are produced in slices of whole samples sized to about :data:`PATCH_BUDGET` float64
numbers, so memory stays bounded whatever the number of calibration images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import CalibrationError, NonFiniteError, UnsupportedLayerError

#: About how many float64 numbers one slice of patches may hold (32 MiB).
PATCH_BUDGET = 1 << 22
#: How convolution inputs are unfolded into rows of ``X`` (see the module docstring).
UNFOLD_MODES = ("exact", "kernel")
KINDS = ("linear", "transformer_conv1d", "conv1d", "conv", "depthwise", "grouped_conv")


def is_transformer_conv1d(module: nn.Module) -> bool:
    """``transformers.pytorch_utils.Conv1D`` or any module of that class name with a 2-D weight."""
    if isinstance(module, nn.Conv1d):
        return False
    for cls in type(module).__mro__:
        if cls.__name__ == "Conv1D":
            w = getattr(module, "weight", None)
            return isinstance(w, torch.Tensor) and w.ndim == 2
    return False


def is_supported(module: nn.Module) -> bool:
    """Whether :func:`layer_spec` accepts ``module``."""
    if is_transformer_conv1d(module):
        return True
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return False
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d))


@dataclass(frozen=True, eq=False)
class LayerSpec:
    """A supported layer, seen as ``channels`` rows of ``n`` weights in ``groups`` groups.

    Channel ``c`` belongs to group ``c // (channels // groups)`` and sees that group's ``X``.
    """

    name: str
    module: nn.Module
    kind: str
    module_type: str
    weight_shape: tuple[int, ...]
    channels: int
    groups: int
    n: int

    @property
    def channel_group(self) -> np.ndarray:
        """Group index of every output channel, shape ``(channels,)``."""
        return np.arange(self.channels) // (self.channels // self.groups)

    def weight_matrix(self, *, full_precision: bool = False) -> np.ndarray:
        """``W0`` as (channels, n) float64: through float16 first unless ``full_precision``.

        Raises :class:`NonFiniteError` on NaN/inf weights, and when a weight overflows float16.
        """
        w = self.module.weight.detach().cpu()
        if not torch.isfinite(w).all():
            raise NonFiniteError(f"layer {self.name!r}: its weights contain NaN or inf")
        if self.kind == "transformer_conv1d":
            w = w.t()
        w = w.reshape(self.channels, self.n)
        if not full_precision:
            w16 = w.to(torch.float16)
            if not torch.isfinite(w16).all():
                raise NonFiniteError(
                    f"layer {self.name!r}: weights up to {float(w.abs().max()):.4g} overflow "
                    f"float16 (max 65504); export with full precision instead"
                )
            w = w16
        return w.to(torch.float64).numpy().copy()


def layer_spec(name: str, module: nn.Module) -> LayerSpec:
    """Describe ``module`` for export; :class:`UnsupportedLayerError` for other layer types."""
    tname = type(module).__name__
    if is_transformer_conv1d(module):
        nx, nf = module.weight.shape
        return LayerSpec(name, module, "transformer_conv1d", tname, (nx, nf), nf, 1, nx)
    if isinstance(module, nn.Linear):
        C, n = module.weight.shape
        return LayerSpec(name, module, "linear", tname, (C, n), C, 1, n)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and not isinstance(
        module, nn.modules.conv._ConvTransposeNd
    ):
        shape = tuple(module.weight.shape)
        C, G = shape[0], int(module.groups)
        n = int(np.prod(shape[1:]))
        if isinstance(module, nn.Conv1d):
            kind = "conv1d"
        elif G == 1:
            kind = "conv"
        elif G == module.in_channels and shape[1] == 1:
            kind = "depthwise"
        else:
            kind = "grouped_conv"
        return LayerSpec(name, module, kind, tname, shape, C, G, n)
    raise UnsupportedLayerError(
        f"layer {name!r} is a {tname}, which cannot be exported; supported: nn.Linear, "
        f"nn.Conv1d, nn.Conv2d (any stride, padding, dilation, groups) and transformers Conv1D"
    )


def patches(
    spec: LayerSpec,
    x: torch.Tensor,
    *,
    unfold: str = "exact",
    row_mask: torch.Tensor | None = None,
    budget: int = PATCH_BUDGET,
) -> Iterator[torch.Tensor]:
    """Yield ``Xᵀ`` of the layer input ``x`` in slices: float64 tensors of shape (G, n, rows).

    ``row_mask`` (bool, shape ``x.shape[:-1]``) keeps only some rows of a Linear/Conv1D input
    (the real tokens of a padded text batch). ``unfold`` is the unfold mode of a convolution
    (see the module docstring). Concatenating the slices along the last axis gives the layer's
    whole ``Xᵀ`` for this input.
    """
    check_unfold_mode(unfold)
    x = x.detach()
    if not torch.isfinite(x).all():
        raise NonFiniteError(f"layer {spec.name!r}: its input activations contain NaN or inf")
    if spec.kind in ("linear", "transformer_conv1d"):
        if x.shape[-1] != spec.n:
            raise CalibrationError(
                f"layer {spec.name!r}: input shape {tuple(x.shape)} does not fit "
                f"{spec.module_type} with {spec.n} input features"
            )
        if row_mask is not None and tuple(row_mask.shape) == tuple(x.shape[:-1]):
            X = x[row_mask.to(torch.bool)]
        else:
            X = x.reshape(-1, spec.n)
        step = max(1, budget // spec.n)
        for i in range(0, X.shape[0], step):
            yield X[i : i + step].to(torch.float64).t().unsqueeze(0)
        return
    yield from _conv_patches(spec, x, unfold, budget)


def check_unfold_mode(unfold: str) -> None:
    """:class:`ValueError` naming the valid modes unless ``unfold`` is one of them."""
    if unfold not in UNFOLD_MODES:
        raise ValueError(f"unknown unfold mode {unfold!r}; valid: {', '.join(UNFOLD_MODES)}")


def _conv_patches(spec: LayerSpec, x: torch.Tensor, unfold: str, budget: int):
    m = spec.module
    one_d = spec.kind == "conv1d"
    want = 2 if one_d else 3
    if x.ndim == want:  # unbatched input
        x = x.unsqueeze(0)
    if x.ndim != want + 1 or x.shape[1] != m.in_channels:
        raise CalibrationError(
            f"layer {spec.name!r}: input shape {tuple(x.shape)} does not fit "
            f"{spec.module_type} with {m.in_channels} input channels"
        )
    if unfold == "exact":
        pad = tuple(m._reversed_padding_repeated_twice)
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        stride, dilation = tuple(m.stride), tuple(m.dilation)
    else:
        pad, mode = (), "constant"
        stride, dilation = (1,) * len(m.stride), (1,) * len(m.dilation)
    kernel = tuple(m.kernel_size)
    if one_d:
        kernel, stride, dilation = (1, *kernel), (1, *stride), (1, *dilation)
    G, nG = spec.groups, spec.n
    B = x.shape[0]
    per_sample = nG * G * _positions(x.shape[-1] + (sum(pad[:2]) if pad else 0), kernel[-1],
                                     stride[-1], dilation[-1])
    if not one_d:
        per_sample *= _positions(x.shape[-2] + (sum(pad[2:4]) if pad else 0), kernel[0],
                                 stride[0], dilation[0])
    step = max(1, budget // max(per_sample, 1))
    for i in range(0, B, step):
        xb = x[i : i + step]
        if any(pad):
            xb = F.pad(xb, pad, mode=mode)
        if one_d:
            xb = xb.unsqueeze(2)
        yield _im2col(xb, G, kernel, stride, dilation)


def _im2col(x: torch.Tensor, G: int, kernel, stride, dilation) -> torch.Tensor:
    """Patches of a padded (b, C, H, W) input as float64 (G, C/G·kh·kw, b·Ho·Wo).

    Built from strided views (``Tensor.unfold`` per spatial axis, every ``dilation``-th element
    of each window) and one copy into float64 — the same numbers as ``F.unfold`` in the same
    order (input channel, kernel row, kernel column), several times faster.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    v = x.unfold(2, dh * (kh - 1) + 1, sh)[..., ::dh]  # (b, C, Ho, W, kh)
    v = v.unfold(3, dw * (kw - 1) + 1, sw)[..., ::dw]  # (b, C, Ho, Wo, kh, kw)
    b, C, Ho, Wo = v.shape[:4]
    v = v.reshape(b, G, C // G, Ho, Wo, kh, kw).permute(1, 2, 5, 6, 0, 3, 4)
    out = torch.empty(v.shape, dtype=torch.float64)
    out.copy_(v)
    return out.view(G, (C // G) * kh * kw, b * Ho * Wo)


def _positions(size: int, k: int, s: int, d: int) -> int:
    return max(0, (size - d * (k - 1) - 1) // s + 1)
