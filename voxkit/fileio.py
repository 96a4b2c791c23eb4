"""Crash-safe writes: a file or a whole folder appears complete under its final name, or not at all.

Both helpers write under a hidden temporary name in the destination's own folder (a rename is
atomic only within one file system), fsync the data, rename, then fsync the parent folder so that
the rename itself survives a power cut. A failure at any point removes the temporary and leaves
whatever was there before.

Temporaries are created with the ordinary default modes (0o666 for files, 0o777 for folders) and
the process umask applied by the kernel, so results are as readable as any file the user writes
(typically 0644 / 0755). ``tempfile.mkstemp``/``mkdtemp`` would make them 0600 / 0700: a model
folder that nobody else on the machine can read.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o666  # before the umask
DIR_MODE = 0o777


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file's or a folder's data to disk (folders: best effort, some systems cannot open them)."""
    path = Path(path)
    is_dir = path.is_dir()
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if is_dir else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if is_dir:
            return  # e.g. Windows: folders cannot be opened; the rename is still atomic
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sibling(final: Path, tag: str) -> Path:
    """A hidden, practically unique name next to ``final``."""
    return final.parent / f".{final.name}.{tag}.{os.getpid()}.{secrets.token_hex(4)}"


def _temporary_name(final: Path, make: Callable[[Path], None]) -> Path:
    """Create (with ``make``) a fresh temporary sibling of ``final``; retries on the rare name clash."""
    for _ in range(100):
        candidate = _sibling(final, "tmp")
        try:
            make(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"cannot create a temporary name next to {final}")


def _new_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Have ``write(tmp)`` fill a temporary file, then move it over ``path`` atomically.

    ``write`` receives the temporary path (an empty file it may reopen or replace; the result gets
    the empty file's mode back); the folder of ``path`` must exist. Returns ``path``.
    """
    final = Path(path)
    tmp = _temporary_name(final, _new_file)
    try:
        mode = stat.S_IMODE(tmp.stat().st_mode)  # 0o666 less the umask, as the kernel applied it
        write(tmp)
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # writers that replace the file (safetensors makes it 0600)
            os.chmod(tmp, mode)
        fsync_path(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(final.parent)
    return final


@contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """``with atomic_folder(final) as tmp:`` fill ``tmp``; on success it becomes ``final``.

    Every file in ``tmp`` (top level) gets the user's default mode and is fsynced, and so is the
    folder, before the rename. An existing ``final`` is replaced: it is renamed aside first and
    deleted after the new one is in place, so a crash leaves either folder complete (plus, at
    worst, a hidden ``.old`` copy). On an exception inside the block ``tmp`` is deleted and
    ``final`` is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(final, lambda p: p.mkdir(DIR_MODE))
    try:
        file_mode = stat.S_IMODE(tmp.stat().st_mode) & FILE_MODE  # 0o666 less the umask
        yield tmp
        for item in tmp.iterdir():
            if item.is_file():
                if stat.S_IMODE(item.stat().st_mode) != file_mode:  # writers that make 0600 files (safetensors)
                    os.chmod(item, file_mode)
                fsync_path(item)
        fsync_path(tmp)
        if final.exists():
            old = _sibling(final, "old")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(final.parent)
