"""MP3 specifics of reading audio: telling an MP3 from its first bytes, whether its header gives an
exact length, decoding one that gives none, and keeping libmpg123's own stderr lines out of sight.

Why a module of its own: libsndfile's MP3 decoder (libmpg123) differs from its other decoders in
three ways a reader of user files meets: it prints to the process's stderr from C, its length is
exact only when the encoder wrote a Xing/Info or VBRI tag, and without that tag it stops decoding at
an estimate made from the first frame's bitrate, which for a variable-bitrate file (what an encoder
writes to a pipe, ``lame - - < in.wav > out.mp3``) can be a small part of the audio.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

MP3_FRAME = 1152
"""Samples in an MPEG-1 layer III frame: how far a compressed file may fall short of the length in
its header before it is called truncated (a WAV's header is exact: 10 ms)."""

PIPE_READ = 4 * MP3_FRAME
"""Frames decoded from the pipe at a time. Why so few: an MP3 cut mid-frame makes libmpg123 fail
the read that reaches the cut, and the frames that read decoded are lost with it; 4 frames cost
50 % less call overhead than one frame at a time and lose at most 0.1-0.3 s of a cut file."""

PIPE_BLOCK = 1 << 16
"""Frames first allocated for a decode of unknown length (doubled as needed)."""


def is_mp3(head: bytes) -> bool:
    """Whether a file starts like an MP3: an ID3v2 tag or an MPEG audio frame (sync, layer I-III)."""
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0)


def length_is_exact(stream: BinaryIO) -> bool:
    """Whether the MP3 at ``stream``'s position starts with a Xing/Info or VBRI tag, from which
    libmpg123 takes its length; the stream is left somewhere after its first frame.

    Why: with the tag (LAME and ffmpeg write one to a file) the length libsndfile reports is the
    encoder's count, so decoding fewer frames means the file was cut. Without it (an MP3 piped to a
    file) the length is libmpg123's estimate from the first frame's bitrate: no promise, and for a
    variable bitrate no bound on the audio either (see :func:`decode_to_end`).
    """
    try:
        skip_id3(stream)
        data = stream.read(4096)
    except (OSError, ValueError):
        return False
    at = data.find(b"\xff")
    while 0 <= at < len(data) - 40:
        if data[at + 1] & 0xE6 == 0xE2:  # frame sync + layer III; the tag follows the side information
            mpeg1, mono = (data[at + 1] >> 3) & 3 == 3, data[at + 3] >> 6 == 3
            side = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
            return data[at + 4 + side : at + 8 + side] in (b"Xing", b"Info") or data[at + 36 : at + 40] == b"VBRI"
        at = data.find(b"\xff", at + 1)
    return False


def skip_id3(stream: BinaryIO) -> None:
    """Move ``stream`` past an ID3v2 tag at its position (if there is one).

    Why: libsndfile skips an ID3v2 tag of a file it can seek in, but from a pipe it cannot skip
    one larger than its header buffer (a tag with cover art, tens of KB) and calls the MP3 "Format
    not recognised"; the tag holds no audio.
    """
    start = stream.tell()
    data = stream.read(10)
    if data[:3] == b"ID3" and len(data) == 10:  # 28-bit "synchsafe" size, + 10 with a footer
        size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
        stream.seek(start + 10 + size + (10 if data[5] & 0x10 else 0))
    else:
        stream.seek(start)


def decode_to_end(stream: BinaryIO, seconds: float | None) -> tuple[np.ndarray, int, bool, bool]:
    """Decode the MP3 at ``stream``'s position to its last frame (or its first ``seconds``) as
    float32 [T, C]; with its sample rate, whether a decoder error stopped the reading early, and
    whether audio was left after ``seconds``.

    Why: libsndfile asks libmpg123 for the length of a file it can seek in and never reads past
    it, and for an MP3 without a length tag that length is an estimate (one variable-bitrate file
    of 3 s was read as 0.36 s, silently). From a pipe (:class:`~voxkit.audio.piped.PipedDecoder`)
    it asks for no length and decodes until the bytes end.
    """
    from voxkit.audio.piped import PipedDecoder

    stopped = more = False
    held = 0
    skip_id3(stream)
    with PipedDecoder(stream.read) as fh:
        rate, channels = fh.samplerate, fh.channels
        limit = None if seconds is None else math.ceil(seconds * rate)
        out = np.empty((PIPE_BLOCK if limit is None else min(limit, PIPE_BLOCK), channels), np.float32)  # [T, C]
        while limit is None or held < limit:
            if held + PIPE_READ > len(out) and (limit is None or len(out) < limit):  # grown by doubling, to the limit
                grown = 2 * len(out) if limit is None else min(2 * len(out), limit)
                out = np.concatenate([out, np.empty((grown - len(out), channels), np.float32)])  # [T', C]
            try:
                got = len(fh.read(min(PIPE_READ, len(out) - held), out[held:]))
            except Exception:
                if not held:
                    raise
                stopped = True  # the frames before the damage are kept, as for the other formats
                break
            if not got:
                break
            held += got
        if limit is not None and held >= limit:
            more = len(fh.read(1)) > 0
    return out[:held], rate, stopped, more


def count_frames(stream: BinaryIO) -> tuple[int, int, int]:
    """(sample rate, frames, channels) of the MP3 at ``stream``'s position, decoded to its end
    into one reused buffer: the length of a file whose header gives only an estimate (see
    :func:`decode_to_end`), without holding its audio. A decoder error ends the count there."""
    from voxkit.audio.piped import PipedDecoder

    frames = 0
    skip_id3(stream)
    with PipedDecoder(stream.read) as fh:
        block = np.empty((PIPE_READ, fh.channels), np.float32)  # [T, C] overwritten by every read
        while True:
            try:  # PIPE_READ frames at a time, as decode_to_end reads: a read that meets a cut loses its frames
                got = len(fh.read(PIPE_READ, block))
            except Exception:
                break
            if not got:
                break
            frames += got
        return fh.samplerate, frames, fh.channels


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at the null device while the body runs on the main thread; restored
    after, also on error.

    Why: libmpg123 (libsndfile's MP3 decoder) prints to the process's stderr from C ("Warning: Xing
    stream size off by more than 1%, ..." for every cut MP3) beside voxkit's one-line notice, out of
    reach of ``warnings`` and ``sys.stderr``; the other decoders print nothing. Why the main thread
    only: fd 2 belongs to the whole process, and a server decodes in its handler threads while
    others write its log, which must not be lost; there the decoder's line is left as it is. The
    command-line tools decode on the main thread. What another thread writes to stderr while the
    main thread decodes an MP3 is lost.
    """
    saved = -1
    if threading.current_thread() is threading.main_thread():
        try:
            if sys.stderr is not None:
                sys.stderr.flush()  # what Python already wrote goes out first
            saved = os.dup(2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
        except (OSError, ValueError):  # no fd 2 to silence (closed, or sys.stderr a closed file)
            if saved >= 0:
                os.close(saved)
            saved = -1
    try:
        yield
    finally:
        if saved >= 0:
            os.dup2(saved, 2)
            os.close(saved)
