"""A training run's scalars: the sums between log steps, and the log they are written to.

Why apart from the trainer: the log is a file format with its own rules (JSON lines always,
TensorBoard events when installed, a resumed run's log cut back to its checkpoint), and the running
sums are the one place where ranks average their losses.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from voxkit.train.collective import all_reduce_

SCALARS_FILE = "scalars.jsonl"


def _logged_step(line: str) -> float:
    """The step of one scalars line; infinite for a line that cannot be read, so that it is dropped.

    Why: a run killed while writing (kill -9, a full disk) leaves half a line at the end, which must
    not stop the resume that would repair the log."""
    try:
        row = json.loads(line)
        return float(row.get("step", 0)) if isinstance(row, dict) else math.inf
    except (json.JSONDecodeError, TypeError, ValueError):
        return math.inf


class ScalarLog:
    """Scalars as JSON lines (always) and TensorBoard events (when ``tensorboard`` is installed)."""

    def __init__(self, out_dir: Path, start_step: int) -> None:
        self.path = out_dir / SCALARS_FILE
        if self.path.exists():
            # drop lines a crashed or interrupted run wrote after the checkpoint this run starts from; a
            # run from step 0 keeps none, or a restart in the same out_dir (after Ctrl-C before the
            # first checkpoint) would append a second curve to the first, each step twice
            kept = [ln for ln in self.path.read_text(encoding="utf-8", errors="replace").splitlines()
                    if start_step > 0 and _logged_step(ln) <= start_step]
            self.path.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")
        self.file = self.path.open("a", encoding="utf-8")
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step or None)
        except ImportError:
            pass

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        self.file.write(json.dumps({"step": step, "time": round(time.time(), 3), **scalars}) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


class Running:
    """Sums of losses and metrics since the last log step, kept on the device."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.reduce: set[str] = set()

    def add(self, key: str, value: torch.Tensor | float, reduce: bool = False) -> None:
        """Add one value; ``reduce``: also average over ranks at the log step (losses; every rank adds the same keys)."""
        value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
        self.sums[key] = self.sums.get(key, 0.0) + value
        self.counts[key] = self.counts.get(key, 0) + 1
        if reduce:
            self.reduce.add(key)

    def means(self) -> dict[str, float]:
        """Means over the interval; the ``reduce`` keys are also averaged over ranks (one all-reduce)."""
        reduce = sorted(self.reduce)
        out = {k: self.sums[k] / self.counts[k] for k in self.sums}
        if reduce and dist.is_initialized() and dist.get_world_size() > 1:
            anchor = next((v for v in out.values() if isinstance(v, torch.Tensor)), None)
            device = anchor.device if anchor is not None else torch.device("cpu")
            packed = torch.stack([torch.as_tensor(out[k], dtype=torch.float32, device=device) for k in reduce])
            all_reduce_(packed)
            out.update(zip(reduce, (packed / dist.get_world_size()).unbind(), strict=True))
        self.sums.clear()
        self.counts.clear()
        self.reduce.clear()
        return {k: float(v) for k, v in out.items()}
