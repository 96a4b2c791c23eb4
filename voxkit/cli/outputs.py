"""Where a command writes: one policy for every output path a user names.

Every command checks its outputs here, before any work, so that the same mistake gets the same
one-line answer in every command instead of a traceback after minutes of work:

- a missing folder is made, parents included (``mkdir -p``), for an output folder and for the
  folder of an output file alike;
- a folder is refused where a file is expected, a file where a folder is expected;
- a place that cannot be made or written is refused with the system's reason;
- an existing file is replaced, except by the commands that take ``--force`` (audio and codes,
  where a wrong name would silently destroy a recording).
"""

from __future__ import annotations

import os
from pathlib import Path

from voxkit.errors import VoxkitError
from voxkit.fileio import atomic_write


def _make(folder: Path, name: str, which: str) -> None:
    """Make ``folder`` (and its parents) and check that files can be created in it."""
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise VoxkitError(f"{name}: {existing} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VoxkitError(f"{name}: cannot create {which} ({err.strerror or err})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VoxkitError(f"{name}: {which} is not writable")


def output_folder(path: str | os.PathLike[str], flag: str = "-o", *, make: bool = True) -> Path:
    """An output folder that exists (``make``) or can be made by the writer, checked now.

    ``flag`` names the option in the messages. With ``make=False`` only the parent is made: for
    writers that create the folder themselves and must not find an empty one left by a failure.
    """
    folder = Path(path)
    name = f"{flag} {path}"
    if folder.exists() and not folder.is_dir():
        raise VoxkitError(f"{name} is a file, not a folder")
    if make or folder.exists():
        _make(folder, name, "the folder")
    else:
        parent = folder.absolute().parent
        _make(parent, name, f"its folder {parent}")
    return folder


def output_file(
    path: str | os.PathLike[str],
    flag: str,
    *,
    suffixes: tuple[str, ...] = (),
    force: bool | None = None,
) -> Path:
    """An output file that can be written, checked now; its folder is made if missing.

    ``flag`` names the option in the messages ("" for a positional argument); ``suffixes`` (lower
    case, with the dot) are the endings the writer understands; ``force`` is the command's
    ``--force`` where it has one (None: an existing file is simply replaced).
    """
    name = f"{flag} {path}" if flag else str(path)
    target = Path(path)
    if target.is_dir():
        raise VoxkitError(f"{name} is a folder; give a file name")
    if suffixes and target.suffix.lower() not in suffixes:
        raise VoxkitError(f"{name}: the output must end in {' or '.join(suffixes)}")
    parent = target.absolute().parent
    _make(parent, name, f"its folder {parent}")
    if target.exists():
        if force is False:
            raise VoxkitError(f"{name} exists; add --force to overwrite it")
        if not os.access(target, os.W_OK):
            raise VoxkitError(f"{name}: the file exists and is not writable")
    return target


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """One text output, complete or absent (:func:`voxkit.fileio.atomic_write`), with the user's usual mode."""
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as err:
        raise VoxkitError(f"cannot write {path}: {err.strerror or err}") from None
