"""Fixtures of the model-administration tests: a TorchServe of its own for the rollout tests, serving
resnet50 1.0 (default) and 2.0, one worker each."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from launcher.torchserve_process import TorchServe, start

V1, V2 = "1.0-untrained", "2.0-untrained"


def register(ts: TorchServe, archive: str, workers: int = 1) -> None:
    params: dict[str, Any] = {"url": archive, "initial_workers": workers, "synchronous": "true"}
    answer = requests.post(
        f"{ts.management_url}/models", params=params, headers=ts.headers("management"), timeout=300
    )
    assert answer.status_code == 200, answer.text


def set_default(ts: TorchServe, version: str) -> None:
    answer = requests.put(
        f"{ts.management_url}/models/resnet50/{version}/set-default",
        headers=ts.headers("management"),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def two_version_ts(
    tmp_path_factory: pytest.TempPathFactory, torchserve_model_store_v2: Path
) -> Iterator[TorchServe]:
    store = tmp_path_factory.mktemp("rollout_store")  # its own: the guard test adds a broken archive
    for archive in ("resnet50.mar", "resnet50-2.0.mar"):
        os.link(torchserve_model_store_v2 / archive, store / archive)
    ts = start(tmp_path_factory.mktemp("rollout_ts"), store)
    try:
        register(ts, "resnet50-2.0.mar")
        yield ts
    finally:
        ts.stop()


@pytest.fixture
def rollout_ts(two_version_ts: TorchServe) -> Iterator[TorchServe]:
    """The two-version TorchServe, with 1.0 the default again after the test."""
    yield two_version_ts
    set_default(two_version_ts, V1)
