"""TorchServe handler for ImageNet-style image classification (ResNet-50, EfficientNet-Lite0, ...).

Self-contained: TorchServe copies this file alone into the model directory and imports it as a top-level
module. Its loader instantiates the only class defined here, so the module defines exactly ONE class
(``ImageClassifierHandler``); the row-level error type is nested inside it for that reason.

Per request row (see the project contract):

- input: image bytes in ``data``, ``body``, ``file`` or ``image`` (raw bytes, a multipart part, or base64
  text, optionally a ``data:...;base64,`` URL); a JSON body ``{"data": "<base64>", "top_k": 3}`` works too.
  Optional ``top_k``: a form field or JSON key (bytes, str or int), else the ``X-Top-K`` request header (a
  raw body has no fields: the control API sends the image raw, which spares TorchServe's frontend a
  multipart decode, a third of its CPU on a 12 MP upload).
- decoding (Pillow): JPEG (and MPO), PNG, WebP, GIF (first frame), BMP, TIFF (first page). The pixel count
  from the header is checked against ``max_image_pixels`` before any pixel is decoded. JPEGs are decoded
  with ``Image.draft`` at the smallest DCT scale that keeps the short side >= ``resize_size``. EXIF
  orientation is applied. Alpha is composited onto WHITE (transparent pixels often hold arbitrary colour,
  so dropping alpha would feed that to the model; white is what viewers show). 16-bit and 32-bit
  grayscale (I;16, I, F) are scaled to 8 bits by value range, not clipped (see ``high_depth_to_l``).
- transform: short side to ``resize_size`` with antialiased bilinear resampling (PIL, the same filter
  torchvision uses for PIL images), center crop ``crop_size``, normalisation with ``mean``/``std``. The crop
  is resampled directly with PIL's ``resize(box=...)``, identical to resize-then-crop but about 2x faster.
- parallelism: a batch's rows are decoded and resized on a small thread pool (``preprocess_threads``,
  default the torch thread count): Pillow releases the GIL there, so on 2 cores a batch of eight 12 MP
  JPEGs decodes in about half the time. Each row keeps its own error.
- model: BatchNorm folded into the convs at load (``fuse``, torch.fx; ~10 % faster on CPU), optionally
  ``torch.compile`` (inductor, frozen weights, one static graph per batch size compiled at load).
- inference: the whole uint8 batch once, under ``torch.inference_mode()``, channels_last, fp32 or bf16
  autocast; the normalisation is part of the served (and compiled) module; softmax in fp32; top-k per row.
- output and errors: see ``ImageClassifierHandler.postprocess`` and ``ImageClassifierHandler.InputError``.

Handler settings come from ``model-config.yaml`` (``handler:`` section), see ``DEFAULT_CONFIG``.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import io
import json
import logging
import os
import re
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import list_classes_from_module

logger = logging.getLogger(__name__)

DEFAULT_CONFIG: dict[str, Any] = {
    "resize_size": 256,
    "crop_size": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "max_image_pixels": 64_000_000,
    "precision": "fp32",  # fp32 | bf16 (autocast)
    "default_top_k": 5,
    "max_top_k": 100,
    "torch_threads": None,  # None: usable cores // workers, at least 1
    "compile": False,
    "channels_last": True,
    "fuse": True,  # fold BatchNorm into the preceding conv at load time (~10% faster fp32 on CPU)
    "preprocess_threads": None,  # None: as torch_threads; decodes/resizes a batch's rows in parallel
    "warmup": True,  # dummy forwards at load time, so the first requests do not pay lazy init
}
PRECISIONS = ("fp32", "bf16")
# Multi-picture JPEGs from cameras (MPO) open through the JPEG entry and are reported as JPEG.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_KEYS = ("data", "body", "file", "image")
# Signatures of the accepted formats: bytes starting with one of these are never treated as base64.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")
_DATA_URL = re.compile(rb"^data:[^,]{0,200};base64,", re.IGNORECASE)

RowState = dict[str, Any]


def _input_error(status: int, slug: str, message: str) -> Exception:
    return ImageClassifierHandler.InputError(status, slug, message)


# ---------------------------------------------------------------------------------------------------------
# Request parsing
# ---------------------------------------------------------------------------------------------------------


def _as_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return None


def decode_base64(text: bytes) -> bytes:
    """Decode standard or URL-safe base64, with or without padding/whitespace/data-URL prefix."""
    text = _DATA_URL.sub(b"", text.strip(), count=1)
    compact = re.sub(rb"\s+", b"", text).translate(bytes.maketrans(b"-_", b"+/"))
    compact += b"=" * (-len(compact) % 4)
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _input_error(400, "invalid_input", "the body is neither an image nor valid base64") from exc
    if not decoded:
        raise _input_error(400, "empty_input", "the base64 text decodes to no bytes")
    return decoded


def _looks_like_base64(data: bytes) -> bool:
    if data.startswith(_MAGIC):
        return False
    return _DATA_URL.match(data) is not None or _BASE64_TEXT.fullmatch(data) is not None


def extract_image_bytes(row: Any) -> bytes:
    """Return the raw image bytes of one request row, decoding base64 text when needed."""
    if not isinstance(row, Mapping):
        row = {"data": row}
    value = next((row[key] for key in IMAGE_KEYS if row.get(key) is not None), None)
    if isinstance(value, Mapping):  # JSON body parsed by TorchServe
        value = next((value[key] for key in ("data", "image", "b64") if value.get(key) is not None), None)
    if value is None:
        raise _input_error(400, "empty_input", "no image in the request (send the bytes as the body)")
    data = _as_bytes(value)
    if data is None:
        raise _input_error(400, "invalid_input", f"unsupported input type {type(value).__name__}")
    if not data.strip():
        raise _input_error(400, "empty_input", "the request body is empty")
    if isinstance(value, str) or _looks_like_base64(data):
        return decode_base64(data)
    return data


TOP_K_HEADER = "x-top-k"


def header_value(headers: Any, name: str) -> str | None:
    """A request header by case-insensitive name from TorchServe's per-row header dict (which also holds
    per-part entries whose values are dicts: those are skipped)."""
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str):
            return value
    return None


def parse_top_k(row: Any, default: int = 5, max_k: int = 100, header: str | None = None) -> int:
    """Read ``top_k`` from the row (form field), a JSON body, or else ``header`` (X-Top-K); validate
    1..max_k."""
    value = None
    if isinstance(row, Mapping):
        value = row.get("top_k")
        body = row.get("body")
        if value is None and isinstance(body, Mapping):
            value = body.get("top_k")
    if value is None:
        value = header
    if value is None:
        return default
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        value = value.strip()
    try:
        if isinstance(value, bool | float):
            raise ValueError
        k = int(value)
    except (TypeError, ValueError):
        raise _input_error(
            422, "invalid_top_k", f"top_k must be an integer between 1 and {max_k}, got {value!r}"
        ) from None
    if not 1 <= k <= max_k:
        raise _input_error(422, "invalid_top_k", f"top_k must be between 1 and {max_k}, got {k}")
    return k


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------


def open_image(data: bytes, max_pixels: int = DEFAULT_CONFIG["max_image_pixels"]) -> Image.Image:
    """Parse the header only, and refuse images over ``max_pixels`` before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check (global Image.MAX_IMAGE_PIXELS) warns at 1x and raises at 2x its
            # limit; both are refusals here, never a crash or a silently accepted bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _input_error(422, "image_too_large", f"image too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise _input_error(
            415, "unsupported_image", "not a decodable JPEG, PNG, WebP, GIF, BMP or TIFF image"
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # malformed headers make plugins raise all sorts of errors
        raise _input_error(415, "unsupported_image", f"cannot parse the image: {exc}") from exc
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise _input_error(
            422,
            "image_too_large",
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
        )
    return img


def high_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale an I;16*, I or F image to 8-bit L by its value range instead of clipping at 255.

    I;16 is full-range 16-bit (/257). For I and F the range is not fixed, so: F within [0, 1] -> x255;
    values within [0, 255] are kept; within [0, 65535] -> /257 (16-bit data stored as I); anything else
    is stretched min..max.
    """
    arr = np.asarray(img).astype(np.float32)
    if img.mode.startswith("I;16"):
        scaled = arr / 257.0
    else:
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scaled = arr
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = arr / 257.0
        else:
            scaled = (arr - lo) * (255.0 / (hi - lo))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; alpha (and palette/colour-key transparency) goes onto white."""
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return high_depth_to_l(img).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if mode == "RGB" else img.convert("RGB")


def _apply_exif_orientation(img: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception as exc:  # a broken EXIF block must not reject an otherwise good image
        logger.info("ignoring unreadable EXIF orientation: %s", exc)


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_CONFIG["max_image_pixels"], draft_size: int | None = None
) -> tuple[Image.Image, dict[str, Any]]:
    """Decode to an RGB image, EXIF-oriented. Returns it and {"width", "height", "format"} as displayed.

    With ``draft_size`` a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose result is
    still >= draft_size in both dimensions, so the short side stays >= draft_size (rotation by EXIF
    swaps the sides, it does not change the short one). Width/height in the info are the full-size ones.
    """
    img = open_image(data, max_pixels)
    fmt = "JPEG" if img.format == "MPO" else str(img.format)
    width, height = img.size
    try:
        if draft_size and fmt == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()  # raises on truncated data (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
        loaded_size = img.size
        _apply_exif_orientation(img)
        if img.size != loaded_size:  # rotated by 90 degrees
            width, height = height, width
        rgb = to_rgb(img)
    except MemoryError:
        raise
    except Exception as exc:
        raise _input_error(415, "unsupported_image", f"cannot decode the {fmt} image: {exc}") from exc
    return rgb, {"width": width, "height": height, "format": fmt}


# ---------------------------------------------------------------------------------------------------------
# Transform
# ---------------------------------------------------------------------------------------------------------


def resize_crop(img: Image.Image, resize_size: int = 256, crop_size: int = 224) -> np.ndarray:
    """torchvision ``Resize(resize_size)`` + ``CenterCrop(crop_size)`` on an RGB image -> HWC uint8.

    Only the crop window is resampled (``resize(box=...)``), with the scale factors of the full resize,
    which gives the same pixels as resizing everything and cropping afterwards.
    """
    if crop_size > resize_size:
        raise ValueError("crop_size must not exceed resize_size")
    width, height = img.size
    if width <= height:  # same rounding as torchvision: the long side is truncated
        new_w, new_h = resize_size, int(resize_size * height / width)
    else:
        new_w, new_h = int(resize_size * width / height), resize_size
    left = round((new_w - crop_size) / 2.0)
    top = round((new_h - crop_size) / 2.0)
    sx, sy = width / new_w, height / new_h
    box = (left * sx, top * sy, (left + crop_size) * sx, (top + crop_size) * sy)
    out = img.resize((crop_size, crop_size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(out)


def normalization(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x / 255 - mean) / std`` as ``x * scale + shift``: the (1, 3, 1, 1) scale and shift tensors."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
    return scale, shift


def scale_shift(batch: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """NHWC uint8 -> NCHW float32 ``x * scale + shift``, in channels_last memory layout."""
    x = batch.permute(0, 3, 1, 2).float()  # a permuted NHWC tensor is NCHW with channels_last strides
    return x.mul_(scale).add_(shift)


def normalize(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """NHWC uint8 -> NCHW float32 ``(x / 255 - mean) / std``, kept in channels_last memory layout."""
    scale, shift = normalization(mean, std)
    return scale_shift(batch, scale.to(batch.device), shift.to(batch.device))


def transform_image(
    img: Image.Image,
    resize_size: int = 256,
    crop_size: int = 224,
    mean: Sequence[float] = DEFAULT_CONFIG["mean"],
    std: Sequence[float] = DEFAULT_CONFIG["std"],
) -> torch.Tensor:
    """RGB image -> normalised float tensor (3, crop_size, crop_size), contiguous."""
    pixels = torch.from_numpy(np.array(resize_crop(img, resize_size, crop_size)))
    return normalize(pixels.unsqueeze(0), mean, std)[0].contiguous()


# ---------------------------------------------------------------------------------------------------------
# Configuration and model loading
# ---------------------------------------------------------------------------------------------------------


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
    for key in ("torch_threads", "preprocess_threads"):
        if config[key] is not None:
            config[key] = _positive_int(config, key)
    for key in ("compile", "channels_last", "fuse", "warmup"):
        config[key] = _bool(config, key)
    return config


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_torch_threads(model_yaml_config: Mapping[str, Any]) -> int:
    """Usable cores divided among this model's workers, so the workers do not oversubscribe the CPU."""
    cores = usable_cores()
    workers = model_yaml_config.get("minWorkers") or os.environ.get("TS_DEFAULT_WORKERS_PER_MODEL") or 1
    try:
        workers = max(1, int(workers))
    except (TypeError, ValueError):
        workers = 1
    return max(1, cores // workers)


def select_device(gpu_id: Any) -> torch.device:
    """The GPU TorchServe assigned to this worker, else CPU."""
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu_id)}")
    return torch.device("cpu")


def load_model(model_dir: str, model_file: str, weights_file: str, device: torch.device) -> torch.nn.Module:
    """Import the model definition file, build its only nn.Module class, load the state_dict."""
    model_path = Path(model_dir) / model_file
    module_name = model_path.stem
    spec = importlib.util.spec_from_file_location(module_name, model_path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import the model file {model_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # like a normal import; torch.compile and pickling expect it
    spec.loader.exec_module(module)
    classes = list_classes_from_module(module, torch.nn.Module)
    if len(classes) != 1:
        raise ValueError(f"{model_file} must define exactly one nn.Module class, found {classes}")
    model = classes[0]()
    state_dict = torch.load(Path(model_dir) / weights_file, map_location=device, weights_only=True)
    model.load_state_dict(state_dict)
    return model.to(device).eval()


def fuse_conv_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm into the conv before it (torch.fx); the model as-is if not traceable.

    Inference only (the folded weights ignore BN's running-stat updates). Takes ~0.1 s for ResNet-50 and
    saves ~10 % of its fp32 CPU forward time; outputs match to float rounding.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception:  # a model fx cannot trace (data-dependent control flow) is served unfused
        logger.warning("conv+bn folding failed; serving the unfused model", exc_info=True)
        return model


def compile_model(model: torch.nn.Module) -> Any:
    """torch.compile (inductor) with weight freezing, one static graph per batch size.

    Static shapes: inductor's CPU kernels for fixed shapes are the fast ones, so ``_warmup`` compiles
    every batch size up to TorchServe's batchSize at load time (measured on 2 cores, ResNet-50 fp32:
    ~7-9 s per size; batch 8 197 ms vs 247 ms eager, batch 1 34 ms vs 51 ms).
    """
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold weights (conv+bn folding, prepacked oneDNN weights)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(model, dynamic=False)


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


# ---------------------------------------------------------------------------------------------------------
# Handler
# ---------------------------------------------------------------------------------------------------------


class ImageClassifierHandler(BaseHandler):
    """Batch image classifier: per-row decoding errors, one forward pass per batch, top-k per row."""

    class InputError(Exception):
        """A request row that cannot be served; becomes that row's HTTP status and error body.

        Nested because TorchServe's loader accepts only one class defined at module level.
        """

        def __init__(self, status: int, slug: str, message: str) -> None:
            super().__init__(message)
            self.status = status
            self.slug = slug
            self.message = message

    class ServedModel(torch.nn.Module):
        """The network behind its input transform: NHWC uint8 batch in, logits out.

        Normalising inside the module lets ``torch.compile`` fuse it with the layout change and autocast's
        bf16 cast into one pass over the batch, instead of three eager passes (about 3 % of a bf16 batch's
        time on 2 cores). Nested for the same reason as ``InputError``.
        """

        scale: torch.Tensor
        shift: torch.Tensor

        def __init__(
            self, net: torch.nn.Module, mean: Sequence[float], std: Sequence[float], channels_last: bool
        ) -> None:
            super().__init__()
            self.net = net
            self.layout = torch.channels_last if channels_last else torch.contiguous_format
            scale, shift = normalization(mean, std)
            self.register_buffer("scale", scale, persistent=False)
            self.register_buffer("shift", shift, persistent=False)

        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            x = scale_shift(batch, self.scale, self.shift)
            return self.net(x.contiguous(memory_format=self.layout))

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None  # ServedModel (normalisation + network), or its torch.compile wrapper
        self.config: dict[str, Any] = dict(DEFAULT_CONFIG)
        self.labels: dict[int, str] = {}
        self.model_name = ""
        self.model_version = ""
        self.pool: ThreadPoolExecutor | None = None  # parallel decode/resize; None: sequential

    # -- load ---------------------------------------------------------------------------------------------

    def initialize(self, context: Any) -> None:
        """Read the config, pick the device and thread count, load model and labels, warm up."""
        self.context = context
        self.manifest = context.manifest
        properties = context.system_properties
        yaml_config = getattr(context, "model_yaml_config", None) or {}
        self.config = load_handler_config(yaml_config.get("handler"))
        self.device = select_device(properties.get("gpu_id"))
        # cudnn.benchmark stays off: measured on an H100 it gave no steady-state gain for ResNet-50 and cost
        # ~1 s on the first batch of every new batch size.
        if self.device.type == "cpu":
            torch.set_num_threads(self.config["torch_threads"] or default_torch_threads(yaml_config))
        # Keep Pillow strict even if another library in this process relaxed it: truncated images must fail.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        # Pillow's global bomb limit must not be stricter than ours (ours is checked first, per image).
        limit = self.config["max_image_pixels"]
        if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
            Image.MAX_IMAGE_PIXELS = limit

        model_info = self.manifest["model"]
        model_dir = properties["model_dir"]
        if not model_info.get("modelFile") or not model_info.get("serializedFile"):
            raise RuntimeError("the archive needs a model file and a serialized state_dict")
        model = load_model(model_dir, model_info["modelFile"], model_info["serializedFile"], self.device)
        if self.config["fuse"]:
            model = fuse_conv_bn(model)
        if self.config["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        cfg = self.config
        model = self.ServedModel(model, cfg["mean"], cfg["std"], cfg["channels_last"]).to(self.device).eval()
        self.model = compile_model(model) if cfg["compile"] else model
        labels_path = Path(model_dir) / "index_to_name.json"
        if labels_path.is_file():
            self.labels = load_labels(labels_path)
        else:
            logger.warning("%s is missing: labels will be the class indices", labels_path)
        self.model_name = str(getattr(context, "model_name", None) or model_info.get("modelName", ""))
        self.model_version = str(model_info.get("modelVersion", ""))
        # Pillow releases the GIL while decoding and resampling, so a batch's images decode in parallel.
        batch_size = int(properties.get("batch_size") or 1)
        threads = min(self.config["preprocess_threads"] or torch.get_num_threads(), batch_size)
        if threads > 1:
            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="preprocess")
        if self.config["warmup"]:
            self._warmup(model, batch_size)
        self.initialized = True
        logger.info(
            "loaded %s %s on %s (threads %d, preprocess threads %d, %s, channels_last %s, fuse %s, "
            "compile %s)",
            self.model_name,
            self.model_version,
            self.device,
            torch.get_num_threads(),
            threads,
            self.config["precision"],
            self.config["channels_last"],
            self.config["fuse"],
            self.config["compile"],
        )

    def _warmup(self, eager_model: torch.nn.Module, max_batch: int) -> None:
        """Run dummy batches so the first requests pay no lazy initialisation (or compilation).

        On GPU, and with ``compile`` (one static graph per size), every batch size up to TorchServe's
        batch_size is run once (the first call of a new size costs ~50 ms on GPU, a compilation when
        compiled); on CPU in eager mode one batch of 1 is enough and cheaper.
        """
        crop, k = self.config["crop_size"], self.config["max_top_k"]  # large k: loads topk's other kernels
        every_size = self.device.type == "cuda" or self.config["compile"]
        sizes = range(1, min(max_batch, 64) + 1) if every_size else [1]
        try:
            for size in sizes:
                self.inference(torch.zeros(size, crop, crop, 3, dtype=torch.uint8), k)
        except Exception:
            if not self.config["compile"]:
                raise
            logger.exception("torch.compile failed at warm-up; serving the eager model")
            self.model = eager_model
            self.inference(torch.zeros(1, crop, crop, 3, dtype=torch.uint8), 1)

    # -- stages ---------------------------------------------------------------------------------------------

    def preprocess(self, data: Sequence[Any]) -> list[RowState]:
        """Per row: top_k, decode, resize/crop to HWC uint8. Errors are recorded on the row, not raised.

        Rows run on the preprocessing pool when there is one (results keep the input order).
        """
        top_k_headers = [self._request_header(idx, TOP_K_HEADER) for idx in range(len(data))]
        if self.pool is None or len(data) < 2:
            return [self._preprocess_row(row, k) for row, k in zip(data, top_k_headers, strict=True)]
        return list(self.pool.map(self._preprocess_row, data, top_k_headers))

    def _request_header(self, idx: int, name: str) -> str | None:
        context = getattr(self, "context", None)
        if context is None or getattr(context, "request_processor", None) is None:
            return None  # called outside TorchServe (tests, the bench's in-process runs)
        try:
            return header_value(context.get_all_request_header(idx), name)
        except (IndexError, AttributeError):
            return None

    def _preprocess_row(self, row: Any, top_k_header: str | None = None) -> RowState:
        start = time.perf_counter()
        state: RowState = {"error": None, "pixels": None}
        try:
            cfg = self.config
            state["top_k"] = parse_top_k(row, cfg["default_top_k"], cfg["max_top_k"], top_k_header)
            image, state["image"] = decode_image(
                extract_image_bytes(row), cfg["max_image_pixels"], draft_size=cfg["resize_size"]
            )
            state["pixels"] = resize_crop(image, cfg["resize_size"], cfg["crop_size"])
        except ImageClassifierHandler.InputError as exc:
            logger.info("rejected input: %s %s: %s", exc.status, exc.slug, exc.message)
            state["error"] = exc
        except MemoryError:
            raise
        except Exception as exc:  # whatever else one image triggers must not fail the whole batch
            logger.exception("unexpected error while preparing an image")
            state["error"] = _input_error(415, "unsupported_image", f"cannot process the image: {exc}")
        state["preprocess_ms"] = (time.perf_counter() - start) * 1000.0
        return state

    def inference(self, data: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """NHWC uint8 batch -> (top-k probabilities, top-k class indices), both (N, k) on CPU.

        ``k`` (first extra argument) is the largest top_k in the batch; rows slice their own k later.
        """
        k = int(args[0]) if args else int(kwargs.get("k", self.config["default_top_k"]))
        x = data.to(self.device, non_blocking=True)
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
            if self.config["precision"] == "bf16"
            else nullcontext()
        )
        with torch.inference_mode(), autocast:
            logits = self.model(x)
        with torch.inference_mode():
            probabilities = logits.float().softmax(dim=1)
            values, indices = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
        return values.cpu(), indices.cpu()

    def postprocess(
        self,
        data: list[RowState],
        values: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
        inference_ms: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Rows + the batch's top-k (rows without error, in order) -> one response dict per row.

        Success: {"model", "predictions": [{"class_id", "label", "probability"}], "image", "timings_ms"}.
        Error: {"error": slug, "message": text}; the status is set on the context in ``handle``.
        """
        rows = data
        outputs: list[dict[str, Any]] = []
        good = 0
        for state in rows:
            error = state["error"]
            if error is not None:
                outputs.append({"error": error.slug, "message": error.message})
                continue
            assert values is not None and indices is not None
            k = min(state["top_k"], values.shape[1])
            row_values, row_indices = values[good, :k].tolist(), indices[good, :k].tolist()
            good += 1
            predictions = [
                {"class_id": int(idx), "label": self.labels.get(int(idx), str(idx)), "probability": float(p)}
                for p, idx in zip(row_values, row_indices, strict=True)
            ]
            outputs.append(
                {
                    "model": {"name": self.model_name, "version": self.model_version},
                    "predictions": predictions,
                    "image": state["image"],
                    "timings_ms": {
                        "preprocess": round(state["preprocess_ms"], 3),
                        "inference": round(inference_ms, 3),
                    },
                }
            )
        return outputs

    # -- entry point ----------------------------------------------------------------------------------------

    def handle(self, data: list[Any], context: Any) -> list[dict[str, Any]]:
        """TorchServe entry point for one batch; a bad row fails alone with its own status."""
        start = time.perf_counter()
        self.context = context
        rows = self.preprocess(data)
        good_rows = [state for state in rows if state["error"] is None]
        values = indices = None
        inference_ms = 0.0
        if good_rows:
            batch = torch.from_numpy(np.stack([state["pixels"] for state in good_rows]))
            max_k = max(state["top_k"] for state in good_rows)
            t0 = time.perf_counter()
            values, indices = self.inference(batch, max_k)
            inference_ms = (time.perf_counter() - t0) * 1000.0
        outputs = self.postprocess(rows, values, indices, inference_ms)
        self._set_response_meta(context, rows)
        metrics = getattr(context, "metrics", None)
        if metrics is not None:
            metrics.add_time("HandlerTime", round((time.perf_counter() - start) * 1000.0, 2), None, "ms")
        return outputs

    @staticmethod
    def _set_response_meta(context: Any, rows: list[RowState]) -> None:
        has_processor = getattr(context, "request_processor", None) is not None
        for idx, state in enumerate(rows):
            if has_processor:
                context.set_response_content_type(idx, "application/json")
            error = state["error"]
            if error is not None:
                context.set_response_status(error.status, HTTPStatus(error.status).phrase, idx)
