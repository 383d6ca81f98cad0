"""TorchServe for the bench: the two archives it serves, and a private instance to serve them.

- (b) the stock anchor: TorchServe's built-in ``image_classifier`` handler, a model file defining a ResNet50
  class (as in TorchServe's ``examples/image_classifier``; the project's ``handlers/resnet50.py``), a seeded
  random state_dict, ``index_to_name.json``, 1 worker and the default batch size (1).
- (c) ours: the archive from ``python -m handlers.build_archive --random-weights`` (its own model-config.yaml:
  batch size, delay, workers, precision).

Starting and stopping is ``launcher.torchserve_process``, as in the tests (the repository's config.properties
with free loopback ports, a private home as cwd for key_file.json, private TMPDIR/TEMP for the pid file,
the whole process group stopped at the end), so the bench serves with the shipped settings.

Run alone (start, one prediction, stop): ``python -m bench.torchserve stock|ours [--precision bf16]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from launcher.torchserve_process import TorchServe, start

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MODEL_NAME = "resnet50"
# The stock example's model file: one class, torchvision's ResNet with Bottleneck blocks [3, 4, 6, 3].
STOCK_MODEL_FILE = REPO / "handlers" / "resnet50.py"


def post_bytes(url: str, body: bytes, headers: dict[str, str], timeout: float = 600.0) -> tuple[int, bytes]:
    """POST ``body``; return (status, response body) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def predict_url(ts: TorchServe) -> str:
    return f"{ts.inference_url}/predictions/{ts.model_name}"


def inference_headers(ts: TorchServe) -> dict[str, str]:
    """Token header plus a content type that makes TorchServe pass the body through as raw bytes."""
    return {**ts.headers("inference"), "Content-Type": "application/octet-stream"}


@contextmanager
def serve(
    home: Path, model_store: Path, archive: str, overrides: dict[str, str] | None = None
) -> Iterator[TorchServe]:
    """TorchServe serving ``model_store/archive`` as resnet50 until the block exits."""
    ts = start(home, model_store, overrides, {MODEL_NAME: archive}, timeout=600.0)
    try:
        yield ts
    finally:
        ts.stop()


def imagenet_index_to_name() -> dict[str, str]:
    """index_to_name.json content for the stock handler, from torchvision's metadata (no download)."""
    from torchvision.models import ResNet50_Weights

    return {str(i): name for i, name in enumerate(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])}


def build_stock_archive(work: Path, export: Path, seed: int = 0) -> str:
    """Build the stock ``image_classifier`` archive in ``export``; returns its file name."""
    import torch

    work.mkdir(parents=True, exist_ok=True)
    export.mkdir(parents=True, exist_ok=True)
    model_file = work / "model.py"
    model_file.write_bytes(STOCK_MODEL_FILE.read_bytes())
    weights = work / "resnet50_random.pth"
    torch.manual_seed(seed)
    from torchvision.models import resnet50

    torch.save(resnet50(weights=None).state_dict(), weights)
    labels = work / "index_to_name.json"
    labels.write_text(json.dumps(imagenet_index_to_name()))
    subprocess.run(
        [
            str(VENV_BIN / "torch-model-archiver"),
            "--model-name", "resnet50", "--version", "1.0",
            "--model-file", str(model_file), "--serialized-file", str(weights),
            "--handler", "image_classifier", "--extra-files", str(labels),
            "--export-path", str(export), "--force",
        ],
        check=True,
    )  # fmt: skip
    return "resnet50.mar"


# Builder options the bench serves (c)/(d) with, on top of the builder's defaults (see README Performance):
# - compiled (inductor): faster batches. ``COMPILE_MODES``: "aot" compiles at build (AOTInductor, what
#   `make run` serves), "jit" is torch.compile at every worker start (over a minute each, static shapes);
# - two workers of one thread each, batches of 4: one worker's batch runs while the other's results go
#   back and its next batch comes in, time that a single worker spends idle. The price is latency at one
#   client: a batch runs on one core.
# maxBatchDelay stays at the builder's 20 ms: behind the API, requests reach TorchServe spread out, and a
# shorter delay gives (d) smaller batches.
OUR_ARCHIVE_ARGS = ("--workers", "2", "--batch-size", "4")
COMPILE_MODES = {"aot": ("--aot",), "jit": ("--compile",)}


def build_our_archive(
    export: Path, precision: str = "fp32", extra_args: list[str] | None = None, compile_mode: str = "aot"
) -> str:
    """Build our archive with the project's builder (seeded random weights, ``OUR_ARCHIVE_ARGS``, compiled
    as ``compile_mode`` says); returns its file name. ``fast`` is ``--precision auto``: the builder picks
    this CPU's fastest precision, as for ``FAST=1 make run``."""
    name = "resnet50" if precision == "fp32" else f"resnet50_{precision}"
    builder_precision = "auto" if precision == "fast" else precision
    export.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "handlers.build_archive", "--random-weights", "--seed", "0",
        "--precision", builder_precision, "--export-path", str(export), "--archive-name", name, "--force",
        *OUR_ARCHIVE_ARGS, *COMPILE_MODES[compile_mode], *(extra_args or []),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO)
    return f"{name}.mar"


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from bench.images import small_jpeg

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", choices=["stock", "ours"])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_ts_") as tmp:
        root = Path(tmp)
        store = root / "store"
        if args.which == "stock":
            archive = build_stock_archive(root / "stock", store)
            overrides = {"default_workers_per_model": "1"}
        else:
            archive, overrides = build_our_archive(store, args.precision), {}
        with serve(root / "home", store, archive, overrides) as ts:
            print(json.dumps(ts.describe(), indent=1))
            status, body = post_bytes(predict_url(ts), small_jpeg().data, inference_headers(ts))
            print(status, body[:600].decode(errors="replace"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
