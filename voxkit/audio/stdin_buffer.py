"""Standard input read into memory from the moment a command starts, so that a live source is never
stalled while the model loads.

Why: ``arecord ... | voxkit transcribe -`` starts recording at once, but the recogniser takes a few
seconds to import and load. Unread, the pipe fills after 64 KB (2 s of 16 kHz 16-bit audio); the
recorder then blocks on its write, its capture buffer overruns, and the first seconds of speech are
lost ("overrun!!!"). A thread that reads the descriptor from the start keeps the pipe drained; the
decoder later reads the bytes from memory at its own pace.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import threading

from voxkit.errors import AudioError

READ_CHUNK = 1 << 16
"""Bytes asked of the descriptor per read (what a Linux pipe holds)."""

BUFFER_LIMIT = 64 << 20
"""Bytes held at most before the reading thread waits for the decoder (~35 min of 16 kHz 16-bit
mono): a source far faster than the decoder (a file redirected to stdin) must not fill memory."""


class StdinBuffer:
    """A byte stream over a descriptor that a daemon thread reads ahead into memory.

    ``read(n)`` returns ``n`` bytes, fewer only at the end (what the WAV and raw readers expect);
    ``read1(n)`` returns what has arrived, at least one byte unless at the end (what a live decoder
    wants). The thread calls ``os.read`` holding no lock, so a process interrupted while it waits
    for input shuts down normally (see :func:`voxkit.audio.stream.read_piped_stream`).
    """

    def __init__(self, fd: int, limit: int = BUFFER_LIMIT) -> None:
        self._fd, self._limit = fd, limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._ended = False
        self.error: OSError | None = None
        """Why reading the descriptor failed (the stream then ends there)."""
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, name="voxkit-stdin", daemon=True).start()

    def _pump(self) -> None:
        while True:
            with self._cond:
                while self._size >= self._limit:
                    self._cond.wait()
            try:
                data = os.read(self._fd, READ_CHUNK)
            except OSError as err:
                data, self.error = b"", err
            with self._cond:
                if data:
                    self._chunks.append(data)
                    self._size += len(data)
                else:
                    self._ended = True
                self._cond.notify_all()
            if not data:
                return

    def _take(self, n: int) -> bytes:
        """Up to ``n`` bytes of what is held (the condition's lock held by the caller)."""
        parts, want = [], n
        while self._chunks and want > 0:
            chunk = self._chunks.popleft()
            if len(chunk) > want:
                self._chunks.appendleft(chunk[want:])
                chunk = chunk[:want]
            parts.append(chunk)
            want -= len(chunk)
        out = b"".join(parts)
        self._size -= len(out)
        self._cond.notify_all()  # room again for a reader that reached the limit
        return out

    def read(self, n: int = -1, /) -> bytes:
        parts, want = [], math.inf if n < 0 else n
        with self._cond:
            while want > 0:  # taken as it comes: ``n`` may be more than the buffer may hold
                self._cond.wait_for(lambda: self._ended or self._size > 0)
                if not self._size:
                    if not parts:
                        self._raise_error()
                    break
                parts.append(self._take(int(min(want, self._size))))
                want -= len(parts[-1])
        return b"".join(parts)

    def read1(self, n: int = -1, /) -> bytes:
        with self._cond:
            self._cond.wait_for(lambda: self._ended or self._size > 0)
            if not self._size:
                self._raise_error()
            return self._take(self._size if n < 0 else n)

    def _raise_error(self) -> None:
        """At the end of what was read: a failed read of the descriptor is an :class:`AudioError`
        (a read error looked like the end of the input, and a transcript ended without a word)."""
        if self.error is not None:
            raise AudioError(f"reading stdin failed: {self.error.strerror or self.error}")


def buffer_stdin() -> StdinBuffer | None:
    """Start reading standard input ahead (:class:`StdinBuffer`); None when it has no descriptor
    (replaced by an object in memory, as tests do), which is then read as it is."""
    try:
        fd = sys.stdin.buffer.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return StdinBuffer(fd)
