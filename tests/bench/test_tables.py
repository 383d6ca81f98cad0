"""bench.tables: the CPU-ms table and the model-alone table with other runtimes' cells."""

from __future__ import annotations

from typing import Any

from bench import tables


def cell(path: str, cpu: dict[str, float]) -> dict[str, Any]:
    return {"path": path, "precision": "fp32", "image": "small", "concurrency": 8, "cpu_ms_per_request": cpu}


def alone(images_per_s: list[float], **extra: Any) -> dict[str, Any]:
    rows = [{"batch_size": bs, "images_per_s": v} for bs, v in zip((1, 8), images_per_s, strict=True)]
    best = max(rows, key=lambda r: r["images_per_s"])
    return {
        "by_batch_size": rows,
        "images_per_s": best["images_per_s"],
        "best_batch_size": best["batch_size"],
        **extra,
    }


def test_cpu_table_lists_each_group_and_the_sum() -> None:
    results = {
        "cells": [
            cell("c", {"api": 0.0, "frontend": 1.5, "workers": 40.0}),
            cell("d", {"api": 6.25, "frontend": 1.5, "workers": 41.0}),
        ]
    }

    text = tables.cpu_table(results)

    lines = text.splitlines()
    assert lines[0] == "| Path | Precision | Image | Clients | API | TS frontend | TS workers | all |"
    assert lines[2].endswith("| 0.0 | 1.5 | 40.0 | 41.5 |")
    assert lines[3].endswith("| 6.2 | 1.5 | 41.0 | 48.8 |")
    assert tables.cpu_table({"cells": [cell("b", {})]}) == ""


def test_model_alone_table_names_runtimes_and_the_precision_they_ran() -> None:
    results = {
        "model_alone": {
            "fp32": alone([10.0, 20.0]),
            "onnxruntime fp32": alone([12.0, 25.0], precision="fp32", precision_used="fp32"),
            "openvino bf16": alone([30.0, 15.0], precision="bf16", precision_used="fp32"),
        }
    }

    lines = tables.model_alone_table(results).splitlines()

    assert lines[0] == "| Runtime | batch 1 | batch 8 | Best |"
    assert lines[2] == "| PyTorch fp32 | 10.00 | 20.00 | 20.00 (batch 8) |"
    assert lines[3] == "| onnxruntime fp32 | 12.00 | 25.00 | 25.00 (batch 8) |"
    assert lines[4] == "| openvino bf16 (ran fp32) | 30.00 | 15.00 | 30.00 (batch 1) |"
