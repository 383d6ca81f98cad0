"""Static int8 quantization of the served model at archive build (PyTorch 2 export quantization).

The recipe, each part measured on the pretrained EfficientNet-Lite0 against fp32 (eager, q/dq simulated):

- torchao's ``X86InductorQuantizer``: activations uint8 per tensor (histogram observer), weights int8 per
  output channel (symmetric), BatchNorm folded into the convolutions first;
- calibration: ``CALIBRATION_VIEWS`` random crops (every other one mirrored) of each photo in
  ``calibration/``, through the handler's resize and center crop;
- float layers (``float_layers``): depthwise convolutions (one filter per channel sees a single channel's
  range, which a per-tensor activation scale fits badly) and the convolutions that see the image (three
  input channels: little work, and their 27-weight filters lose the most to int8 rounding);
- bias correction (``bias_corrected``): rounding the weights shifts every output channel's mean by the
  weight error times the mean input; after ReLU6 the inputs are far from zero-mean, so the shift adds up
  through the blocks. Each quantized layer's bias absorbs it (Nagel et al., "Data-Free Quantization
  through Weight Equalization and Bias Correction"); on Lite0 it divides the logits' error by three;
- ``nn.ReLU`` modules become ``torch.relu`` calls (``functional_relus``): the quantizer takes a module
  called more than once (torchvision's Bottleneck calls one ReLU three times) for one pattern with several
  outputs, and gives up;
- on CPUs without int8 dot-product instructions (VNNI, AMX) activations keep 7 bits (``reduce_range``):
  their int8 kernels add pairs of uint8 x int8 products in 16 bits, which full-range activations overflow.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from classifier_cpu import INT8_FLAGS
from classifier_image import resize_crop
from classifier_model import ServedModel

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
CALIBRATION_VIEWS = 16  # crops per calibration image: scale and position vary, every other one mirrored
CALIBRATION_CHUNK = 8  # images per calibration forward pass
WEIGHT_EPS = 2**-12  # the smallest weight scale of the quantizer's per-channel observer

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def calibration_batch(
    folder: Path, resize: int, crop: int, seed: int = 0, views: int = CALIBRATION_VIEWS
) -> torch.Tensor:
    """The photos in ``folder`` as an NHWC uint8 batch of ``views`` random crops each (seeded), the handler's
    resize and center crop applied to every crop: what the served model sees, with more variety."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no calibration images in {folder}")
    rng = np.random.default_rng(seed)
    pixels = []
    for path in paths:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        for view in range(views):
            pixels.append(resize_crop(random_view(image, rng, mirrored=view % 2 == 1), resize, crop))
    return torch.from_numpy(np.stack(pixels))


def random_view(image: Image.Image, rng: np.random.Generator, mirrored: bool) -> Image.Image:
    """A crop of 50-100 % of each side at a random position, mirrored when asked."""
    width, height = image.size
    scale = rng.uniform(0.5, 1.0)
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    view = image.crop((left, top, left + w, top + h))
    return view.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if mirrored else view


def exported_batch_limit(max_batch: int) -> int:
    """The largest batch ``export``'s graph takes for ``max_batch``: at least 2, since torch.export
    specializes a dynamic dimension that can only be 1."""
    return max(2, max_batch)


def export(model: torch.nn.Module, example: torch.Tensor, max_batch: int) -> torch.export.ExportedProgram:
    """torch.export with the batch dimension dynamic from 1 to ``exported_batch_limit(max_batch)``."""
    batch = torch.export.Dim("batch", min=1, max=exported_batch_limit(max_batch))
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))


def depthwise_convs(model: torch.nn.Module) -> list[str]:
    """The depthwise convolutions' names (one filter per input channel)."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
    ]


def image_convs(model: torch.nn.Module) -> list[str]:
    """The convolutions that take the RGB image: three input channels."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3
    ]


def float_layers(model: torch.nn.Module) -> list[str]:
    """The layers an int8 model keeps in float: depthwise convolutions and the ones that see the image."""
    return depthwise_convs(model) + image_convs(model)


def quantized_layers(model: torch.nn.Module, kept: Iterable[str]) -> list[str]:
    """The convolutions and linear layers that int8 quantizes: all but ``kept``."""
    skip = set(kept)
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and name not in skip
    ]


def weight_rounding_error(weight: torch.Tensor) -> torch.Tensor:
    """What int8 per-output-channel symmetric quantization (the quantizer's weight observer) adds to
    ``weight``. The same rounding applies after BatchNorm folding, which scales whole output channels."""
    rows = weight.flatten(1)
    scale = (rows.abs().amax(dim=1).clamp(min=WEIGHT_EPS) / 127.5)[:, None]
    return ((rows * (1.0 / scale)).round().clamp(-128, 127) * scale - rows).view_as(weight)


def input_means(
    model: torch.nn.Module, names: list[str], calibration: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The mean input of each named layer per input channel over ``calibration``."""
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}

    def record(name: str, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].double()
        total = x.mean(dim=[d for d in range(x.dim()) if d != 1]) * x.shape[0]
        sums[name] = sums[name] + total if name in sums else total

    hooks = [
        modules[name].register_forward_pre_hook(lambda _module, inputs, name=name: record(name, inputs))
        for name in names
    ]
    try:
        with torch.no_grad():
            for start in range(0, len(calibration), CALIBRATION_CHUNK):
                model(calibration[start : start + CALIBRATION_CHUNK])
    finally:
        for hook in hooks:
            hook.remove()
    return {name: (total / len(calibration)).float() for name, total in sums.items()}


def bias_corrected(model: ModuleT, names: list[str], calibration: torch.Tensor) -> ModuleT:
    """A copy of ``model`` whose named layers' biases cancel the mean output shift of their int8 weights:
    bias -= weight error x mean input (summed over the kernel window; padding is neglected)."""
    model = copy.deepcopy(model)
    means = input_means(model, names, calibration)
    modules = dict(model.named_modules())
    for name in names:
        layer = modules[name]
        error = weight_rounding_error(layer.weight.detach())
        per_channel = error.sum(dim=tuple(range(2, error.dim()))) if error.dim() > 2 else error
        shift = -(per_channel @ means[name])
        if layer.bias is None:
            layer.bias = torch.nn.Parameter(shift)
        else:
            layer.bias.data += shift
    return model


class FunctionalReLU(torch.nn.Module):
    """``nn.ReLU`` as a plain ``torch.relu`` call: each call its own node for the quantizer's patterns."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def functional_relus(model: torch.nn.Module) -> None:
    """Replace every ``nn.ReLU`` module of ``model`` (in place) with a ``FunctionalReLU``."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(module, name, FunctionalReLU())


def has_int8_dot_products(flags: Iterable[str]) -> bool:
    """Whether the CPU multiplies-and-adds int8 in 32 bits (VNNI, AMX) rather than in 16."""
    return bool(set(INT8_FLAGS) & set(flags))


def quantize_int8(
    model: ServedModel, calibration: torch.Tensor, max_batch: int, reduce_range: bool = False
) -> torch.nn.Module:
    """Static int8 post-training quantization of ``model`` calibrated on ``calibration`` (see the module
    docstring). The result runs in eager mode with quantize/dequantize ops around float ops (slow;
    numerically what the int8 kernels compute); compile it for speed."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    kept = float_layers(model)
    corrected = bias_corrected(model, quantized_layers(model, kept), calibration)
    functional_relus(corrected)
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range))
    for name in kept:
        quantizer.set_module_name_qconfig(name, None)
    example = calibration[: min(2, len(calibration))]
    prepared = prepare_pt2e(export(corrected, example, max_batch).module(), quantizer)
    chunk = min(CALIBRATION_CHUNK, exported_batch_limit(max_batch))
    with torch.no_grad():
        for start in range(0, len(calibration), chunk):
            prepared(calibration[start : start + chunk])
    return convert_pt2e(prepared)
