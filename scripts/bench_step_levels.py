"""The quiet-input boost and the pause cutter of a live stream, this tree's beside an earlier
commit's, in one process: time and working memory per 80 ms push.

    python scripts/bench_step_levels.py --against 50d467f   # the commit before they read stream buffers

Both run on the same quiet, speech-like signal (bursts and gaps, so the boost raises every step and
the cutter finds pauses), pushed 80 ms at a time after 35 s that fill the 30 s window. Timings are
medians of runs that alternate the two versions; working memory is the most any one push allocates
beyond what it keeps (tracemalloc), numpy's buffers included.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

RATE = 16_000
PUSH = 1280  # one recogniser step
LIMITS = (25, 150, 180)  # the cutter's (min, soft, max) segment steps, as the bundled model's at 480 ms


def _old_module(rev: str, path: str, name: str, folder: Path) -> ModuleType:
    """``path`` as it was at ``rev``, imported as ``name`` (its own imports resolve to this tree)."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout
    file = folder / f"{name.rsplit('.', 1)[-1]}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _signal(seconds: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(RATE * seconds).astype(np.float32)  # [N]
    bursts = np.repeat((rng.random(RATE * seconds // 8000) > 0.3).astype(np.float32), 8000)  # [N]: half-second bursts
    return noise * (0.02 + bursts) * 0.0025  # [N] quiet speech level


def _time(make: Callable[[], object], x: np.ndarray) -> float:
    meter = make()
    meter.feed(x[: 35 * RATE])  # type: ignore[attr-defined]
    at, n = 35 * RATE, 0
    start = time.perf_counter()
    while at + PUSH <= x.shape[0]:
        meter.feed(x[at : at + PUSH])  # type: ignore[attr-defined]
        at, n = at + PUSH, n + 1
    return (time.perf_counter() - start) / n * 1e6


def _memory(make: Callable[[], object], x: np.ndarray) -> float:
    meter = make()
    meter.feed(x[: 35 * RATE])  # type: ignore[attr-defined]
    at = 35 * RATE
    for _ in range(5):
        meter.feed(x[at : at + PUSH])  # type: ignore[attr-defined]
        at += PUSH
    tracemalloc.start()
    worst = 0
    for _ in range(50):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        meter.feed(x[at : at + PUSH])  # type: ignore[attr-defined]
        worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
        at += PUSH
    tracemalloc.stop()
    return worst / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the commit to compare with, e.g. 50d467f")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from voxkit.asr import level, segments

    with tempfile.TemporaryDirectory() as tmp:
        old_level = _old_module(args.against, "asr/level.py", "voxkit.asr.level_then", Path(tmp))
        old_segments = _old_module(args.against, "asr/segments.py", "voxkit.asr.segments_then", Path(tmp))
    x = _signal(120)
    pairs = {
        "boost": (old_level.QuietBoost, level.QuietBoost),
        "cutter": (lambda: old_segments.PauseCutter(LIMITS), lambda: segments.PauseCutter(LIMITS)),
    }
    print(f"| per 80 ms push of a live stream | {args.against}: us | this tree: us | {args.against}: kB | this tree: kB |")
    print("|---|---:|---:|---:|---:|")
    for name, (then, now) in pairs.items():
        times: dict[str, list[float]] = {"then": [], "now": []}
        for run in range(args.runs):
            order = (("then", then), ("now", now)) if run % 2 else (("now", now), ("then", then))
            for tag, make in order:
                times[tag].append(_time(make, x))
        print(f"| {name} | {statistics.median(times['then']):.1f} | {statistics.median(times['now']):.1f} | "
              f"{_memory(then, x):.1f} | {_memory(now, x):.1f} |")


if __name__ == "__main__":
    main()
