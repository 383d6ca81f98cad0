"""Compiling the served model at archive build: int8 quantization and AOTInductor packages.

``aot_package`` exports the served network (``classifier_model.ServedModel``: uint8 NHWC batch in, logits
out) with a dynamic batch dimension up to TorchServe's batchSize, and compiles it ahead of time with
AOTInductor into a ``.pt2`` package that the handler loads at worker start (no compile wait there). Weights
are frozen into the package (conv+BN folded, oneDNN prepacked layouts), so the package only runs on a CPU
with the instruction set it was built on: the builder records the CPU's flags next to it.

Precisions: ``fp32`` compiles the network as is; ``bf16`` compiles it under bf16 autocast; ``int8`` first
quantizes it statically with PyTorch 2 export quantization (torchao's ``X86InductorQuantizer``: int8
activations per tensor, int8 weights per channel; depthwise convolutions stay fp32), calibrated on
``calibration_batch`` (the photos in ``calibration/``), then compiles the quantized graph, which inductor
lowers to oneDNN's int8 kernels (VNNI, AMX).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from classifier_cpu import best_precision, cpu_flags, isa_flags
from classifier_image import resize_crop
from classifier_model import ServedModel

log = logging.getLogger("build_archive")

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
CALIBRATION_VIEWS = 8  # crops per calibration image: scale and position vary, every other one mirrored
CALIBRATION_CHUNK = 8  # images per calibration forward pass


class AutocastBF16(torch.nn.Module):
    """The served model's forward under bf16 autocast, so export captures the casts into the graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = self.model(batch)
        return logits.float()


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


def export(model: torch.nn.Module, example: torch.Tensor, max_batch: int) -> torch.export.ExportedProgram:
    """torch.export with the batch dimension dynamic from 1 to ``max_batch``."""
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))


def quantize_int8(model: ServedModel, calibration: torch.Tensor, max_batch: int) -> torch.nn.Module:
    """Static int8 post-training quantization (PT2E, X86 inductor quantizer) calibrated on ``calibration``.

    The result runs in eager mode with quantize/dequantize ops around float ops (slow; numerically what the
    int8 kernels compute); compile it (``aot_package``) for speed.
    """
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    for name in depthwise_convs(model):
        quantizer.set_module_name_qconfig(name, None)
    example = calibration[: min(2, len(calibration))]
    prepared = prepare_pt2e(export(model, example, max_batch).module(), quantizer)
    with torch.no_grad():
        for start in range(0, len(calibration), CALIBRATION_CHUNK):
            prepared(calibration[start : start + CALIBRATION_CHUNK])
    return convert_pt2e(prepared)


def depthwise_convs(model: torch.nn.Module) -> list[str]:
    """The depthwise convolutions' names. They stay fp32 in an int8 model: one filter per channel sees a
    single channel's range, which a per-tensor int8 activation scale fits badly (on EfficientNet-Lite0 the
    logits' error halves when they stay float); they are a small share of the work."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
    ]


def served_for(
    model: ServedModel, precision: str, calibration: torch.Tensor | None, max_batch: int
) -> torch.nn.Module:
    """The module to compile for ``precision``."""
    if precision == "int8":
        if calibration is None:
            raise ValueError("int8 needs calibration images")
        return quantize_int8(model, calibration, max_batch)
    if precision == "bf16":
        return AutocastBF16(model).eval()
    return model


def aot_package(
    model: ServedModel,
    precision: str,
    max_batch: int,
    crop: int,
    path: Path,
    calibration: torch.Tensor | None = None,
) -> Path:
    """Compile the served model for ``precision`` with AOTInductor into the package ``path``."""
    import torch._inductor.config as inductor_config

    module = served_for(model, precision, calibration, max_batch)
    example = torch.zeros(min(2, max(2, max_batch)), crop, crop, 3, dtype=torch.uint8)
    with torch.no_grad():
        program = export(module, example, max_batch)
        # Freezing folds the weights into the graph: conv+BN folding and oneDNN's prepacked layouts.
        with inductor_config.patch(freezing=True):
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    log.info("compiled the %s model ahead of time into %s", precision, path.name)
    return path


def add_options(parser: argparse.ArgumentParser) -> None:
    """The builder's options for compiling at build time."""
    parser.add_argument(
        "--aot",
        action="store_true",
        help="compile the model ahead of time (AOTInductor) into the archive: compiled speed from the "
        "worker's start, on CPUs with this one's instruction set (else it serves eager); int8 always is",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=CALIBRATION_DIR,
        help="folder of photos that calibrate int8 quantization (%(default)s)",
    )


def resolve_precision(requested: str, flags: set[str]) -> tuple[str, str]:
    """``--precision`` as built: ``auto`` becomes the fastest one this CPU supports (``best_precision``)."""
    if requested == "auto":
        return best_precision(flags)
    return requested, "asked for"


def compile_into(
    work: Path, cls: type[torch.nn.Module], state_dict: dict[str, torch.Tensor], args: argparse.Namespace,
    handler: dict[str, Any], max_batch: int,
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Compile the model for ``handler["precision"]`` into ``work``; returns the package and what to record
    in build_info.json. Fills ``handler``'s ``aot_package`` and ``aot_isa``."""
    net = cls()
    net.load_state_dict(state_dict)
    model = ServedModel(net.eval(), handler["mean"], handler["std"], channels_last=True).eval()
    model = model.to(memory_format=torch.channels_last)
    precision, crop = handler["precision"], handler["crop_size"]
    calibration = None
    if precision == "int8":
        calibration = calibration_batch(args.calibration, handler["resize_size"], crop, seed=args.seed)
    path = work / f"{args.arch}-{precision}.pt2"
    aot_package(model, precision, max_batch, crop, path, calibration)
    flags = isa_flags(cpu_flags())
    handler["aot_package"], handler["aot_isa"] = path.name, flags
    info: dict[str, Any] = {"file": path.name, "precision": precision, "cpu_flags": flags}
    if calibration is not None:
        info["calibration"] = {"folder": str(args.calibration), "images": len(calibration)}
    return path, info
