"""Timing GPU (and CPU) work: medians of many single calls, caches flushed, and the copy roofline.

On a GPU each call is bracketed by CUDA events (device time, not launch time), after a write of a
256 MiB buffer that evicts the inputs from L2 (a memory-bound op must be measured from DRAM, as it
runs inside a model) and keeps the GPU busy while the host queues the call. On a CPU the same
loop uses the wall clock.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

FLUSH_BYTES = 256 << 20  # larger than any current GPU's L2 (50-60 MiB on H100/H200)


SLEEP_CYCLES = 2_000_000  # about 1 ms of GPU clock: longer than the host needs to queue one op's calls


class Timer:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._flush = torch.empty(FLUSH_BYTES, dtype=torch.uint8, device=device) if self.cuda else None

    def median(
        self,
        fn: Callable[[Any], object],
        *,
        setup: Callable[[], Any] | None = None,
        reps: int = 30,
        warmup: int = 3,
        flush: bool = True,
    ) -> float:
        """Median seconds of ``fn(setup())``; ``setup`` runs before each call, untimed (e.g. the
        forward whose backward is timed)."""
        for _ in range(warmup):
            fn(setup() if setup is not None else None)
        if not self.cuda:
            times = []
            for _ in range(reps):
                state = setup() if setup is not None else None
                start = time.perf_counter()
                fn(state)
                times.append(time.perf_counter() - start)
            return statistics.median(times)
        torch.cuda.synchronize(self.device)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            state = setup() if setup is not None else None
            if flush and self._flush is not None:
                self._flush.zero_()
            if hasattr(torch.cuda, "_sleep"):
                # keep the GPU busy while the host queues the call: the events then time the
                # kernels, not the Python and dispatch in front of them (the same for every column)
                torch.cuda._sleep(SLEEP_CYCLES)
            starts[i].record()
            fn(state)
            ends[i].record()
        torch.cuda.synchronize(self.device)
        return statistics.median(s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends, strict=True))

    def wall(self, fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
        """Wall-clock seconds of each of ``reps`` calls (device synchronised around each): for
        whole loops (decode, streaming steps) whose host work is part of the cost."""
        out = []
        for i in range(warmup + reps):
            if self.cuda:
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            fn()
            if self.cuda:
                torch.cuda.synchronize(self.device)
            if i >= warmup:
                out.append(time.perf_counter() - start)
        return out


def copy_bandwidth(timer: Timer, nbytes: int, reps: int = 20) -> tuple[float, float]:
    """(bytes/s, seconds) of ``dst.copy_(src)`` for ``nbytes`` of bf16: read + write = 2 nbytes moved."""
    n = max(nbytes // 2, 1)
    src = torch.ones(n, dtype=torch.bfloat16, device=timer.device)
    dst = torch.empty_like(src)
    seconds = timer.median(lambda _: dst.copy_(src), reps=reps)
    return 2 * n * 2 / seconds, seconds
