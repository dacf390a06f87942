"""What the CPU can do, read from the operating system (never assumed)."""

from __future__ import annotations

import platform
import re
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The instruction-set extensions native code picks kernels by, in the order worth naming.
NOTABLE_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "sve",
)


def read_cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str] | None:
    """The feature flags in a ``/proc/cpuinfo`` file; None where it cannot be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags; empty where the OS does not say."""
    return read_cpu_flags() or frozenset()


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def has_amx() -> bool:
    """Intel Advanced Matrix Extensions (Sapphire Rapids and later Xeons)."""
    return bool({"amx_tile", "amx_int8"} & cpu_flags())


def cpu_summary() -> str:
    """``AMD EPYC (x86_64: avx2 avx512f avx512_vnni …)`` for error messages and reports."""
    flags = cpu_flags()
    notable = " ".join(f for f in NOTABLE_FLAGS if f in flags) or "flags unknown"
    return f"{cpu_name()} ({platform.machine()}: {notable})"
