"""Choosing between fused kernels and their PyTorch references.

Every fast path has an exact reference. ``VOXKIT_KERNELS=off`` forces the references everywhere
(the kill switch); otherwise a fused implementation is used when one is registered and loads on
this machine (:mod:`voxkit.ops.registry`). The active path of each op is logged once so that a
run's log says what ran.
"""

from __future__ import annotations

import logging
import os
import sys

import torch

log = logging.getLogger("voxkit.ops")
_announced: set[tuple[str, str]] = set()


KERNELS_OFF = ("off", "0", "false", "no", "reference")
KERNELS_ON = ("auto", "on", "1", "true", "yes", "")
_unknown_warned: set[str] = set()


def kernels_enabled() -> bool:
    """False when ``VOXKIT_KERNELS`` is off, 0, false, no or reference (read at each call: tests flip it).

    Any other value keeps the kernels on; one that is not a known "on" word is warned about once,
    since a kill switch that silently ignores a misspelling ("of", "disable") is no kill switch.
    """
    value = os.environ.get("VOXKIT_KERNELS", "auto").lower()
    if value in KERNELS_OFF:
        return False
    if value not in KERNELS_ON and value not in _unknown_warned and not torch.compiler.is_compiling():
        _unknown_warned.add(value)
        print(f"voxkit: warning: VOXKIT_KERNELS={value} is not a known value (off: {', '.join(KERNELS_OFF)}); the kernels stay on",
              file=sys.stderr)
    return True


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
