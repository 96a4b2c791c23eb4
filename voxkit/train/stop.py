"""SIGTERM ends a training run cleanly: the loop stops after the step it is in and saves.

Why: a borrowed machine, a batch scheduler or a script's deadline ends a job with SIGTERM, and a
run killed outright loses every step since its last checkpoint (hundreds, at the recipes'
``save_every``). Caught, the signal becomes an early end: the trainer finishes the step, writes a
checkpoint that ``--resume`` continues from (the learning-rate schedule still spans the planned
steps) and returns normally, so the script that started it can still export what was learned.
A second SIGTERM is not caught: it ends the process at once, as it would without this.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class StopOnSignal:
    """Context manager: while inside, the first SIGTERM sets :attr:`requested` instead of ending
    the process. Signal handlers can only be set from the main thread; elsewhere it does nothing."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.signum, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self._restore()  # the next one is not caught

    def _restore(self) -> None:
        if self._installed:
            signal.signal(self.signum, signal.SIG_DFL if self._previous is None else self._previous)
            self._installed = False

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._restore()
