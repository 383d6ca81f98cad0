"""Shared fixtures. launcher.torchserve_process starts and stops TorchServe; this file only wires it up."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from launcher.torchserve_process import TorchServe, start


@pytest.fixture(scope="session")
def torchserve_model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session model store holding a freshly built random-weights ResNet50 archive (resnet50.mar)."""
    import build_archive

    store = tmp_path_factory.mktemp("model_store")
    args = build_archive.parse_args(["--export-path", str(store), "--random-weights", "--no-download"])
    build_archive.build(args)
    return store


@pytest.fixture(scope="session")
def torchserve_model_store_v2(torchserve_model_store: Path) -> Path:
    """The session model store with a second version added: resnet50-2.0.mar (random weights, so version
    "2.0-untrained", with IMAGENET1K_V2's preprocessing: resize 232). Not loaded by any TorchServe at start:
    tests register it through the API."""
    import build_archive

    args = build_archive.parse_args(
        [
            "--export-path",
            str(torchserve_model_store),
            "--random-weights",
            "--no-download",
            "--seed",
            "2",
            "--version",
            "2.0",
            "--weights-variant",
            "IMAGENET1K_V2",
            "--archive-name",
            "resnet50-2.0",
        ]
    )
    build_archive.build(args)
    return torchserve_model_store


@pytest.fixture(scope="session")
def torchserve(
    tmp_path_factory: pytest.TempPathFactory, torchserve_model_store: Path
) -> Iterator[TorchServe]:
    """One real TorchServe for the whole session, on free loopback ports, serving resnet50."""
    started = time.perf_counter()
    ts = start(tmp_path_factory.mktemp("torchserve"), torchserve_model_store)
    print(f"\nTorchServe ready in {time.perf_counter() - started:.1f} s at {ts.inference_url}")
    try:
        yield ts
    finally:
        ts.stop()


@pytest.fixture
def start_extra_torchserve(
    tmp_path: Path, torchserve_model_store: Path
) -> Iterator[Callable[..., TorchServe]]:
    """Factory for extra TorchServe instances (stopped after the test). Keyword arguments go to
    launcher.torchserve_process.start, e.g. ``start(overrides={"token_expiration_min": 0.05}, models={})``
    for a model-less instance (about 2 s to start) whose keys expire after 3 s. By default it serves the
    session's resnet50 archive (about 6 s to start)."""
    started: list[TorchServe] = []

    def start_extra(model_store: Path | None = None, **kwargs: Any) -> TorchServe:
        home = tmp_path / f"torchserve{len(started)}"
        ts = start(home, model_store or torchserve_model_store, **kwargs)
        started.append(ts)
        return ts

    yield start_extra
    for ts in started:
        ts.stop()


def _jpeg(width: int, height: int) -> bytes:
    from PIL import Image

    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@pytest.fixture(scope="session")
def small_jpeg() -> bytes:
    """A 320x240 JPEG."""
    return _jpeg(320, 240)


@pytest.fixture(scope="session")
def large_jpeg() -> bytes:
    """A 12-megapixel (4000x3000) JPEG, a typical phone photo size."""
    return _jpeg(4000, 3000)
