"""Argument types of the benchmark scripts (scripts/bench_*.py): a bad number is one line from argparse.

Why: ``--threads 0`` reached ``torch.set_num_threads`` and ``--repeats 0`` the median of no
timings, both as tracebacks after the models had loaded; ``--seconds nan`` failed inside an
integer conversion. Each flag's type says what it takes, so argparse refuses it before any work.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

import torch


def whole(minimum: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (and at most ``most`` when given)."""
    wanted = f"a whole number of at least {minimum}" if most is None else f"a whole number from {minimum} to {most}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes {wanted}, got {text!r}") from None
        if value < minimum or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"takes {wanted}, got {value}")
        return value

    return parse


def number(minimum: float, above: bool = False, most: float = math.inf) -> Callable[[str], float]:
    """An argparse type: a finite number of at least ``minimum`` (above it when ``above``), at most ``most``."""
    low = f"above {minimum:g}" if above else f"of at least {minimum:g}"
    high = f" and at most {most:g}" if math.isfinite(most) else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes a number {low}{high}, got {text!r}") from None
        if not (math.isfinite(value) and (value > minimum if above else value >= minimum) and value <= most):
            raise argparse.ArgumentTypeError(f"takes a finite number {low}{high}, got {text}")
        return value

    return parse


def folder(text: str) -> str:
    """An argparse type: a folder that exists (a model's, a codec's), refused before anything loads."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: {'not a folder' if os.path.exists(text) else 'no such folder'}")
    return text


def require_cuda(parser: argparse.ArgumentParser, flag: str) -> None:
    """Refuse ``flag`` in one line where torch sees no CUDA GPU, before anything is built for one."""
    if not torch.cuda.is_available():
        parser.error(f"{flag} needs a CUDA GPU, and torch sees none here")


def device(parser: argparse.ArgumentParser, text: str) -> torch.device:
    """``--device`` as a torch device that exists here, or one line from ``parser``."""
    try:
        dev = torch.device(text)
    except RuntimeError:
        parser.error(f"--device {text}: not a device (cpu, cuda or cuda:N)")
    if dev.type not in ("cpu", "cuda"):
        parser.error(f"--device {text}: only cpu and cuda are supported")
    if dev.type == "cuda":
        require_cuda(parser, f"--device {text}")
    return dev
