"""Where a command writes: one policy for every output path a user names.

Every command checks its outputs here, before any work, so that the same mistake gets the same
one-line answer in every command instead of a traceback after minutes of work:

- a missing folder is made, parents included (``mkdir -p``), for an output folder and for the
  folder of an output file alike;
- a folder is refused where a file is expected, a file where a folder is expected;
- a place that cannot be made or written is refused with the system's reason;
- an output that is one of the command's inputs is refused, ``--force`` or not ("X is the input
  file: write to another file"): links are followed, and a file of an input folder (the
  recordings ``data manifest`` reads, a model folder's files) counts as an input. Writing over the
  input while it is read, or before it is read again, loses it;
- a text output (a manifest, a report, hypotheses, a plan, an instruction file) never replaces an
  audio file, told by its ending or its first bytes ("X is an audio file: ..."): a recording
  cannot be made again, and a wrong name should not cost it; nor does it take a new file named
  like a recording (``--json report.wav``), which the next run would refuse as one;
- any other existing file is replaced, except by the commands that take ``--force`` (audio and
  codes, where a wrong name would silently destroy a recording). A text output replaces an
  older text output (re-running an evaluation rewrites its report), which is why it takes no
  ``--force``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from voxkit.errors import VoxkitError
from voxkit.fileio import atomic_write

AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd",
                  ".caf", ".w64", ".rf64", ".m4a", ".aac", ".wma", ".webm", ".mka")
"""Endings of recordings: what voxkit reads (:data:`voxkit.audio.io.READABLE`) and the common
formats it does not; a text output never replaces a file that ends so."""


class InputFolder(NamedTuple):
    """A folder a command reads: the files in it, at any depth, whose names end in one of
    ``endings`` (lower case), or every file where ``endings`` is None, are its inputs."""

    path: str | os.PathLike[str]
    endings: tuple[str, ...] | None = None


Input = str | os.PathLike[str] | InputFolder
"""An input of a command: a file (a missing one is no clash) or an :class:`InputFolder`."""


def model_inputs(*folders: str | os.PathLike[str] | None) -> list[InputFolder]:
    """Every file of each named model folder (weights, params, preset voices) as an input; None
    (the bundled model) and names that are no folder (refused later, by the loader) are left out."""
    return [InputFolder(f) for f in folders if f is not None and os.path.isdir(f)]


def _within(target: Path, folder: Path) -> bool:
    """Whether ``target`` lies in ``folder``, as named or with links followed."""
    places = {Path(os.path.abspath(target)), target.resolve()}
    folders = {Path(os.path.abspath(folder)), folder.resolve()}
    return any(p.is_relative_to(f) for p in places for f in folders)


def input_clash(path: str | os.PathLike[str], inputs: Iterable[Input]) -> str | None:
    """Which input the existing file ``path`` is ("the input file", "an input file (in DIR)"),
    or None where it is none of them. A folder read whole (a model: ``endings`` None) takes no
    new file either ("in the input folder DIR"): allowed on a first run, an output written there
    would be one of its files, and refused, on the next."""
    target = Path(path)
    if not target.is_file():
        whole = [i for i in inputs if isinstance(i, InputFolder) and i.endings is None and Path(i.path).is_dir()]
        return next((f"in the input folder {i.path}" for i in whole if _within(target, Path(i.path))), None)
    for item in inputs:
        if isinstance(item, InputFolder):
            folder = Path(item.path)
            names = (target.name.lower(), target.resolve().name.lower())
            if folder.is_dir() and (item.endings is None or any(n.endswith(item.endings) for n in names)) \
                    and _within(target, folder):
                return f"an input file (in {item.path})"
        elif os.path.exists(item) and os.path.samefile(item, target):
            return "the input file"
    return None


def is_audio(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an audio file: by its ending (:data:`AUDIO_SUFFIXES`) or, for an
    existing regular file under another name, by its first bytes (WAV, AIFF, FLAC, Ogg, MP3,
    CAF, AU, Wave64, MP4/M4A, WebM/Matroska). Only regular files are read: a pipe would block."""
    target = Path(path)
    if target.suffix.lower() in AUDIO_SUFFIXES:
        return True
    if not target.is_file():
        return False
    try:
        with open(target, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    if head[:4] in (b"RIFF", b"RF64", b"FORM") and head[8:12] in (b"WAVE", b"AIFF", b"AIFC"):
        return True
    if head.startswith((b"fLaC", b"OggS\x00", b"caff\x00", b".snd\x00", b"riff\x2e\x91\xcf\x11", b"\x1a\x45\xdf\xa3")):
        return True
    if head[:3] == b"ID3" and len(head) > 3 and head[3] < 10:  # an MP3's tag: ID3v2.2 to v2.4
        return True
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0x06:
        return True  # an MP3 or AAC frame sync (layer I left out: FF FE is also UTF-16 text's byte-order mark)
    return head[4:8] == b"ftyp"  # MP4 / M4A


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


def output_folder(
    path: str | os.PathLike[str], flag: str = "-o", *, make: bool = True, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """An output folder that exists (``make``) or can be made by the writer, checked now.

    ``flag`` names the option in the messages. With ``make=False`` only the parent is made: for
    writers that create the folder themselves and must not find an empty one left by a failure.
    ``inputs`` are folders the command reads (a model): writing into one would mix the outputs
    with the files being read, so the output may not be one of them.
    """
    folder = Path(path)
    name = f"{flag} {path}"
    if folder.exists() and not folder.is_dir():
        raise VoxkitError(f"{name} is a file, not a folder")
    if folder.is_dir() and any(os.path.isdir(i) and os.path.samefile(i, folder) for i in inputs):
        raise VoxkitError(f"{name} is an input folder: write to another folder")
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
    inputs: Iterable[Input] = (),
    holds: str | None = None,
) -> Path:
    """An output file that can be written, checked now; its folder is made if missing.

    ``flag`` names the option in the messages ("" for a positional argument); ``suffixes`` (lower
    case, with the dot) are the endings the writer understands; ``force`` is the command's
    ``--force`` where it has one (None: an existing file is simply replaced). ``inputs`` are what
    the command reads: the output may not be one of them, ``--force`` or not. ``holds`` says
    what a text output holds ("the manifest"): such an output never replaces an audio file.
    """
    name = f"{flag} {path}" if flag else str(path)
    target = Path(path)
    if target.is_dir():
        raise VoxkitError(f"{name} is a folder; give a file name")
    if suffixes and target.suffix.lower() not in suffixes:
        raise VoxkitError(f"{name}: the output must end in {' or '.join(suffixes)}")
    which = input_clash(target, inputs)
    if which is not None:  # before "add --force": --force would not make it right
        raise VoxkitError(f"{name} is {which}: write to another file")
    if holds is not None and not target.exists() and target.suffix.lower() in AUDIO_SUFFIXES:
        # written, it would be text under a recording's name, refused as "an audio file" on the next run
        raise VoxkitError(f"{name}: {holds} is text, and the name is a recording's ({target.suffix}): give it another ending")
    parent = target.absolute().parent
    _make(parent, name, f"its folder {parent}")
    if target.exists():
        if holds is not None and is_audio(target):
            raise VoxkitError(f"{name} is an audio file: write {holds} to another file")
        if force is False:
            raise VoxkitError(f"{name} exists; add --force to overwrite it")
        if not os.access(target, os.W_OK):
            raise VoxkitError(f"{name}: the file exists and is not writable")
    return target


def distinct_outputs(outputs: Iterable[tuple[str, str | os.PathLike[str] | None]]) -> None:
    """Refuse two options naming one file (links followed): the file would hold only the last
    written, and the first output would be lost without a word. ``outputs``: (flag, path or None)."""
    seen: dict[str, str] = {}
    for flag, path in outputs:
        if not path:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise VoxkitError(f"{flag} {path} is also {seen[key]}: give each output its own file")
        seen[key] = flag


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """One text output, complete or absent (:func:`voxkit.fileio.atomic_write`), with the user's usual mode."""
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as err:
        raise VoxkitError(f"cannot write {path}: {err.strerror or err}") from None
