"""Build a TorchServe model archive (.mar) for the image classifier.

Usage: ``python -m handlers.build_archive [--arch resnet50] [--weights PATH] ...`` (see ``--help``).

The archive holds the model definition (handlers/<arch>.py), a state_dict, OUR handler
(handlers/classifier_handler.py and its sibling modules handlers/classifier_*.py), index_to_name.json, a
generated model-config.yaml (worker, batching and ``handler:`` settings) and build_info.json (where the
weights came from). Weights are resolved as ``archive_weights`` describes; the model class is loaded and
the weights checked the way the handler loads them at serving time (``classifier_model``), and the
handler's defaults (``classifier_config``) fill the ``handler:`` section.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

import archive_compile
from archive_packaging import HANDLER_FILE, HANDLERS_DIR, package
from archive_weights import UNTRAINED_SUFFIX, BuildError, check_weights_fit, resolve_weights, sha256_of
from classifier_config import DEFAULT_CONFIG, IMAGENET_MEAN, IMAGENET_STD, PRECISIONS, usable_cores
from classifier_cpu import cpu_flags
from classifier_model import model_class

log = logging.getLogger("build_archive")

# The EfficientNet-Lite checkpoints were trained in TF with inputs scaled as (x - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class ArchSpec:
    """What differs between the architectures the builder knows."""

    model_file: Path
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int = DEFAULT_CONFIG["resize_size"]
    crop_size: int = DEFAULT_CONFIG["crop_size"]


ARCHS: dict[str, ArchSpec] = {
    "resnet50": ArchSpec(HANDLERS_DIR / "resnet50.py", IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": ArchSpec(HANDLERS_DIR / "efficientnet_lite0.py", LITE_MEAN, LITE_STD),
}
# Intra-op threads scale well to about four per batch of 8 images; past that, more workers serve more.
CORES_PER_WORKER = 4
# torchvision's ResNet50 weights: V2 is more accurate but was evaluated with a 232 px resize.
RESNET50_VARIANT_RESIZE = {"IMAGENET1K_V1": 256, "IMAGENET1K_V2": 232}


@dataclass
class BuildResult:
    """What a build produced (also printed for the user)."""

    archive: Path
    model_name: str
    version: str
    weights_source: str
    trained: bool
    seconds: float
    model_config: dict[str, Any] = field(default_factory=dict)


def workers_arg(value: str) -> int:
    """--workers: a count, or ``auto``: one worker per ``CORES_PER_WORKER`` usable cores (at least one)."""
    if value == "auto":
        return max(1, usable_cores() // CORES_PER_WORKER)
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a worker count: {value!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="python -m handlers.build_archive",
        description="Build a TorchServe .mar archive for the image classifier. Weights: --weights, else "
        "torchvision's hub cache, else a download, else seeded random weights (version gets '-untrained').",
    )
    p.add_argument("--model-name", default="resnet50", help="name registered in TorchServe (%(default)s)")
    p.add_argument("--version", default="1.0", help="model version, '-untrained' appended for random weights")
    p.add_argument("--arch", choices=sorted(ARCHS), default="resnet50", help="model definition (%(default)s)")
    p.add_argument(
        "--weights", type=Path, help="a state_dict .pth, or a checkpoint with 'state_dict'/'model'"
    )
    p.add_argument(
        "--weights-variant",
        choices=sorted(RESNET50_VARIANT_RESIZE),
        default="IMAGENET1K_V1",
        help="torchvision ResNet50 weights to take from the hub cache or download (%(default)s); "
        "IMAGENET1K_V2 is more accurate and was evaluated with --resize-size 232, its default then",
    )
    p.add_argument("--resize-size", type=int, help="short side before the center crop (256; 232 for V2)")
    p.add_argument("--crop-size", type=int, help="center crop fed to the model (224)")
    p.add_argument("--batch-size", type=int, default=8, help="TorchServe batchSize (%(default)s)")
    p.add_argument(
        "--max-batch-delay", type=int, default=20, help="TorchServe maxBatchDelay, ms (%(default)s)"
    )
    p.add_argument(
        "--workers",
        type=workers_arg,
        default=1,
        help="TorchServe min/maxWorkers (%(default)s); auto: one per 4 usable cores, each with its share of "
        "torch threads",
    )
    p.add_argument(
        "--response-timeout", type=int, default=120, help="TorchServe responseTimeout, s (%(default)s)"
    )
    p.add_argument(
        "--startup-timeout",
        type=int,
        help="TorchServe startupTimeout, s: worker load time allowed (120; 600 with --compile)",
    )
    p.add_argument(
        "--precision",
        choices=(*PRECISIONS, "auto"),
        default="fp32",
        help="inference precision (fp32); int8 is quantized and compiled ahead of time; auto: the fastest "
        "this CPU supports that matches fp32, timed at build (see --auto-by), compiled ahead of time",
    )
    archive_compile.add_options(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile (inductor, frozen weights) at load: ~20%% faster fp32 on 2 CPU cores, but each "
        "worker start compiles every batch size up to --batch-size (~70 s cold on 2 cores)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_CONFIG["max_image_pixels"],
        help="over it: 422 (%(default)s)",
    )
    p.add_argument("--export-path", type=Path, default=Path("model_store"), help="output dir (%(default)s)")
    p.add_argument("--archive-name", help="output file name without .mar (default: the model name)")
    p.add_argument("--random-weights", action="store_true", help="skip the lookup: seeded random weights")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights (%(default)s)")
    p.add_argument("--no-download", action="store_true", help="never try the network")
    p.add_argument("--force", action="store_true", help="overwrite an existing archive")
    args = p.parse_args(argv)
    args.precision, args.precision_reason = archive_compile.resolve_precision(
        args.precision, cpu_flags(), args.auto_by
    )
    args.aot = args.aot or args.precision in ("int8", "auto")
    if args.startup_timeout is None:
        args.startup_timeout = 600 if args.compile else 120
    for name in (
        "batch_size", "max_batch_delay", "workers", "response_timeout", "startup_timeout", "max_image_pixels"
    ):  # fmt: skip
        if getattr(args, name) < (0 if name == "max_batch_delay" else 1):
            p.error(f"--{name.replace('_', '-')} is out of range")
    return args


def imagenet_labels() -> dict[str, str]:
    """index -> ImageNet class name, keyed by index so the duplicate names (crane, maillot) both stay."""
    from torchvision.models import ResNet50_Weights  # deferred: torchvision import is slow

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    return {str(i): name for i, name in enumerate(categories)}


def model_config(args: argparse.Namespace, spec: ArchSpec) -> dict[str, Any]:
    """Contents of model-config.yaml: TorchServe's worker/batching keys plus our handler's section."""
    resize = args.resize_size
    if resize is None:
        resize = (
            RESNET50_VARIANT_RESIZE[args.weights_variant] if args.arch == "resnet50" else spec.resize_size
        )
    crop = args.crop_size or spec.crop_size
    if crop > resize:
        raise BuildError(f"--crop-size {crop} is larger than --resize-size {resize}")
    return {
        "minWorkers": args.workers,
        "maxWorkers": args.workers,
        "batchSize": args.batch_size,
        "maxBatchDelay": args.max_batch_delay,
        "responseTimeout": args.response_timeout,
        "startupTimeout": args.startup_timeout,
        "handler": {
            "resize_size": resize,
            "crop_size": crop,
            "mean": [round(v, 6) for v in spec.mean],
            "std": [round(v, 6) for v in spec.std],
            "precision": args.precision,
            "max_image_pixels": args.max_image_pixels,
            "compile": args.compile,
            "aot_package": None,
            "aot_isa": [],
        },
    }


def build(args: argparse.Namespace) -> BuildResult:
    """Build the archive described by ``args`` (see parse_args); raises BuildError."""
    started = time.perf_counter()
    spec = ARCHS[args.arch]
    if not HANDLER_FILE.is_file():
        raise BuildError(f"handler not found: {HANDLER_FILE}")
    target = args.export_path / f"{args.archive_name or args.model_name}.mar"
    if target.exists() and not args.force:
        raise BuildError(f"{target} already exists (use --force to overwrite)")
    cfg = model_config(args, spec)
    try:
        cls = model_class(spec.model_file)
    except ValueError as exc:
        raise BuildError(str(exc)) from exc
    weights = resolve_weights(args, cls)
    if weights.trained:
        check_weights_fit(cls, weights)
    version = args.version if weights.trained else args.version + UNTRAINED_SUFFIX

    args.export_path.mkdir(parents=True, exist_ok=True)
    # Staged next to the target so the final rename is atomic (same file system).
    work = Path(tempfile.mkdtemp(prefix=f".{target.stem}-", dir=args.export_path))
    try:
        serialized = work / f"{args.arch}.pth"
        torch.save(weights.state_dict, serialized)
        (work / "index_to_name.json").write_text(json.dumps(imagenet_labels(), indent=0))
        extra, compiled = [], None
        if args.aot:
            aot_file, compiled = archive_compile.compile_into(
                work, cls, weights.state_dict, args, cfg["handler"], args.batch_size
            )
            extra.append(aot_file)
        (work / "model-config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        info = {
            "arch": args.arch,
            "model_name": args.model_name,
            "version": version,
            "weights_source": weights.source,
            "trained": weights.trained,
            "weights_sha256": sha256_of(serialized),
            "precision": {"built": cfg["handler"]["precision"], "why": precision_why(args, compiled)},
            "aot": compiled,
            "torch": torch.__version__,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (work / "build_info.json").write_text(json.dumps(info, indent=2))
        built = package(work, args, spec.model_file, version, serialized, extra)
        os.replace(built, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult(
        target, args.model_name, version, weights.source, weights.trained, time.perf_counter() - started, cfg
    )


def precision_why(args: argparse.Namespace, compiled: dict[str, Any] | None) -> str:
    """Why the archive has its precision: asked for, the CPU-flag rule, or auto's timing."""
    if compiled and "choice" in compiled:
        return str(compiled["choice"]["why"])
    return str(args.precision_reason)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    # Root at WARNING hides model_archiver's "exported to <temp dir>" line; our own INFO lines stay.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    try:
        result = build(args)
    except BuildError as exc:
        log.error("%s", exc)
        return 1
    print(f"archive: {result.archive}")
    print(f"model:   {result.model_name} version {result.version}")
    print(f"weights: {result.weights_source}")
    handler = result.model_config["handler"]
    print(
        f"serves:  {handler['precision']}"
        + (f", compiled ahead of time ({handler['aot_package']})" if handler["aot_package"] else "")
    )
    print(f"built in {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
