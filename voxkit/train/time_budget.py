"""``train.time_budget_s``: fit a run's learning-rate schedule into a fixed amount of time.

A borrowed GPU or a CI slot gives minutes, not steps. The trainer asks :class:`TimeBudget` how many
optimizer steps fit, sets the schedule's end there, and stops (saving) when the time is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TimeBudget:
    """``train.time_budget_s``: how many optimizer steps fit in the budget, measured as the run goes.

    The first plan times steps ``start+10 .. start+60`` (after warm-up, allocator growth and kernel
    selection). Step time can still drift (data workers warm their caches, later epochs read from
    the page cache), so the plan is redone from the recent step rate when 25 %, 50 % and 75 % of
    the budget have passed; ``spent`` ends the loop if the steps still overrun.
    """

    CALIBRATE_FROM, CALIBRATE_TO = 10, 60
    REPLAN_AT = (0.25, 0.5, 0.75)

    def __init__(self, seconds: float, start_step: int, clock: Callable[[], float] = time.perf_counter, used: float = 0.0) -> None:
        """``seconds``: the whole budget; ``used``: what earlier runs of a resumed job spent of it."""
        self.seconds, self.start_step, self.clock = seconds, start_step, clock
        self.t0 = clock() - used  # elapsed time counts the earlier runs
        self.mark: tuple[int, float] | None = None  # (step, time) the next rate is measured from
        self.calibrated = False
        self.next_replan = 0

    @property
    def active(self) -> bool:
        return self.seconds > 0

    @property
    def calibrate_step(self) -> int:
        return self.start_step + self.CALIBRATE_TO

    @property
    def replans_left(self) -> bool:
        return self.calibrated and self.next_replan < len(self.REPLAN_AT)

    def observe(self, step: int) -> None:
        """Called after every step (no communication): starts the first measurement."""
        if self.active and step == self.start_step + self.CALIBRATE_FROM:
            self.mark = (step, self.clock())

    def plan(self, step: int, cap: int) -> int | None:
        """The number of steps that fit (at most ``cap``), when a plan is due at ``step``; else None."""
        if not self.active or self.mark is None:
            return None
        now = self.clock()
        elapsed = now - self.t0
        if not self.calibrated:
            if step < self.calibrate_step:
                return None
            self.calibrated = True
            while self.next_replan < len(self.REPLAN_AT) and elapsed >= self.REPLAN_AT[self.next_replan] * self.seconds:
                self.next_replan += 1
        elif self.replans_left and elapsed >= self.REPLAN_AT[self.next_replan] * self.seconds:
            self.next_replan += 1
        else:
            return None
        per_step = (now - self.mark[1]) / max(1, step - self.mark[0])
        self.mark = (step, now)
        # 3 % slack for logging, checkpoints and evaluation
        return max(step + 1, min(cap, step + int(0.97 * (self.seconds - elapsed) / per_step)))

    def spent(self) -> bool:
        return self.active and self.elapsed() >= self.seconds

    def elapsed(self) -> float:
        return self.clock() - self.t0
