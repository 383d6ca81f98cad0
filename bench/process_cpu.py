"""CPU time per process group (the API, TorchServe's frontend, its workers), and pinning a group to CPUs.

A group is every process under a root pid, sorted by what it runs: gunicorn's master and workers are the
API; TorchServe's JVM is the frontend; its Python ``model_service_worker`` processes are the workers (the
``torchserve`` launcher script, idle after the start, counts with the frontend). ``cpu_seconds`` reads user
plus system time from /proc (through psutil) for each group; the difference over a cell, divided by the
requests served, is its CPU-ms per request.

``pin`` sets the CPU affinity of every thread of every process in a tree, for the bench's affinity options:
new processes inherit it, so it holds for workers TorchServe starts later from the same JVM thread too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil

GROUPS = ("api", "frontend", "workers")


def group_of(process: psutil.Process) -> str:
    """Which group a process belongs to, by its command line."""
    try:
        cmdline = " ".join(process.cmdline())
        name = process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if "model_service_worker" in cmdline:
        return "workers"
    if "gunicorn" in cmdline or "control_api" in cmdline:
        return "api"
    if name == "java" or "torchserve" in cmdline:
        return "frontend"
    return "other"


def tree(root: int) -> list[psutil.Process]:
    """``root`` and all its descendants (those still running)."""
    try:
        parent = psutil.Process(root)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(roots: Iterable[int]) -> dict[str, float]:
    """User + system CPU seconds so far of every process under ``roots``, summed per group."""
    totals = dict.fromkeys(GROUPS, 0.0)
    for root in roots:
        for process in tree(root):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            group = group_of(process)
            if group in totals:
                totals[group] += times.user + times.system
    return totals


def per_request_ms(
    before: dict[str, float], after: dict[str, float], requests: int, measured_share: float = 1.0
) -> dict[str, float]:
    """CPU-ms per request of each group between two ``cpu_seconds`` readings. ``measured_share`` is the
    part of that time whose requests were counted (a cell's window without its warm-up, at a steady rate)."""
    if requests <= 0:
        return {}
    return {
        group: round(1000.0 * (after[group] - before.get(group, 0.0)) * measured_share / requests, 3)
        for group in after
    }


def parse_cpus(text: str) -> set[int]:
    """'0-3,6' -> {0, 1, 2, 3, 6}."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {text!r}")
    return cpus


def pin(root: int, cpus: set[int]) -> int:
    """Pin every thread of every process under ``root`` to ``cpus``; returns how many threads."""
    pinned = 0
    for process in tree(root):
        try:
            threads = process.threads()
        except psutil.NoSuchProcess:
            continue
        for thread in threads:
            try:
                os.sched_setaffinity(thread.id, cpus)
                pinned += 1
            except (ProcessLookupError, PermissionError):
                continue
    return pinned
