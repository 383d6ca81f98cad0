"""Compiling the served model at archive build into AOTInductor packages, and ``--precision auto``.

``aot_package`` exports the served network (``classifier_model.ServedModel``: uint8 NHWC batch in, logits
out) with a dynamic batch dimension up to TorchServe's batchSize, and compiles it ahead of time with
AOTInductor into a ``.pt2`` package that the handler loads at worker start (no compile wait there). Weights
are frozen into the package (conv+BN folded, oneDNN prepacked layouts), so the package only runs on a CPU
with the instruction set it was built on: the builder records the CPU's flags next to it.

Precisions: ``fp32`` compiles the network as is; ``bf16`` compiles it under bf16 autocast; ``int8`` first
quantizes it statically (``archive_quantize``), then compiles the quantized graph, which inductor lowers to
oneDNN's int8 kernels. ``auto`` compiles every candidate this CPU supports, checks and times them, and
keeps the fastest that matches fp32 (``archive_precision``).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import torch

import archive_precision
from archive_quantize import (
    CALIBRATION_DIR,
    calibration_batch,
    export,
    has_int8_dot_products,
    quantize_int8,
)
from classifier_cpu import best_precision, cpu_flags, isa_flags
from classifier_model import ServedModel

log = logging.getLogger("build_archive")


class AutocastBF16(torch.nn.Module):
    """The served model's forward under bf16 autocast, so export captures the casts into the graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = self.model(batch)
        return logits.float()


def served_for(
    model: ServedModel, precision: str, calibration: torch.Tensor | None, max_batch: int, reduce_range: bool
) -> torch.nn.Module:
    """The module to compile for ``precision``."""
    if precision == "int8":
        if calibration is None:
            raise ValueError("int8 needs calibration images")
        return quantize_int8(model, calibration, max_batch, reduce_range)
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
    reduce_range: bool = False,
) -> Path:
    """Compile the served model for ``precision`` with AOTInductor into the package ``path``."""
    import torch._inductor.config as inductor_config

    module = served_for(model, precision, calibration, max_batch, reduce_range)
    example = torch.zeros(2, crop, crop, 3, dtype=torch.uint8)
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
        "worker's start, on CPUs with this one's instruction set (else it serves eager); int8 and auto "
        "always are",
    )
    parser.add_argument(
        "--auto-by",
        choices=("timing", "flags"),
        default="timing",
        help="how --precision auto decides: timing (compile, check and time every precision this CPU "
        "supports; the fastest that matches fp32 wins) or flags (bf16 with native bf16, else int8 with "
        "VNNI, else fp32; nothing timed) (%(default)s)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=CALIBRATION_DIR,
        help="folder of photos that calibrate int8 quantization and check auto's candidates (%(default)s)",
    )


def resolve_precision(requested: str, flags: set[str], auto_by: str = "flags") -> tuple[str, str]:
    """``--precision`` as built: ``auto`` by ``flags`` becomes ``best_precision``; ``auto`` by ``timing``
    stays ``auto`` until ``compile_into`` has timed the candidates."""
    if requested == "auto":
        return best_precision(flags) if auto_by == "flags" else ("auto", "timed at build")
    return requested, "asked for"


def compile_into(
    work: Path, cls: type[torch.nn.Module], state_dict: dict[str, torch.Tensor], args: argparse.Namespace,
    handler: dict[str, Any], max_batch: int,
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Compile the model for ``handler["precision"]`` into ``work`` (``auto``: the fastest candidate that
    passes the check); returns the package and what to record in build_info.json. Fills ``handler``'s
    ``precision`` (what ``auto`` chose), ``aot_package`` and ``aot_isa``."""
    net = cls()
    net.load_state_dict(state_dict)
    model = ServedModel(net.eval(), handler["mean"], handler["std"], channels_last=True).eval()
    model = model.to(memory_format=torch.channels_last)
    precision, crop, resize = handler["precision"], handler["crop_size"], handler["resize_size"]
    flags = cpu_flags()
    reduce_range = not has_int8_dot_products(flags)
    calibration = None
    if precision in ("int8", "auto"):
        calibration = calibration_batch(args.calibration, resize, crop, seed=args.seed)

    def compile_as(candidate: str) -> Path:
        path = work / f"{args.arch}-{candidate}.pt2"
        return aot_package(model, candidate, max_batch, crop, path, calibration, reduce_range)

    info: dict[str, Any] = {}
    if precision == "auto":
        check = calibration_batch(
            args.calibration, resize, crop, seed=args.seed + 1, views=archive_precision.CHECK_VIEWS
        )
        precision, info["choice"] = fastest(model, compile_as, check, max_batch, flags)
        handler["precision"] = precision
        path = work / f"{args.arch}-{precision}.pt2"
    else:
        path = compile_as(precision)
    isa = isa_flags(flags)
    handler["aot_package"], handler["aot_isa"] = path.name, isa
    info.update({"file": path.name, "precision": precision, "cpu_flags": isa})
    if precision == "int8" and calibration is not None:
        info["calibration"] = {"folder": str(args.calibration), "images": len(calibration)}
        info["int8_activations"] = "7-bit (no VNNI/AMX)" if reduce_range else "8-bit"
    return path, info


def fastest(
    model: ServedModel, compile_as: Any, check: torch.Tensor, max_batch: int, flags: set[str]
) -> tuple[str, dict[str, Any]]:
    """Compile, check and time every candidate precision (``archive_precision``); the winner's package
    stays in the build folder, the others are deleted. Returns the winner and the record of the choice."""
    names, skipped = archive_precision.candidates(flags)
    reference = archive_precision.logits(model, check, max_batch)
    packages, checks, paths = {}, {}, {}
    for name in names:
        try:
            paths[name] = compile_as(name)
            packages[name] = torch._inductor.aoti_load_package(str(paths[name]))
        except Exception as exc:  # a candidate that cannot compile here is left out, not the build
            if name == "fp32":
                raise
            log.warning("auto: the %s candidate failed to compile: %s", name, exc)
            skipped[name] = f"failed to compile: {exc}"
            continue
        candidate_logits = archive_precision.logits(packages[name], check, max_batch)
        checks[name] = archive_precision.agreement(reference, candidate_logits)
    batch = torch.cat([check] * math.ceil(max_batch / len(check)))[:max_batch].contiguous()
    timings = archive_precision.time_models(packages, batch)
    best, why = archive_precision.choose(timings, checks)
    for name, path in paths.items():
        if name != best:
            path.unlink()
    log.info("auto: %s, %s", best, why)
    record = {
        "why": why,
        "batch_size": max_batch,
        "threads": torch.get_num_threads(),
        "candidates": {
            name: {"ms_per_batch": round(timings[name], 2), "check": checks[name]} for name in timings
        },
        "left_out": skipped,
    }
    return best, record
