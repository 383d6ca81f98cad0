"""(a) The model alone in a plain script: eager PyTorch ``model(x)``, no server, no preprocessing.

The best plain-PyTorch configuration a user would write: ResNet50 with seeded random weights (speed does
not depend on the weight values), ``eval()``, weights and input in channels_last (oneDNN's native layout for
CPU convolutions), under ``torch.inference_mode()``, torch's default thread count (all cores: the harness
runs this in its own process while nothing else runs). ``--precision bf16`` wraps the call in CPU bf16
autocast, what the handler's bf16 does. Every batch size given is timed for ``--seconds`` after a warm-up;
the best images/s is the figure the harness compares against. ``bench.runtimes`` times the same weights in
ONNX Runtime and OpenVINO.

Run alone: ``python -m bench.model_alone --precision fp32 --batch-sizes 1,4,8,16,32 --seconds 5``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torchvision.models import resnet50

WARMUP_ITERS = 2
WARMUP_S = 1.0  # oneDNN picks and caches its kernels over the first calls of each shape
MIN_ITERS = 3


def build_model(seed: int = 0) -> torch.nn.Module:
    """Seeded random-weight ResNet50 in eval mode."""
    torch.manual_seed(seed)
    return resnet50(weights=None).eval()


def _autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_for(call: Callable[[], Any], min_iters: int, seconds: float) -> tuple[int, float]:
    """Run ``call()`` at least ``min_iters`` times and for at least ``seconds``; (calls, elapsed s)."""
    iters = 0
    t0 = time.perf_counter()
    while iters < min_iters or time.perf_counter() - t0 < seconds:
        call()
        iters += 1
    return iters, time.perf_counter() - t0


def time_call(call: Callable[[], Any], batch_size: int, seconds: float) -> dict[str, float]:
    """Images/s and mean ms per batch of ``call`` after a warm-up (any runtime's one batch)."""
    run_for(call, WARMUP_ITERS, WARMUP_S)
    iters, elapsed = run_for(call, MIN_ITERS, seconds)
    return {
        "batch_size": batch_size,
        "images_per_s": batch_size * iters / elapsed,
        "ms_per_batch": 1000.0 * elapsed / iters,
        "iterations": iters,
    }


def time_batch(
    model: torch.nn.Module, batch_size: int, precision: str, seconds: float, channels_last: bool = True
) -> dict[str, float]:
    """Images/s and mean ms per batch for one batch size."""
    x = torch.randn(batch_size, 3, 224, 224)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), _autocast(precision):
        return time_call(lambda: model(x), batch_size, seconds)


def run(
    precision: str, batch_sizes: list[int], seconds: float, seed: int = 0, channels_last: bool = True
) -> dict[str, Any]:
    """Time every batch size; report all and the best."""
    model = build_model(seed)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    rows = [time_batch(model, bs, precision, seconds, channels_last) for bs in batch_sizes]
    best = max(rows, key=lambda r: r["images_per_s"])
    return {
        "precision": precision,
        "channels_last": channels_last,
        "torch_threads": torch.get_num_threads(),
        "by_batch_size": rows,
        "best_batch_size": best["batch_size"],
        "images_per_s": best["images_per_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32", help="comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="the default contiguous layout instead (slower on CPU), for comparison",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    json.dump(run(args.precision, sizes, args.seconds, args.seed, args.channels_last), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
