"""One line that says what a benchmark ran on: the processor or GPU, the threads, the libraries and the load.

Why: the scripts' figures are compared across days and hosts (docs/benchmarks.md records a host
that ran 1.6x slower than another of the same type), and a table without its machine cannot be
compared with anything. Every script prints this line above its tables, the same way.
"""

from __future__ import annotations

import datetime
import os
import platform

import torch


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo, else what the platform module says), or "CPU"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def library_version(module: str) -> str | None:
    """The installed version of ``module``'s distribution, or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def describe(device: torch.device | str = "cpu", peers: tuple[str, ...] = ()) -> str:
    """``"machine: <CPU> (N cores), T torch threads[, <GPU>, M GiB] | torch V[, peer V] | load a, b, c | date"``.

    ``peers``: distributions whose versions matter to the comparison (e.g. "transformers"); one
    that is not installed is said to be so.
    """
    device = torch.device(device)
    threads = torch.get_num_threads()
    parts = [f"{cpu_name()} ({os.cpu_count()} cores), {threads} torch thread{'s' if threads != 1 else ''}"]
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        parts.append(f"{torch.cuda.get_device_name(device)}, {props.total_memory / 2**30:.0f} GiB")
    libraries = [f"torch {torch.__version__}"] + [f"{name} {library_version(name) or 'not installed'}" for name in peers]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"machine: {', '.join(parts)} | {', '.join(libraries)} | load average {load} | {date}"
