"""libsndfile decoding from an OS pipe that a thread fills: compressed audio read to its last byte,
or as it arrives.

Why a pipe: libsndfile treats a pipe as a stream of unknown length. From a file it can seek in, it
asks the MP3 decoder for a length and never reads past it, and for an MP3 without a length tag that
length is an estimate (see :mod:`voxkit.audio.mp3`); from a pipe it reads MP3, Ogg (Vorbis, Opus)
and AIFF until the bytes end, which also lets standard input carry those formats live. The bytes
come from any reader (a file, a path's descriptor, stdin) through a copying thread, so the first
bytes a caller has already read to sniff the format are put back in front.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Protocol

import numpy as np

from voxkit.errors import AudioError

UNREAD_WAIT_S = 0.5
"""How long :meth:`PipedDecoder.unread` waits for a source to end after its decoder has."""

COPY_CHUNK = 1 << 16
"""Bytes copied into the pipe at a time (the size of a Linux pipe's buffer)."""


class PipedDecoder:
    """A ``soundfile.SoundFile`` reading what a thread copies from ``read`` (after ``head``) into
    an OS pipe. Use as a context manager; :meth:`read` gives float32 [t, C] frames.

    ``read(n)`` returns up to ``n`` bytes, b"" at the end; a live source should return what it has
    (``read1``) rather than wait for ``n``, so that audio is decoded as it arrives. Leaving the
    context closes the pipe's reading end, which stops the copier at its next write, and waits
    for it: the caller may close the source right after. Not for a ``live`` source (stdin), whose
    next bytes may never come: its copier is a daemon thread left to stop on its own.
    """

    def __init__(self, read: Callable[[int], bytes], head: bytes = b"", *, live: bool = False) -> None:
        self._read, self._head, self._live = read, head, live
        self._fh: object | None = None
        self._read_end = -1
        self._copier: threading.Thread | None = None
        self.source_error: Exception | None = None
        """An error reading the source (the audio then ends where the source failed)."""
        self._source_done = threading.Event()  # the copier has stopped, whatever the reason

    def _copy(self, write_end: int) -> None:
        if hasattr(signal, "pthread_sigmask"):
            # a write to a pipe whose reader has gone must fail with EPIPE here, not kill the
            # process: a host program may have restored SIGPIPE's default (``| head`` scripts)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
        try:
            chunk = self._head or self._read(COPY_CHUNK)
            while chunk:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(write_end, view) :]
                chunk = self._read(COPY_CHUNK)
        except BrokenPipeError:  # the decoder stopped reading (a head read, a closed stream)
            pass
        except Exception as err:  # the source failed (an I/O error, a closed file)
            self.source_error = err
        finally:
            os.close(write_end)
            self._source_done.set()

    def __enter__(self) -> PipedDecoder:
        import soundfile as sf

        self._read_end, write_end = os.pipe()
        self._copier = threading.Thread(target=self._copy, args=(write_end,), name="voxkit-audio-pipe", daemon=True)
        self._copier.start()
        try:
            fh = sf.SoundFile(self._read_end, closefd=False)
        except BaseException:
            self._close()
            if not self._live:  # the caller closes the source next: the copier must be done with it
                self._copier.join()
            raise
        # An MP3 with a length tag reports a length even from a pipe, and soundfile then seeks
        # after every read, which a pipe refuses; libsndfile itself stops at that length.
        fh._info.seekable = 0  # type: ignore[attr-defined]
        self._fh = fh
        return self

    @property
    def source_ended(self) -> bool:
        """Whether every byte of the source has been read (or reading it failed: :attr:`source_error`)."""
        return self._source_done.is_set()

    def wait_source(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the copier to stop (the source ended, failed, or the
        pipe was closed); whether it has. Why: a source split into parts (:mod:`voxkit.audio.ogg_pipe`)
        is read on for the next part only once this part's copier is done with it."""
        return self._source_done.wait(timeout)

    @property
    def samplerate(self) -> int:
        return int(self._fh.samplerate)  # type: ignore[union-attr]

    @property
    def channels(self) -> int:
        return int(self._fh.channels)  # type: ignore[union-attr]

    def read(self, frames: int, out: np.ndarray | None = None) -> np.ndarray:
        """Up to ``frames`` frames as float32 [t, C] (into ``out`` [frames, C] when given); fewer
        only at the end. Raises what libsndfile raises for damaged data."""
        fh = self._fh
        if out is not None:
            return fh.read(out=out[:frames])  # type: ignore[union-attr]
        return fh.read(frames, dtype="float32", always_2d=True)  # type: ignore[union-attr]

    def unread(self, wait: float = UNREAD_WAIT_S) -> bytes:
        """Once the decoder has ended: the bytes in the pipe that it did not read, after waiting up
        to ``wait`` seconds for the source to end. libsndfile ends at the end of the first logical
        stream of a chained Ogg stream and at the length an MP3's tag gives, so joined files or a
        radio stream's next track are left over, and so is a tag at the end of a file. Why the
        wait: a writer that closes its end a moment after its last byte (ssh, curl, a script)
        must not pass for more audio to come. (Bytes libsndfile read ahead into its own buffer
        are not seen.)"""
        self._source_done.wait(wait)
        try:
            import fcntl
            import termios

            waiting = bytearray(4)
            fcntl.ioctl(self._read_end, termios.FIONREAD, waiting)
            count = int.from_bytes(waiting, sys.byteorder)
            return os.read(self._read_end, count) if count else b""  # all there: no wait
        except (ImportError, OSError):  # no FIONREAD (not POSIX): nothing is known
            return b""

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # type: ignore[attr-defined]
            self._fh = None
        if self._read_end >= 0:
            os.close(self._read_end)
            self._read_end = -1

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._close()
        if self._copier is not None and not self._live:
            self._copier.join()


class Resampler(Protocol):
    """What decoded audio goes through on its way out (:class:`voxkit.audio.stream.StreamResampler`)."""

    orig: int

    def push(self, samples: np.ndarray) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


def pump(decoder: PipedDecoder, resampler: Resampler, block_seconds: float, what: str, before: float,
         warn: Callable[[str], None]) -> Generator[np.ndarray, None, tuple[int, bool]]:
    """Decode an open decoder to its end, channels averaged, through ``resampler``: yields its
    outputs (mono [t']) and returns (frames decoded, whether a decoder error stopped it).

    ``what`` names the format in messages and ``before`` is the seconds of audio the stream gave
    before this decoder (a chain's earlier links). A decoder error before any audio is an
    AudioError; after some, one warning, and what decoded before it stays.
    """
    rate = decoder.samplerate
    block, got = max(1, int(rate * block_seconds)), 0
    while True:
        try:
            frames = decoder.read(block)  # [t, C]
        except Exception as err:
            if not before and not got:
                reason = getattr(err, "error_string", None) or err
                raise AudioError(f"stdin looks like {what} audio but does not decode: {reason}") from None
            warn(f"stdin is truncated or damaged: its {what} audio stops decoding after {before + got / rate:.2f} s, "
                 "the rest is left out")
            return got, True
        if not len(frames):
            return got, False
        got += len(frames)
        out = resampler.push(frames.mean(axis=1) if frames.shape[1] > 1 else frames[:, 0])  # [t'] mono at the target rate
        if out.size:
            yield out
