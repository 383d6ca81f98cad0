"""(a) The model alone in the runtimes a user would pick instead of PyTorch: ONNX Runtime and OpenVINO.

The same seeded ResNet50 as ``bench.model_alone`` (``build_model``), exported once with ``torch.onnx`` (batch
dimension dynamic), then timed like (a): every batch size for ``--seconds`` after a warm-up, in a process of
its own with all the cores; the best images/s is the figure. ONNX Runtime runs it in fp32 (its CPU provider);
OpenVINO compiles it for each batch size with the given inference precision (bf16 by default: OpenVINO runs
fp32 where the CPU lacks native bf16, and the result records which precision it used).

Run alone: ``python -m bench.runtimes --runtime openvino --precision bf16 --batch-sizes 1,8 --seconds 5``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.model_alone import build_model, time_call

RUNTIMES = ("onnxruntime", "openvino")
CROP = 224


def export_onnx(path: Path, model: torch.nn.Module) -> Path:
    """``model`` (NCHW float input) as ONNX at ``path``, its batch dimension dynamic."""
    example = (torch.zeros(2, 3, CROP, CROP),)
    batch = torch.export.Dim("batch", min=1, max=256)
    program = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=({0: batch},))
    assert program is not None
    program.save(str(path))
    return path


def onnxruntime_runner(path: Path, precision: str, x: np.ndarray) -> tuple[Callable[[], Any], str]:
    """A call that runs the batch ``x`` in ONNX Runtime's CPU provider (fp32 only); it returns the logits."""
    import onnxruntime as ort

    if precision != "fp32":
        raise ValueError("the ONNX Runtime cell is fp32")
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda: session.run(None, {name: x})[0]), "fp32"


def openvino_runner(path: Path, precision: str, x: np.ndarray) -> tuple[Callable[[], Any], str]:
    """A call that runs the batch ``x`` in OpenVINO, compiled for its shape and ``precision`` (it returns the
    logits); and the inference precision OpenVINO chose (fp32 where the CPU has no native bf16)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape(list(x.shape))
    config = {"INFERENCE_PRECISION_HINT": precision.replace("fp", "f"), "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    used = str(hint.to_string() if hasattr(hint, "to_string") else hint).replace("f32", "fp32")
    return (lambda: request.infer({0: x})[0]), used


RUNNERS = {"onnxruntime": onnxruntime_runner, "openvino": openvino_runner}


def run(
    runtime: str, precision: str, batch_sizes: list[int], seconds: float, seed: int = 0
) -> dict[str, Any]:
    """Export, then time every batch size in ``runtime``; report all and the best."""
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        path = export_onnx(Path(tmp) / "resnet50.onnx", build_model(seed))
        rows, used = [], precision
        rng = np.random.default_rng(seed)
        for batch_size in batch_sizes:
            x = rng.standard_normal((batch_size, 3, CROP, CROP), dtype=np.float32)
            call, used = RUNNERS[runtime](path, precision, x)
            rows.append(time_call(call, batch_size, seconds))
    best = max(rows, key=lambda r: r["images_per_s"])
    return {
        "runtime": runtime,
        "precision": precision,
        "precision_used": used,
        "by_batch_size": rows,
        "best_batch_size": best["batch_size"],
        "images_per_s": best["images_per_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runtime", choices=RUNTIMES, required=True)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch-sizes", default="1,4,8,16", help="comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per batch size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    json.dump(run(args.runtime, args.precision, sizes, args.seconds, args.seed), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
