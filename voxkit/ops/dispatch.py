"""Choosing between fused kernels and their PyTorch references.

Every fast path has an exact reference. ``VOXKIT_KERNELS=off`` forces the references everywhere
(the kill switch); otherwise a fused implementation is used when one is registered and loads on
this machine (:mod:`voxkit.ops.registry`). The active path of each op is logged once so that a
run's log says what ran.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger("voxkit.ops")
_announced: set[tuple[str, str]] = set()


def kernels_enabled() -> bool:
    """False when ``VOXKIT_KERNELS`` is off, 0, false or reference (read at each call: tests flip it)."""
    return os.environ.get("VOXKIT_KERNELS", "auto").lower() not in ("off", "0", "false", "reference")


def announce(op: str, path: str) -> None:
    """Log which implementation ``op`` uses, once per process.

    Called on every op of every step, so the common case is one set lookup. Under
    ``torch.compile`` it does nothing: tracing the set's bookkeeping would guard on (and recompile
    for) a Python set; the compiled graph's ops announce themselves when their bodies run.
    """
    if torch.compiler.is_compiling():
        return
    key = (op, path)
    if key in _announced:
        return
    _announced.add(key)
    log.info("voxkit op %s -> %s", op, path)
