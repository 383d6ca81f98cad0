"""TorchServe handler for ImageNet-style image classification (ResNet-50, EfficientNet-Lite0, ...).

TorchServe imports this file as a top-level module from the model directory (which it puts on sys.path) and
instantiates the only class defined here, ``ImageClassifierHandler``. Its stages, per batch:

- ``preprocess``: per row, ``top_k`` and the image bytes (``classifier_request``), then decode and
  resize/crop to HWC uint8 (``classifier_image``). A batch's rows run on a small thread pool
  (``preprocess_threads``): Pillow releases the GIL while decoding and resampling. A row that fails keeps
  its own error (``classifier_errors.InputError``) and the others go on.
- ``inference``: the good rows' uint8 batch in one forward pass of the served model (``classifier_model``:
  normalisation inside the module, BatchNorm folded into the convs, channels_last, optionally
  ``torch.compile``) under ``torch.inference_mode()`` in fp32 or bf16 autocast, or the archive's
  AOTInductor package (fp32, bf16 or int8, compiled at build); softmax in fp32; top-k.
- ``postprocess``: one JSON object per row, a prediction (its ``model`` names the precision that served it)
  or ``{"error", "message"}``; ``handle`` sets each row's HTTP status.

The sibling modules ship in the archive next to this file. Settings come from model-config.yaml's
``handler:`` section (``classifier_config.DEFAULT_CONFIG``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile
from ts.torch_handler.base_handler import BaseHandler

from classifier_config import DEFAULT_CONFIG, default_torch_threads, load_handler_config, load_labels
from classifier_errors import InputError
from classifier_image import decode_image, resize_crop
from classifier_model import (
    ServedModel,
    autocast,
    compile_model,
    fuse_conv_bn,
    load_aot_package,
    load_model,
    select_device,
)
from classifier_request import TOP_K_HEADER, extract_image_bytes, header_value, parse_top_k

logger = logging.getLogger(__name__)

RowState = dict[str, Any]


class ImageClassifierHandler(BaseHandler):
    """Batch image classifier: per-row decoding errors, one forward pass per batch, top-k per row."""

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None  # ServedModel (normalisation + network), or its torch.compile wrapper
        self.config: dict[str, Any] = dict(DEFAULT_CONFIG)
        self.labels: dict[int, str] = {}
        self.model_name = ""
        self.model_version = ""
        self.pool: ThreadPoolExecutor | None = None  # parallel decode/resize; None: sequential
        self.precision = "fp32"  # what serves (an int8 archive whose package cannot load serves fp32)
        self.aot = False  # serving the archive's AOTInductor package

    # -- load ---------------------------------------------------------------------------------------------

    def initialize(self, context: Any) -> None:
        """Read the config, pick the device and thread count, load model and labels, warm up."""
        self.context = context
        self.manifest = context.manifest
        properties = context.system_properties
        yaml_config = getattr(context, "model_yaml_config", None) or {}
        self.config = cfg = load_handler_config(yaml_config.get("handler"))
        self.device = select_device(properties.get("gpu_id"))
        # cudnn.benchmark stays off: it brings no steady-state gain for these networks, and it would make
        # the first batch of every new batch size pay for the autotuning.
        if self.device.type == "cpu":
            torch.set_num_threads(cfg["torch_threads"] or default_torch_threads(yaml_config))
        # Keep Pillow strict even if another library in this process relaxed it: truncated images must fail.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        # Pillow's global bomb limit must not be stricter than ours (ours is checked first, per image).
        if Image.MAX_IMAGE_PIXELS is not None and cfg["max_image_pixels"] > Image.MAX_IMAGE_PIXELS:
            Image.MAX_IMAGE_PIXELS = cfg["max_image_pixels"]

        model_info = self.manifest["model"]
        model_dir = properties["model_dir"]
        if not model_info.get("modelFile") or not model_info.get("serializedFile"):
            raise RuntimeError("the archive needs a model file and a serialized state_dict")
        model = load_model(model_dir, model_info["modelFile"], model_info["serializedFile"], self.device)
        if cfg["fuse"]:
            model = fuse_conv_bn(model)
        if cfg["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        model = ServedModel(model, cfg["mean"], cfg["std"], cfg["channels_last"]).to(self.device).eval()
        self._choose_model(model, Path(model_dir))
        labels_path = Path(model_dir) / "index_to_name.json"
        if labels_path.is_file():
            self.labels = load_labels(labels_path)
        else:
            logger.warning("%s is missing: labels will be the class indices", labels_path)
        self.model_name = str(getattr(context, "model_name", None) or model_info.get("modelName", ""))
        self.model_version = str(model_info.get("modelVersion", ""))
        batch_size = int(properties.get("batch_size") or 1)
        threads = min(cfg["preprocess_threads"] or torch.get_num_threads(), batch_size)
        if threads > 1:
            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="preprocess")
        if cfg["warmup"]:
            self._warmup(model, batch_size)
        self.initialized = True
        settings = {k: cfg[k] for k in ("channels_last", "fuse", "compile")}
        logger.info(
            "loaded %s %s on %s: %s%s, threads %d, preprocess threads %d, %s",
            *(self.model_name, self.model_version, self.device, self.precision, " AOT" * self.aot),
            *(torch.get_num_threads(), threads, settings),
        )

    def _choose_model(self, eager_model: ServedModel, model_dir: Path) -> None:
        """Serve the archive's AOT package where it loads, else the eager model (compiled when asked).

        The package holds its own precision (bf16 casts, int8 kernels); without it, int8 falls back to fp32.
        """
        cfg = self.config
        package = cfg["aot_package"]
        compiled = load_aot_package(model_dir / package, cfg["aot_isa"], self.device) if package else None
        self._serve(compiled if compiled is not None else eager_model, aot=compiled is not None)

    def _serve(self, model: Any, aot: bool) -> None:
        cfg = self.config
        self.aot = aot
        if aot:
            self.model, self.precision = model, cfg["precision"]
            return
        self.precision = "fp32" if cfg["precision"] == "int8" else cfg["precision"]
        if self.precision != cfg["precision"]:
            logger.warning("serving the eager %s model instead of %s", self.precision, cfg["precision"])
        self.model = compile_model(model) if cfg["compile"] else model

    def _warmup(self, eager_model: torch.nn.Module, max_batch: int) -> None:
        """Run dummy batches so the first requests pay no lazy initialisation (or compilation).

        On GPU, with ``compile`` (one static graph per size) and with an AOT package (oneDNN sets up its
        kernels for each new shape), every batch size up to TorchServe's batch_size is run once, since the
        first call of each new size is slow there; on CPU in eager mode one batch of 1 is enough and cheaper.
        When the compiled model fails, the eager one is served.
        """
        crop, k = self.config["crop_size"], self.config["max_top_k"]  # large k: loads topk's other kernels
        every_size = self.device.type == "cuda" or self.config["compile"] or self.aot
        sizes = range(1, min(max_batch, 64) + 1) if every_size else [1]
        try:
            for size in sizes:
                self.inference(torch.zeros(size, crop, crop, 3, dtype=torch.uint8), k)
        except Exception:
            if self.model is eager_model:
                raise
            logger.exception("the compiled model failed at warm-up; serving the eager model")
            self.config = {**self.config, "compile": False}
            self._serve(eager_model, aot=False)
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
            return None  # a context without per-request data: the handler driven outside TorchServe
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
        except InputError as exc:
            logger.info("rejected input: %s %s: %s", exc.status, exc.slug, exc.message)
            state["error"] = exc
        except MemoryError:
            raise
        except Exception as exc:  # whatever else one image triggers must not fail the whole batch
            logger.exception("unexpected error while preparing an image")
            state["error"] = InputError(415, "unsupported_image", f"cannot process the image: {exc}")
        state["preprocess_ms"] = (time.perf_counter() - start) * 1000.0
        return state

    def inference(self, data: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """NHWC uint8 batch -> (top-k probabilities, top-k class indices), both (N, k) on CPU.

        ``k`` (first extra argument) is the largest top_k in the batch; rows slice their own k later.
        """
        k = int(args[0]) if args else int(kwargs.get("k", self.config["default_top_k"]))
        x = data.to(self.device, non_blocking=True)
        # An AOT package holds its own casts; the eager model runs under the precision's autocast.
        with torch.inference_mode(), autocast(self.device, "fp32" if self.aot else self.precision):
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
        outputs: list[dict[str, Any]] = []
        good = 0
        for state in data:
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
                    "model": {
                        "name": self.model_name,
                        "version": self.model_version,
                        "precision": self.precision,
                    },
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
