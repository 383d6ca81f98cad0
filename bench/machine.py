"""How a run was started, and what it measured on: the CPU model, its cores, and the instruction-set
extensions that decide how fast the model runs (AVX-512 VNNI and BF16, AMX), with the software versions.

bf16 only pays off where the CPU computes in it natively (``avx512_bf16``, or AMX's ``amx_bf16``); without
them PyTorch emulates it and the ``fast`` archive gains little. Every run records these, so its numbers can
be read against the hardware that produced them.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import handlers  # noqa: F401  (puts the handler's directory on sys.path, as TorchServe does)
from classifier_cpu import ISA_FLAGS  # the extensions PyTorch's CPU kernels use

CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str | None:
    """The first processor's ``name`` line of /proc/cpuinfo (Linux), or None."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or "?"


def isa_flags() -> dict[str, bool]:
    """Which of ``ISA_FLAGS`` the CPU reports (all False where /proc/cpuinfo is not readable)."""
    flags = set((_cpuinfo_field("flags") or "").split())
    return {flag: flag in flags for flag in ISA_FLAGS}


def cpu_kind(cpu: str, flags: dict[str, bool] | None) -> str:
    """A file-name slug for the kind of CPU a run measured: vendor and its fastest bf16 path, e.g.
    ``amd-epyc-avx512-bf16`` or ``intel-xeon-amx``. Runs on the same kind of CPU share a results file."""
    name = cpu.lower()
    vendor = next((v for v in ("epyc", "xeon", "ryzen", "core") if v in name), "cpu")
    maker = "amd" if vendor in ("epyc", "ryzen") or "amd" in name else "intel" if "intel" in name else "other"
    flags = flags or {}
    if flags.get("amx_bf16"):
        path = "amx"
    elif flags.get("avx512_bf16"):
        path = "avx512-bf16"
    elif flags.get("avx512f"):
        path = "avx512"
    else:
        path = "avx2" if flags.get("avx2") else "baseline"
    return f"{maker}-{vendor}-{path}"


def command_line(module: str, argv: list[str] | None) -> str:
    """``python -m <module>`` with the run's arguments (the process's own when ``argv`` is None), quoted as
    a shell would need them."""
    args = shlex.join(sys.argv[1:] if argv is None else argv)
    return f"python -m {module} {args}".strip()


def describe() -> dict[str, Any]:
    """The machine and software part of a run's ``meta``."""
    import torch
    from ts.version import __version__ as ts_version

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "isa_flags": isa_flags(),
        # The widest kernels PyTorch dispatches to on this CPU (e.g. AVX2, AVX512).
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torchserve": ts_version,
        "python": platform.python_version(),
    }


def isa_summary(flags: dict[str, bool] | None) -> str:
    """'avx2, fma; not avx512f, ...' for a report line."""
    if not flags:
        return "ISA flags not recorded"
    have = [flag for flag, present in flags.items() if present]
    lack = [flag for flag, present in flags.items() if not present]
    text = ", ".join(have) or "none of " + ", ".join(ISA_FLAGS)
    return f"{text}; not {', '.join(lack)}" if have and lack else text
