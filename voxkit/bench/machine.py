"""One line that says what a benchmark ran on: the processor or GPU, the threads, the libraries and the load.

Why: the scripts' figures are compared across days and hosts (docs/benchmarks.md records a host
that ran 1.6x slower than another of the same type), and a table without its machine cannot be
compared with anything. Every script prints this line above its tables, the same way.
"""

from __future__ import annotations

import datetime
import os

import torch

# the same readers of the processor's name and of package versions as ``voxkit env`` (one of each in voxkit)
from voxkit.ops.native import cpu_name
from voxkit.versions import library_version

__all__ = ["cpu_name", "describe", "library_version"]


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
