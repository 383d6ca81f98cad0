"""Print the CPUs TorchServe should be pinned to so its thread count matches the container's CPU quota.

``docker compose`` limits CPUs with a CFS quota (``deploy.resources.limits.cpus``), which
``os.sched_getaffinity`` does not see: on a 32-core host with a 2-CPU limit, a handler that sizes its torch
thread pool from the affinity mask starts 32 threads and spends its time throttled. Narrowing the affinity
mask to as many CPUs as the quota allows makes every affinity-based sizing (torch, OpenMP, the JVM) agree
with the limit. Prints a ``taskset -c`` list, or nothing when no narrowing is needed.

Usage (docker/torchserve-entrypoint.sh): ``python cpu_quota.py``. Standard library only.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line (``"200000 100000"`` is 2.0); None when unlimited."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs_v1(quota_text: str, period_text: str) -> float | None:
    """CPUs allowed by cgroup v1 ``cfs_quota_us``/``cfs_period_us`` (quota -1 means unlimited)."""
    return parse_cpu_max(f"{quota_text.strip()} {period_text.strip()}")


def read_quota() -> float | None:
    """The container's CPU quota in CPUs, from cgroup v2 or v1; None when unlimited or unreadable."""
    try:
        return parse_cpu_max(CGROUP_V2_CPU_MAX.read_text())
    except OSError:
        pass
    try:
        return parse_cfs_v1(CGROUP_V1_QUOTA.read_text(), CGROUP_V1_PERIOD.read_text())
    except OSError:
        return None


def pinned_cpus(affinity: Sequence[int], quota: float | None) -> list[int]:
    """The first ceil(quota) CPUs of ``affinity``; empty when the quota does not narrow it."""
    if quota is None:
        return []
    wanted = max(1, math.ceil(quota))
    ordered = sorted(affinity)
    return ordered[:wanted] if wanted < len(ordered) else []


def main() -> int:
    """Print the CPU list for ``taskset -c`` (or nothing); never fails the container start."""
    if not hasattr(os, "sched_getaffinity"):
        return 0
    cpus = pinned_cpus(sorted(os.sched_getaffinity(0)), read_quota())
    if cpus:
        print(",".join(str(c) for c in cpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
