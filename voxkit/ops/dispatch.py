"""Choosing between fused kernels and their PyTorch references.

Every fast path has an exact reference. ``VOXKIT_KERNELS=off`` forces the references everywhere
(the kill switch); otherwise a fused implementation is used when one is registered and loads on
this machine. The active path of each op is logged once so that a run's log says what ran.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("voxkit.ops")
_announced: set[str] = set()


def kernels_enabled() -> bool:
    return os.environ.get("VOXKIT_KERNELS", "auto").lower() not in ("off", "0", "false", "reference")


def announce(op: str, path: str) -> None:
    """Log which implementation ``op`` uses, once per process."""
    key = f"{op}:{path}"
    if key not in _announced:
        _announced.add(key)
        log.info("voxkit op %s -> %s", op, path)
