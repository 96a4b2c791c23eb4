"""Whether this machine is expected to build voxkit's CPU kernels (voxkit/ops/csrc)."""

from __future__ import annotations

import platform
import shutil


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return set()


_FLAGS = cpu_flags()
# An x86 CPU with AVX-512 or AVX2 + F16C + FMA: the instruction sets the kernels are written for.
KERNEL_CPU = platform.machine() in ("x86_64", "AMD64") and (
    {"avx512f", "f16c"} <= _FLAGS or {"avx2", "f16c", "fma"} <= _FLAGS
)
HAS_CC = shutil.which("cc") is not None
CAN_BUILD = KERNEL_CPU and HAS_CC
