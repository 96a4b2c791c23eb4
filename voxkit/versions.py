"""The installed version of a package, read from its metadata.

Why a module of its own: ``voxkit env`` and the benchmarks' machine line both name library
versions, and the bug report must print even when torch or an extra is broken, so this imports
nothing but the standard library.
"""

from __future__ import annotations

from importlib import metadata


def library_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed (nothing is imported)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
