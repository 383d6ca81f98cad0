"""The handler on a GPU: given a gpu_id by TorchServe, it must run the batch on that CUDA device.

Skipped on machines without CUDA (CI has none); run on a GPU box with
``pytest tests/handlers/test_handler_cuda.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from ts.context import Context, RequestProcessor

import classifier_handler as ch
from resnet50 import ResNet50
from tests.handlers.test_handler_unit import (
    HANDLERS_DIR,
    class_names,
    make_context,
    make_model_dir,
    mixed_batch,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def resnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("resnet50-cuda")
    return make_model_dir(model_dir, HANDLERS_DIR / "resnet50.py", ResNet50().state_dict(), class_names(), {})


def gpu_context(model_dir: Path, batch: int, handler: dict[str, Any]) -> Context:
    """Like the CPU context, but with the gpu_id TorchServe gives a GPU worker."""
    cpu = make_context(model_dir, batch, handler)
    context = Context(
        cpu.model_name,
        str(model_dir),
        cpu.manifest,
        batch,
        0,
        "0.12.0",
        metrics=cpu.metrics,
        model_yaml_config=cpu.model_yaml_config,
    )
    context.request_processor = [RequestProcessor({}) for _ in range(batch)]
    return context


def top1(outputs: list[dict[str, Any]]) -> list[int | None]:
    return [out["predictions"][0]["class_id"] if "predictions" in out else None for out in outputs]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_handler_runs_the_batch_on_cuda(resnet_dir: Path, precision: str) -> None:
    rows = [row for row, _, _ in mixed_batch()]
    settings = {"precision": precision}
    gpu = ch.ImageClassifierHandler()
    gpu.initialize(gpu_context(resnet_dir, len(rows), settings))
    cpu = ch.ImageClassifierHandler()
    cpu.initialize(make_context(resnet_dir, len(rows), settings))

    context = gpu_context(resnet_dir, len(rows), settings)
    gpu_outputs = gpu.handle(rows, context)
    cpu_outputs = cpu.handle(rows, make_context(resnet_dir, len(rows), settings))

    assert gpu.device == torch.device("cuda:0")
    assert next(gpu.model.parameters()).is_cuda
    assert [context.get_response_status(i)[0] for i in range(len(rows))] == [
        status for _, status, _ in mixed_batch()
    ]
    assert top1(gpu_outputs) == top1(cpu_outputs)
