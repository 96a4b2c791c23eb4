"""Wall-clock timing for the benchmark scripts (voxkit next to a peer, same inputs, same run).

Why one helper: every benchmark compares functions on a shared, noisy machine. Alternating them
within each round gives both the same machine load, a warm-up round keeps first-call costs
(allocations, lazy imports, kernel builds) out, the median ignores a stray slow round, and on a GPU
the device is synchronised around each call so that the time is the work's, not the launch's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_times(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function over ``repeats`` rounds, after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_index in range(repeats + 1):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_index > 0:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
