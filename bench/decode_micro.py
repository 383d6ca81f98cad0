"""Micro-bench: the cost of turning a JPEG into the model's input, with and without JPEG draft decoding.

Uses the handler's own pure functions (``decode_image`` with or without ``draft_size``, then ``resize_crop``),
so it measures exactly what the handler does per image (it normalises the whole batch inside the served
model). For reference it also times what TorchServe's stock handler does (full decode, torchvision
Resize(256) + CenterCrop(224) + ToTensor + Normalize on the PIL image).

Run alone: ``python -m bench.decode_micro --repeats 15`` (prints JSON).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.images import BenchImage, large_jpeg, small_jpeg

RESIZE, CROP = 256, 224


def _ours(draft: bool) -> Callable[[bytes], object]:
    import handlers  # noqa: F401  (puts the handler's directory on sys.path, as TorchServe does)
    from classifier_image import decode_image, resize_crop

    def run(data: bytes) -> object:
        img, _info = decode_image(data, draft_size=RESIZE if draft else None)
        return resize_crop(img, RESIZE, CROP)

    return run


def _stock() -> Callable[[bytes], object]:
    from PIL import Image
    from torchvision import transforms

    pipeline = transforms.Compose(
        [
            transforms.Resize(RESIZE),
            transforms.CenterCrop(CROP),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )

    def run(data: bytes) -> object:
        return pipeline(Image.open(io.BytesIO(data)))

    return run


def time_fn(fn: Callable[[bytes], object], data: bytes, repeats: int) -> dict[str, float]:
    """Median and min wall time in ms over ``repeats`` calls after one warm-up call."""
    fn(data)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(data)
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "repeats": repeats}


def run(repeats: int) -> dict[str, Any]:
    """Time every variant on the 12 MP JPEG (and ours on the small one, for scale)."""
    import torch

    torch.set_num_threads(1)  # the handler's per-image work is single-threaded PIL; keep it comparable
    cases: list[tuple[str, Callable[[bytes], object], BenchImage]] = [
        ("ours, full decode (no draft), 12 MP", _ours(False), large_jpeg()),
        ("ours, JPEG draft decode, 12 MP", _ours(True), large_jpeg()),
        ("stock handler transforms, 12 MP", _stock(), large_jpeg()),
        ("ours, JPEG draft decode, small", _ours(True), small_jpeg()),
    ]
    timings = [time_fn(fn, im.data, repeats) for _, fn, im in cases]
    rows = [{"name": name, "image": im.key, **t} for (name, _, im), t in zip(cases, timings, strict=True)]
    full, draft = timings[0]["median_ms"], timings[1]["median_ms"]
    return {"rows": rows, "draft_speedup": full / draft if draft else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    json.dump(run(args.repeats), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
