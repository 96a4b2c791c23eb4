"""Choosing between fused kernels and their PyTorch references.

Every fast path has an exact reference. ``VOXKIT_KERNELS=off`` forces the references everywhere
(the kill switch); otherwise a fused implementation is used when one is registered and loads on
this machine. The active path of each op is logged once so that a run's log says what ran.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("voxkit.ops")
_announced: set[tuple[str, str]] = set()


def kernels_enabled() -> bool:
    return os.environ.get("VOXKIT_KERNELS", "auto").lower() not in ("off", "0", "false", "reference")


def announce(op: str, path: str) -> None:
    """Log which implementation ``op`` uses, once per process."""
    if (op, path) in _announced:  # hot path: called on every op of every step
        return
    _announced.add((op, path))
    log.info("voxkit op %s -> %s", op, path)
