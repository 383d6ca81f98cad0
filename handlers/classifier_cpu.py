"""The CPU's instruction-set extensions, and the precision they make fastest.

The archive builder resolves ``--precision auto`` with ``best_precision`` and records the flags an
ahead-of-time compiled package was built with (``isa_flags``); the handler loads such a package only where
the CPU has all of them (``missing_flags``), since the compiled kernels use those instructions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The extensions PyTorch's CPU kernels (and inductor's generated ones) use for fp32, bf16 and int8.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # bf16 computed natively, not emulated through fp32
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # int8 dot products in one instruction


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """Every flag of the first processor in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return set(value.split())
    return set()


def isa_flags(flags: Iterable[str]) -> list[str]:
    """The ``ISA_FLAGS`` among ``flags``, in ``ISA_FLAGS`` order."""
    present = set(flags)
    return [flag for flag in ISA_FLAGS if flag in present]


def missing_flags(required: Iterable[str], flags: Iterable[str]) -> list[str]:
    """The ``required`` flags that ``flags`` lacks."""
    present = set(flags)
    return [flag for flag in required if flag not in present]


def best_precision(flags: Iterable[str]) -> tuple[str, str]:
    """The fastest precision the CPU supports, and why: bf16 where the CPU computes bf16 natively (AMX or
    AVX512-BF16), else int8 where it has int8 dot-product instructions (VNNI), else fp32."""
    present = set(flags)
    bf16 = [flag for flag in BF16_FLAGS if flag in present]
    if bf16:
        return "bf16", f"the CPU computes bf16 natively ({bf16[0]})"
    int8 = [flag for flag in INT8_FLAGS if flag in present]
    if int8:
        return "int8", f"the CPU has int8 dot products ({int8[0]}) but no native bf16"
    return "fp32", "the CPU has neither native bf16 nor int8 dot products"
