"""bench.report: the summary README shows (latest.md) names the machine and carries the run's verdicts and
cells; write_all writes every file of a run, the committed pair included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import checks, machine, report
from bench.checks import RATIO_CHECKS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cell(path: str, image: str, clients: int, images_per_s: float, p50_ms: float) -> dict[str, Any]:
    """One cell as bench.runner records it (the fields the reports read)."""
    return {
        "path": path,
        "precision": "fp32",
        "label": f"({path})",
        "image": image,
        "concurrency": clients,
        "requests": int(images_per_s * 10),
        "errors": 0,
        "throughput_rps": images_per_s,
        "latency_ms": {
            "mean": p50_ms,
            "p50": p50_ms,
            "p95": p50_ms * 1.5,
            "p99": p50_ms * 2,
            "max": p50_ms * 3,
        },
        "loadgen_cpu_fraction": 0.01,
        "busy_before": 0.02,
        "system_cpu_busy": 0.97,
    }


def results() -> dict[str, Any]:
    """A run of (b) and (d) on the small JPEG, on a CPU with AVX-512 BF16 but no AMX."""
    flags = {flag: flag in {"avx2", "fma", "avx512f", "avx512_bf16"} for flag in machine.ISA_FLAGS}
    return {
        "meta": {
            "started_at": "2030-01-02 03:04 UTC",
            "mode": "full",
            "steps": ["stock", "ours"],
            "command": "python -m bench",
            "cpu": "Example CPU 9000",
            "cores": 2,
            "isa_flags": flags,
            "torch_cpu_capability": "AVX512",
            "total_seconds": 600.0,
        },
        "cells": [cell("b", "small", 8, 20.0, 300.0), cell("d", "small", 8, 40.0, 150.0)],
        "model_alone": {},
        "errors": ["(c)+(d) ours fast (bf16): RuntimeError: boom"],
    }


def test_summary_names_the_machine_and_its_isa() -> None:
    text = report.summary(results())

    assert text.startswith("### Latest run: 2030-01-02 03:04 UTC\n")
    assert "Example CPU 9000, 2 cores" in text
    assert "ISA: avx2, fma, avx512f, avx512_bf16; not avx512_vnni" in text
    assert "amx_bf16" in text and "(CPU kernels: AVX512)" in text


def test_summary_carries_the_verdicts_and_every_cell() -> None:
    text = report.summary(results())
    small_fp32 = RATIO_CHECKS[0]

    assert f"| {small_fp32[0]} | >= 2x | 2.00x | PASS |" in text  # (d)/(b) = 40 / 20
    assert text.count("| fp32 | small | 8 |") == 2
    assert "- Problem: (c)+(d) ours fast (bf16): RuntimeError: boom" in text


def test_write_all_writes_the_full_report_and_the_committed_pair(tmp_path: Path) -> None:
    paths = report.write_all(results(), tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
    assert set(paths) == {"results.json", "results.md", "results.png", "latest.md", "latest.png", "cpu"}
    assert paths["latest.md"].read_text() == report.summary(results())
    assert paths["latest.png"].read_bytes().startswith(PNG_MAGIC)
    assert paths["latest.png"].read_bytes() == paths["results.png"].read_bytes()


def test_isa_flags_are_read_from_the_cpu() -> None:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    reported = set(
        next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split(":")[1].split()
    )

    flags = machine.isa_flags()

    assert list(flags) == list(machine.ISA_FLAGS)
    assert {flag for flag, present in flags.items() if present} == reported & set(machine.ISA_FLAGS)


def test_paired_full_stack_ratios_are_held_to_nine_tenths() -> None:
    data = results()
    data["paired_ratio"] = {
        "fp32": {
            "small": {"median_ratio": 0.93, "rounds": []},
            "12mp": {"median_ratio": 0.85, "rounds": []},
        }
    }

    verdicts = {c.name: c.verdict for c in checks.checks(data)}

    assert verdicts["(d)/(c) small JPEG, c=8, fp32, paired runs"] == "PASS"
    assert verdicts["(d)/(c) 12 MP JPEG, c=8, fp32, paired runs"] == "MISS"
    assert verdicts["(d)/(c) small JPEG, c=8, fast, paired runs"] == "n/a"


def test_a_full_run_is_also_kept_for_its_kind_of_cpu(tmp_path: Path) -> None:
    data = results()
    data["meta"]["isa_flags"] = {"avx512f": True, "avx512_bf16": True, "amx_bf16": False}
    data["meta"]["cpu"] = "AMD EPYC 9R14"

    paths = report.write_all(data, tmp_path)

    assert paths["cpu"].name == "cpu-amd-epyc-avx512-bf16.md"
    assert paths["cpu"].read_text() == paths["latest.md"].read_text()


def test_cpu_kinds_name_the_fastest_bf16_path() -> None:
    amx = {"avx512f": True, "avx512_bf16": True, "amx_bf16": True}

    kinds = [
        machine.cpu_kind("Intel(R) Xeon(R) Platinum 8488C", amx),
        machine.cpu_kind("AMD EPYC", {"avx512f": True, "avx512_bf16": True}),
        machine.cpu_kind("Some CPU", {"avx2": True}),
    ]

    assert kinds == ["intel-xeon-amx", "amd-epyc-avx512-bf16", "other-cpu-avx2"]
