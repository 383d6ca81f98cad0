"""bench.process_cpu: CPU time per process group read from real processes, and pinning a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import process_cpu

# A child that burns one CPU-second (process time, whatever the load), says so, then idles.
BURNER = """
import sys, time
while time.process_time() < 1.0:
    pass
open(sys.argv[1], "w").close()
time.sleep(120)
"""
# The root (its command line says gunicorn) starts the burner (its command line says model_service_worker).
ROOT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], "model_service_worker"])
time.sleep(120)
"""


@pytest.fixture
def process_tree(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    done = tmp_path / "burnt"
    root = subprocess.Popen(
        [sys.executable, "-c", ROOT, BURNER, str(done), "gunicorn"], start_new_session=True
    )
    try:
        yield root, done
    finally:
        os.killpg(root.pid, 9)
        root.wait()


def wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_cpu_time_is_summed_per_group(process_tree: tuple[subprocess.Popen[bytes], Path]) -> None:
    root, done = process_tree
    before = process_cpu.cpu_seconds([root.pid])
    wait_for(done)

    after = process_cpu.cpu_seconds([root.pid])

    assert set(after) == {"api", "frontend", "workers"}
    assert after["workers"] >= 1.0
    assert after["api"] < 0.9  # the root only started a process and sleeps
    assert after["frontend"] == 0.0
    per_request = process_cpu.per_request_ms(before, after, requests=10)
    assert per_request["workers"] == pytest.approx(100.0 * (after["workers"] - before["workers"]), abs=0.01)


def test_per_request_counts_only_the_measured_share() -> None:
    before = {"api": 1.0, "frontend": 2.0, "workers": 3.0}
    after = {"api": 2.0, "frontend": 2.5, "workers": 7.0}

    result = process_cpu.per_request_ms(before, after, requests=100, measured_share=0.5)

    assert result == {"api": 5.0, "frontend": 2.5, "workers": 20.0}
    assert process_cpu.per_request_ms(before, after, requests=0) == {}


def test_pin_sets_every_thread_of_the_tree(process_tree: tuple[subprocess.Popen[bytes], Path]) -> None:
    root, done = process_tree
    wait_for(done)
    cpu = min(os.sched_getaffinity(0))

    pinned = process_cpu.pin(root.pid, {cpu})

    processes = process_cpu.tree(root.pid)
    assert len(processes) == 2 and pinned >= 2
    assert all(os.sched_getaffinity(p.pid) == {cpu} for p in processes)


def test_parse_cpus() -> None:
    assert process_cpu.parse_cpus("0-3,6") == {0, 1, 2, 3, 6}
    assert process_cpu.parse_cpus("1") == {1}
    with pytest.raises(ValueError):
        process_cpu.parse_cpus(" , ")
