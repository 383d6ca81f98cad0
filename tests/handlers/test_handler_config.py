"""classifier_config: the handler section's defaults and validation, thread defaults, labels files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from classifier_config import DEFAULT_CONFIG, default_torch_threads, load_handler_config, load_labels


def test_defaults_apply_and_values_are_normalised() -> None:
    config = load_handler_config({"precision": "BF16", "compile": "yes", "mean": (0, 0, 0), "std": None})
    assert config["precision"] == "bf16" and config["compile"] is True
    assert config["mean"] == [0.0, 0.0, 0.0] and config["std"] == DEFAULT_CONFIG["std"]
    assert load_handler_config(None) == DEFAULT_CONFIG


@pytest.mark.parametrize(
    "bad",
    [
        {"precision": "fp16"},
        {"crop_size": 300},
        {"std": [1, 0, 1]},
        {"mean": [0.5, 0.5]},
        {"max_top_k": 0},
        {"default_top_k": 7, "max_top_k": 6},
        {"resize_size": True},
        {"torch_threads": "2"},
    ],
)
def test_invalid_values_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="handler\\."):
        load_handler_config(bad)


def test_default_torch_threads_divides_cores_among_workers() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_torch_threads({"minWorkers": 1}) == cores
    assert default_torch_threads({"minWorkers": cores * 4}) == 1
    assert default_torch_threads({}) >= 1


@pytest.mark.parametrize(
    "raw",
    [
        ["tench", "goldfish"],  # a list
        {"0": "tench", "1": "goldfish"},  # keyed by index, as the archive builder writes it
        {"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]},  # TorchServe's [wnid, name]
    ],
)
def test_labels_files_in_every_layout(tmp_path: Path, raw: Any) -> None:
    path = tmp_path / "index_to_name.json"
    path.write_text(json.dumps(raw))
    assert load_labels(path) == {0: "tench", 1: "goldfish"}
