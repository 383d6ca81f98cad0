"""What an archive configures: the handler settings (model-config.yaml's ``handler:`` section) and labels.

``DEFAULT_CONFIG`` holds every setting the handler reads; ``load_handler_config`` merges the archive's
section over it and validates it, so a bad archive fails at load time, not on the first request. The
archive builder (``build_archive``) takes its defaults from here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# torchvision's ImageNet preprocessing: what ResNet-50's weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_SIZE = 256
CROP_SIZE = 224
MAX_IMAGE_PIXELS = 64_000_000
PRECISIONS = ("fp32", "bf16", "int8")

DEFAULT_CONFIG: dict[str, Any] = {
    "resize_size": RESIZE_SIZE,
    "crop_size": CROP_SIZE,
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    "max_image_pixels": MAX_IMAGE_PIXELS,
    "precision": "fp32",  # fp32 | bf16 (autocast) | int8 (quantized at build; only as an AOT package)
    "default_top_k": 5,
    "max_top_k": 100,
    "torch_threads": None,  # None: usable cores // workers, at least 1
    "compile": False,
    "aot_package": None,  # an AOTInductor package in the archive, compiled at build, served when it loads
    "aot_isa": [],  # the CPU flags the package was built with: it is not loaded on a CPU that lacks one
    "channels_last": True,
    "fuse": True,  # fold BatchNorm into the preceding conv at load time (fewer passes over the activations)
    "preprocess_threads": None,  # None: as torch_threads; decodes/resizes a batch's rows in parallel
    "warmup": True,  # dummy forwards at load time, so the first requests do not pay lazy init
}


def load_handler_config(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge model-config.yaml's ``handler:`` section over ``DEFAULT_CONFIG`` and validate it."""
    config = {**DEFAULT_CONFIG, **{k: v for k, v in (section or {}).items() if v is not None}}
    for key in ("resize_size", "crop_size", "max_image_pixels", "default_top_k", "max_top_k"):
        config[key] = _positive_int(config, key)
    if config["crop_size"] > config["resize_size"]:
        raise ValueError("handler.crop_size must not exceed handler.resize_size")
    if config["default_top_k"] > config["max_top_k"]:
        raise ValueError("handler.default_top_k must not exceed handler.max_top_k")
    for key in ("mean", "std"):
        values = config[key]
        if not isinstance(values, Sequence) or len(values) != 3:
            raise ValueError(f"handler.{key} must be a list of 3 numbers")
        config[key] = [float(v) for v in values]
    if min(config["std"]) <= 0:
        raise ValueError("handler.std values must be > 0")
    config["precision"] = str(config["precision"]).lower()
    if config["precision"] not in PRECISIONS:
        raise ValueError(f"handler.precision must be one of {PRECISIONS}")
    if config["precision"] == "int8" and not config["aot_package"]:
        raise ValueError("handler.precision int8 needs handler.aot_package (the quantized model)")
    if not isinstance(config["aot_isa"], list | tuple) or not all(
        isinstance(f, str) for f in config["aot_isa"]
    ):
        raise ValueError("handler.aot_isa must be a list of CPU flag names")
    config["aot_isa"] = list(config["aot_isa"])
    for key in ("torch_threads", "preprocess_threads"):
        if config[key] is not None:
            config[key] = _positive_int(config, key)
    for key in ("compile", "channels_last", "fuse", "warmup"):
        config[key] = _bool(config, key)
    return config


def _positive_int(config: dict[str, Any], key: str) -> int:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"handler.{key} must be a positive integer, got {value!r}")
    return value


def _bool(config: dict[str, Any], key: str) -> bool:
    value = config[key]
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def default_torch_threads(model_yaml_config: Mapping[str, Any]) -> int:
    """Usable cores divided among this model's workers, so the workers do not oversubscribe the CPU."""
    cores = usable_cores()
    workers = model_yaml_config.get("minWorkers") or os.environ.get("TS_DEFAULT_WORKERS_PER_MODEL") or 1
    try:
        workers = max(1, int(workers))
    except (TypeError, ValueError):
        workers = 1
    return max(1, cores // workers)


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_labels(path: str | Path) -> dict[int, str]:
    """index_to_name.json as a list or {"0": name} (a [wnid, name] value keeps the name) -> {index: name}."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    items = enumerate(raw) if isinstance(raw, list) else raw.items()
    labels = {}
    for key, value in items:
        name = value[-1] if isinstance(value, list) else value
        labels[int(key)] = str(name)
    return labels
