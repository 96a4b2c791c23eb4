"""Whether an Ogg file (Vorbis, Opus) ends where its stream ends: the check behind the warning for a cut one.

Why: an Ogg stream states no length up front, and libsndfile takes a file's length from its last
whole page, so an Ogg file cut short by a failed copy or a recorder that died decoded as a shorter
file that looked complete, with no warning (a cut WAV, FLAC or MP3 gets one). The container marks
the last page of each logical stream with the end-of-stream flag (RFC 3533); a file whose last
whole page lacks it was cut, or its end is damaged. Only the file's last bytes are read: the check
costs the same for a 3 s clip and a 10-minute recording.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

CAPTURE = b"OggS"
"""The capture pattern every Ogg page starts with."""

_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, header_type, granule, serial, sequence, CRC, segments
_CRC_AT = 22  # the CRC field's offset in the page header
EOS_FLAG = 0x04
"""The header_type bit of a logical stream's last page."""

MAX_PAGE = _HEADER.size + 255 + 255 * 255
"""The longest page: 255 segments of 255 bytes after the header and its segment table (65,307 bytes)."""

TAIL_BYTES = 2 * MAX_PAGE
"""Bytes read from a file's end: a whole page lies in them whatever partial page follows it."""

_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))  # each byte's bits in reverse order


def ogg_crc(data: bytes) -> int:
    """The Ogg checksum of ``data``: CRC-32, polynomial 0x04C11DB7, most significant bit first, no
    initial value or final xor (RFC 3533).

    Why through zlib: a loop over a page's 65 KB in Python costs milliseconds; zlib's CRC-32 is the
    same polynomial taken least significant bit first, so it gives Ogg's over the bytes with their
    bits reversed, once its initial value and final xor are cancelled by the CRC of as many zeros.
    """
    flipped = data.translate(_REVERSED)
    reflected = zlib.crc32(flipped) ^ zlib.crc32(bytes(len(data)))
    return int(f"{reflected:032b}"[::-1], 2)


def _page_eos(data: bytes, at: int) -> bool | None:
    """Whether the page whose capture pattern is at ``data[at]`` is its stream's last; None when no
    page lies whole there with a right checksum."""
    if at + _HEADER.size > len(data):
        return None
    _, version, flags, _, _, _, crc, segments = _HEADER.unpack_from(data, at)
    table = at + _HEADER.size
    if version != 0 or table + segments > len(data):
        return None
    end = table + segments + sum(data[table : table + segments])
    if end > len(data):
        return None
    page = bytearray(data[at:end])
    page[_CRC_AT : _CRC_AT + 4] = bytes(4)  # the checksum is taken with its own field zeroed
    if ogg_crc(bytes(page)) != crc:
        return None
    return bool(flags & EOS_FLAG)


def ends_whole(tail: bytes) -> bool:
    """Whether the last bytes of an Ogg file or stream (:data:`TAIL_BYTES` of them, or all when
    fewer) end with its stream's last page: its last whole, intact page has the end-of-stream flag.

    Searched from the end: what follows the last whole page is a cut page, or bytes that only look
    like a page's start (the checksum tells them apart). A chained file (logical streams one after
    another) ends with the last page of its last stream, a multiplexed one with the last page of
    the stream that ends last; bytes after that page (a tag some tool appended) are not taken for a cut.
    """
    at = tail.rfind(CAPTURE)
    while at >= 0:
        eos = _page_eos(tail, at)
        if eos is not None:
            return eos
        at = tail.rfind(CAPTURE, 0, at + len(CAPTURE) - 1)  # the next capture pattern that starts before ``at``
    return False


def file_ends_whole(src: BinaryIO | int, start: int | None) -> bool | None:
    """:func:`ends_whole` for an Ogg file (a path's descriptor, or an open file whose audio starts
    at ``start``), read from its last :data:`TAIL_BYTES`; None when it cannot be read there (a
    stream that cannot seek). The position in an open file is put back where it was.
    """
    try:
        if isinstance(src, int):
            os.lseek(src, -min(TAIL_BYTES, os.fstat(src).st_size), os.SEEK_END)  # the descriptor's position is not kept
            return ends_whole(os.read(src, TAIL_BYTES))
        if start is None:
            return None
        here = src.tell()
        try:
            src.seek(0, os.SEEK_END)
            src.seek(max(start, src.tell() - TAIL_BYTES))
            tail = src.read(TAIL_BYTES)
        finally:
            src.seek(here)
    except (AttributeError, OSError, TypeError, ValueError):  # a file object that cannot seek or tell
        return None
    return ends_whole(bytes(tail)) if isinstance(tail, (bytes, bytearray, memoryview)) else None


class TailKeeper:
    """A byte reader passed through (``read(n)``), keeping the last :data:`TAIL_BYTES` it gave,
    ``head`` (bytes read before it, to sniff the format) included: an Ogg stream on a pipe, whose
    end :func:`ends_whole` checks once it has all come.

    Why chunks, not one buffer cut to size on every read: a live stream arrives in small reads for
    hours, and each would copy the whole tail.
    """

    def __init__(self, read: Callable[[int], bytes], head: bytes = b"") -> None:
        self._read = read
        self._chunks: deque[bytes] = deque([head] if head else [])
        self._held = len(head)

    def read(self, n: int) -> bytes:
        data = self._read(n)
        if data:
            self._chunks.append(bytes(data))
            self._held += len(data)
            while self._held - len(self._chunks[0]) >= TAIL_BYTES:  # the rest still holds a whole tail
                self._held -= len(self._chunks.popleft())
        return data

    def tail(self) -> bytes:
        """The last bytes read: all of them, or at least :data:`TAIL_BYTES` and less than one read more."""
        return b"".join(self._chunks)
