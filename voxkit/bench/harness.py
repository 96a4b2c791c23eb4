"""The benchmark's frame: sections under one time budget, printed as they go and saved as JSON.

Why: the GPU run happens once, on a machine lent for minutes, with nothing to try it on first.
So every section runs in its own try/except (an error is printed and the run goes on), under a
share of the budget enforced by an alarm (a section that overruns is interrupted, not waited
for), and the JSON file is rewritten after every section, so that whatever finished is kept even
if the process is killed later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

ALARM_GRACE_S = 5.0  # past its share, a section is interrupted this much later (its own checks come first)


def say(*parts: object) -> None:
    """print, flushed at once (the run's log is read live and may be cut short)."""
    print(*parts, flush=True)


class SectionTimeout(BaseException):
    """A section used up its share of the time budget. A BaseException, so that the ``except
    Exception`` of the code it interrupts (a kernel build that reports failure as "unavailable")
    cannot swallow it and carry on without a deadline."""


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`SectionTimeout` in this thread after ``seconds`` (main thread on Unix only;
    elsewhere nothing is enforced). Python code (torch.compile included) is interrupted; a long
    call into C returns first."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or not math.isfinite(seconds):
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise SectionTimeout(f"interrupted after its {seconds:.0f} s share of the time budget")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def kernels(on: bool) -> Iterator[None]:
    """Run with voxkit's kernels allowed (``on``) or forced off (``VOXKIT_KERNELS=off``, read per call)."""
    before = os.environ.get("VOXKIT_KERNELS")
    if on:
        os.environ.pop("VOXKIT_KERNELS", None)
    else:
        os.environ["VOXKIT_KERNELS"] = "off"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("VOXKIT_KERNELS", None)
        else:
            os.environ["VOXKIT_KERNELS"] = before


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON: non-finite floats as the strings "inf", "-inf", "nan"; unknown objects as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def write_json(path: str | None, results: dict[str, Any]) -> None:
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(results), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, target)


class Budget:
    """Seconds left of the whole run (imports and kernel build included: the clock starts at import)."""

    def __init__(self, total_s: float, start: float) -> None:
        self.total_s = total_s
        self.start = start

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.total_s - self.elapsed()


@dataclasses.dataclass
class Context:
    """What a section sees: the options, the device, the results so far, its own data and deadline."""

    opts: Any
    device: torch.device
    results: dict[str, Any]
    data: dict[str, Any]
    deadline: float

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def has(self, seconds: float, what: str) -> bool:
        """True when ``seconds`` remain for ``what``; otherwise says it is skipped (and why)."""
        if self.left() >= seconds:
            return True
        say(f"  SKIP {what}: needs ~{seconds:.0f} s, {max(self.left(), 0):.0f} s left of this section's share")
        self.data.setdefault("skipped", []).append(what)
        return False

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


@dataclasses.dataclass
class Section:
    name: str
    title: str
    run: Callable[[Context], None]
    min_s: float  # not started with less than this left (later sections keep their minimum)
    cap_s: float  # never given more than this


def run_sections(
    sections: list[Section], selected: set[str], budget: Budget, opts: Any, device: torch.device, results: dict[str, Any]
) -> None:
    """Run the selected sections in order, each within its share of what is left of the budget."""
    status = results.setdefault("sections", {})
    for i, section in enumerate(sections):
        if section.name not in selected:
            status[section.name] = {"status": "not selected"}
            continue
        later = sum(s.min_s for s in sections[i + 1 :] if s.name in selected)
        share = min(section.cap_s, budget.left() - later)
        say(f"\n=== [{section.name}] {section.title} (t = {budget.elapsed():.0f} s, share {max(share, 0):.0f} s) ===")
        data: dict[str, Any] = {}
        results[section.name] = data
        if share < section.min_s:
            say(f"  SKIP section: {share:.0f} s of the budget left for it, it needs {section.min_s:.0f} s")
            status[section.name] = {"status": "skipped", "reason": "time budget"}
            write_json(opts.out, results)
            continue
        ctx = Context(opts, device, results, data, time.monotonic() + share)
        start = time.monotonic()
        outcome: dict[str, Any] = {"status": "ok"}
        try:
            with alarm(share + ALARM_GRACE_S):
                section.run(ctx)
        except SectionTimeout as err:
            say(f"  TIMEOUT [{section.name}]: {err}")
            outcome = {"status": "timeout", "error": str(err)}
            _reset_compiler()
        except Exception as err:  # report and go on: the run must finish
            say(f"  ERROR [{section.name}]: {type(err).__name__}: {err}")
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
            outcome = {"status": "error", "error": f"{type(err).__name__}: {err}"}
            _reset_compiler()
        outcome["seconds"] = round(time.monotonic() - start, 2)
        status[section.name] = outcome
        try:
            free_memory(device)
        except Exception as err:
            say(f"  (freeing memory failed: {err})")
        say(f"  [{section.name}] {outcome['status']} in {outcome['seconds']:.1f} s")
        write_json(opts.out, results)


def _reset_compiler() -> None:
    with contextlib.suppress(Exception):
        torch._dynamo.reset()
