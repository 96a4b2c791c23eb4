"""Numeric flags checked in the user's words, before any work.

Why: left to the libraries, a count of 0 or -1 surfaces minutes later as a traceback from
``range()``, ``random.sample`` or ``torch.set_num_threads``, or silently slices items off the end
of a list. Every command that takes a count checks it here, the same way.
"""

from __future__ import annotations

from voxkit.errors import VoxkitError


def at_least(value: int | None, least: int, flag: str, what: str) -> None:
    """Refuse ``value`` below ``least`` (None: the flag was not given), e.g. "--limit takes a number
    of clips of at least 1, got 0"."""
    if value is not None and value < least:
        raise VoxkitError(f"{flag} takes {what} of at least {least}, got {value}")
