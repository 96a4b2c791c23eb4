"""What an audio file's header promises, read where the file stands, and the warning when the file
holds less: the loaders' checks for a cut file (voxkit.audio.io).

Why apart from the loader: the loader decides what to decode; these read a file's first bytes, a
WAV's data size or an MP3's length tag, and put the position back, for a path's descriptor and a
caller's open file alike (``start``: where its audio starts; None for a stream that cannot tell).
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO

import numpy as np

from voxkit.audio.mp3 import length_is_exact
from voxkit.errors import AudioError, warn

HEAD_BYTES = 4096
"""Read from a file's start before it is decoded: a WAV header with its usual chunks, an MP3's sync."""


def rewound(src: BinaryIO | int, start: int | None) -> BinaryIO | None:
    """``src`` (an open file, or a path's descriptor) as a stream at its start; None if unknown."""
    if isinstance(src, int):
        os.lseek(src, 0, os.SEEK_SET)
        return io.FileIO(src, "rb", closefd=False)
    if start is None:
        return None
    src.seek(start)
    return src


def read_head(src: BinaryIO | int, start: int | None) -> bytes:
    """The first :data:`HEAD_BYTES` of ``src``, the position left at the start; empty when unknown."""
    try:
        stream = rewound(src, start)
        head = stream.read(HEAD_BYTES) if stream is not None else b""
        rewound(src, start)
    except (OSError, ValueError):
        return b""  # libsndfile reports what is wrong with such a file
    return head if isinstance(head, bytes) else b""


def estimated_frames(src: BinaryIO | int, start: int | None) -> int:
    """The frames libsndfile gives for ``src`` from its header (an estimate for an MP3 without a length tag)."""
    import soundfile as sf

    with sf.SoundFile(rewound(src, start), closefd=False) as fh:  # type: ignore[arg-type]
        return int(fh.frames)


def mp3_tagged(src: BinaryIO | int, start: int | None) -> bool | None:
    """:func:`~voxkit.audio.mp3.length_is_exact` for ``src`` from its start, the position left at
    the start; None when it cannot be read again (a stream that cannot tell where it is)."""
    try:
        stream = rewound(src, start)
        if stream is None:
            return None
        tagged = length_is_exact(stream)
        rewound(src, start)
    except (OSError, ValueError):
        return None
    return tagged


def wav_promise(head: bytes, src: BinaryIO | int, start: int | None) -> int | None:
    """The frames a PCM or float WAV's header promises, from the file's first bytes (``head``);
    None when its writer did not know (0 or 0xFFFFFFFF: pipes and RF64) or for other encodings.

    Why not :func:`~voxkit.audio.wav_header.read_wav_header`: it validates what libsndfile has just
    checked, a noticeable part of loading a short WAV; it reads only a header longer than ``head``.
    """
    at, frame = 12, 0
    while at + 8 <= len(head):
        chunk, size = head[at : at + 4], int.from_bytes(head[at + 4 : at + 8], "little")
        if chunk == b"data":
            return None if size in (0, 0xFFFFFFFF) or not frame else size // frame
        if chunk == b"fmt " and size >= 16 and at + 34 <= len(head):
            tag, channels, _, _, _, bits = struct.unpack_from("<HHIIHH", head, at + 8)
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
                tag = struct.unpack_from("<H", head, at + 32)[0]
            frame = channels * bits // 8 if tag in (1, 3) else 0  # ADPCM's block of many frames is no frame
        at += 8 + size + size % 2
    from voxkit.audio.wav_header import read_wav_header

    try:  # the header runs past ``head``
        stream = rewound(src, start)
        fmt = read_wav_header(stream) if stream is not None else None
    except (AudioError, OSError, ValueError, struct.error):
        return None
    return None if fmt is None or fmt.data_bytes is None or not fmt.frame_bytes else fmt.data_bytes // fmt.frame_bytes


def warn_truncated(name: str, promised: int | None, held: int, rate: int, stopped: bool, unended: bool = False) -> None:
    """Warn that a file gives less audio than its header promises (None: gives no length); what
    decodes is used. ``stopped``: the decoder failed there, which a cut file and a file damaged in
    the middle (whose later audio is then left out) look alike to. ``unended``: an Ogg file whose
    stream has no last page (:mod:`voxkit.audio.ogg`), which decodes whole pages quietly.

    Why: a WAV cut short by a failed copy or a recorder that died (its header written for 3 s, a few
    bytes of samples behind it) came back as near silence, and ``voxkit transcribe`` printed nothing
    and succeeded; a cut FLAC was refused whole.
    """

    if unended:
        message = f"{name} is truncated or damaged: it decodes to {held / rate:.2f} s, its end is missing (no Ogg end-of-stream page)"
    elif stopped:
        promise = "" if promised is None else f" of the {promised / rate:.2f} s its header promises"
        message = f"{name} is truncated or damaged: it decodes to {held / rate:.2f} s{promise}, the rest is left out"
    else:
        message = f"{name} is truncated: its header promises {promised / rate:.2f} s, it holds {held / rate:.2f} s"
    warn(message)


def read_into(fh: object, out: np.ndarray) -> tuple[int, bool]:
    """Frames an open ``soundfile.SoundFile`` decodes into ``out`` [T, C], and whether a decoder
    error stopped it short of them; raised when it stopped before the first frame.

    Why: on a decoder error soundfile raises and drops what was decoded, so a FLAC cut short by a
    failed copy ("flac decoder lost sync") was refused whole although all but its tail decodes.
    The frames land in ``out``, and libsndfile's position (``tell`` still answers after the
    error) says how many.
    """
    try:
        return len(fh.read(out=out)), False  # type: ignore[attr-defined]
    except Exception as err:
        try:
            held = int(fh.tell())  # type: ignore[attr-defined]
        except Exception:
            held = 0
        if not 0 < held <= len(out):
            raise err from None
        return held, True
