"""bench.runtimes: a model exported with torch.onnx computes the same logits in ONNX Runtime and OpenVINO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench import runtimes


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 7, stride=8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = Small().eval()
    return runtimes.export_onnx(tmp_path_factory.mktemp("onnx") / "small.onnx", model), model


@pytest.mark.parametrize("runtime", runtimes.RUNTIMES)
def test_runtime_computes_the_torch_logits_at_any_batch_size(
    exported: tuple[Path, torch.nn.Module], runtime: str
) -> None:
    path, model = exported
    for batch_size in (1, 3):
        x = np.random.default_rng(batch_size).standard_normal((batch_size, 3, 224, 224), dtype=np.float32)
        call, used = runtimes.RUNNERS[runtime](path, "fp32", x)

        logits = np.asarray(call())

        with torch.inference_mode():
            expected = model(torch.from_numpy(x)).numpy()
        assert used == "fp32"
        np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-4)


def test_timing_reports_each_batch_size(exported: tuple[Path, torch.nn.Module]) -> None:
    path, _ = exported
    x = np.zeros((2, 3, 224, 224), dtype=np.float32)
    call, _ = runtimes.onnxruntime_runner(path, "fp32", x)

    row = runtimes.time_call(call, 2, seconds=0.0)

    assert row["batch_size"] == 2 and row["iterations"] >= 3
    assert row["images_per_s"] == pytest.approx(2000.0 / row["ms_per_batch"])


def test_onnxruntime_cell_is_fp32_only(exported: tuple[Path, torch.nn.Module]) -> None:
    with pytest.raises(ValueError):
        runtimes.onnxruntime_runner(exported[0], "bf16", np.zeros((1, 3, 224, 224), dtype=np.float32))
