"""Whether an Ogg file (Vorbis, Opus) ends where its stream ends: the check behind the warning for a cut one.

Why: an Ogg stream states no length up front, and libsndfile takes a file's length from its last
whole page, so an Ogg file cut short by a failed copy or a recorder that died decoded as a shorter
file that looked complete, with no warning (a cut WAV, FLAC or MP3 gets one). The container marks
the last page of each logical stream with the end-of-stream flag (RFC 3533); a file whose last
whole page lacks it was cut, or its end is damaged. Only the file's last bytes are read: the check
costs the same for a 3 s clip and a 10-minute recording.

A chained file (logical streams one after another: an internet-radio recording whose tracks are
streams of their own, or ``cat a.ogg b.ogg``) is decoded by libsndfile only up to the end of its
first stream, with no error, and when the last stream is long libsndfile cannot find the first
one's length at all. :func:`find_chain` tells such a file from its page headers and
:class:`Chain` decodes each stream (a *link*) on its own and joins them.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from voxkit.audio.promise import read_into

CAPTURE = b"OggS"
"""The capture pattern every Ogg page starts with."""

_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, header_type, granule, serial, sequence, CRC, segments
_CRC_AT = 22  # the CRC field's offset in the page header
BOS_FLAG, EOS_FLAG = 0x02, 0x04
"""The header_type bits of a logical stream's first page and of its last."""

MAX_PAGE = _HEADER.size + 255 + 255 * 255
"""The longest page: 255 segments of 255 bytes after the header and its segment table (65,307 bytes)."""

TAIL_BYTES = 2 * MAX_PAGE
"""Bytes read from a file's end: a whole page lies in them whatever partial page follows it."""

UNKNOWN_FRAMES = 2**62
"""libsndfile's frame count for a stream whose length it cannot find (2^63 - 1)."""

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


def page_end(data: bytes | bytearray, at: int) -> int | None:
    """Where the page whose capture pattern is at ``data[at]`` ends, by its header and segment
    table; None while they have not all arrived (or it is no version-0 page)."""
    if at + _HEADER.size > len(data) or data[at + 4] != 0:
        return None
    segments = data[at + _HEADER.size - 1]
    table = at + _HEADER.size
    if table + segments > len(data):
        return None
    return table + segments + sum(data[table : table + segments])


def whole_page(data: bytes | bytearray, at: int) -> tuple[int, int, int] | None:
    """(header_type, serial number, end) of the page whose capture pattern is at ``data[at]``;
    None when no page lies whole there with a right checksum."""
    end = page_end(data, at)
    if end is None or end > len(data):
        return None
    _, _, flags, _, serial, _, crc, _ = _HEADER.unpack_from(data, at)
    page = bytearray(data[at:end])
    page[_CRC_AT : _CRC_AT + 4] = bytes(4)  # the checksum is taken with its own field zeroed
    if ogg_crc(bytes(page)) != crc:
        return None
    return flags, serial, end


def _last_page(tail: bytes) -> tuple[int, int, int] | None:
    """:func:`whole_page` of the last whole, intact page in ``tail``; None when it holds none.

    Searched from the end: what follows the last whole page is a cut page, or bytes that only look
    like a page's start (the checksum tells them apart).
    """
    at = tail.rfind(CAPTURE)
    while at >= 0:
        page = whole_page(tail, at)
        if page is not None:
            return page
        at = tail.rfind(CAPTURE, 0, at + len(CAPTURE) - 1)  # the next capture pattern that starts before ``at``
    return None


def ends_whole(tail: bytes) -> bool:
    """Whether the last bytes of an Ogg file or stream (:data:`TAIL_BYTES` of them, or all when
    fewer) end with its stream's last page: its last whole, intact page has the end-of-stream flag.

    A chained file (logical streams one after another) ends with the last page of its last stream,
    a multiplexed one with the last page of the stream that ends last; bytes after that page (a tag
    some tool appended) are not taken for a cut.
    """
    page = _last_page(tail)
    return page is not None and bool(page[0] & EOS_FLAG)


def _tail(src: BinaryIO | int, start: int | None) -> bytes | None:
    """The last :data:`TAIL_BYTES` of an Ogg file (a path's descriptor, or an open file whose audio
    starts at ``start``); None when it cannot be read there (a stream that cannot seek). The
    position in an open file is put back where it was; a descriptor's is not kept."""
    try:
        if isinstance(src, int):
            os.lseek(src, -min(TAIL_BYTES, os.fstat(src).st_size), os.SEEK_END)
            return os.read(src, TAIL_BYTES)
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
    return bytes(tail) if isinstance(tail, (bytes, bytearray, memoryview)) else None


def file_ends_whole(src: BinaryIO | int, start: int | None) -> bool | None:
    """:func:`ends_whole` for an Ogg file (a path's descriptor, or an open file whose audio starts
    at ``start``), read from its last :data:`TAIL_BYTES`; None when it cannot be read there (a
    stream that cannot seek). The position in an open file is put back where it was.
    """
    tail = _tail(src, start)
    return None if tail is None else ends_whole(tail)


def _next_page(stream: BinaryIO, at: int, end: int) -> int | None:
    """Where the first whole, intact page at or after ``at`` starts (its checksum checked); None
    when none does before ``end``. Only for a walk that lost the page layout: it reads bodies."""
    while at < end:
        stream.seek(at)
        block = stream.read(min(TAIL_BYTES, end - at))
        last = len(block) if at + len(block) >= end else MAX_PAGE  # a page starting before ``last`` lies whole in the block
        found = block.find(CAPTURE, 0, last + len(CAPTURE) - 1)
        while found >= 0:
            if whole_page(block, found) is not None:
                return at + found
            found = block.find(CAPTURE, found + 1, last + len(CAPTURE) - 1)
        if not block:
            return None
        at += last
    return None


def _link_starts(stream: BinaryIO, at: int, end: int) -> list[int]:
    """Where each link of the Ogg pages from ``at`` to ``end`` starts: its first page, and every
    beginning-of-stream page that follows a page that is not one.

    Why that rule (RFC 3533): a link opens with the first pages of all its streams, which a
    multiplexed file (an Ogg Skeleton track, video and audio) has several of, so beginning-of-stream
    pages in a row belong to one link. Headers only: each page's 27 bytes and segment table are read
    and its body skipped by the sizes the table gives: about 1 ms for the 600 pages of a 10-minute
    file. Where that lands on no page (a page cut short, then the next link; bytes between
    pages), the next page is searched for from just after the last one, checksums checked.
    """
    starts, opening, page = [at], True, at
    while at + _HEADER.size <= end:
        stream.seek(at)
        header = stream.read(_HEADER.size + 255)
        if len(header) < _HEADER.size or header[:4] != CAPTURE or header[4] != 0:
            found = _next_page(stream, page + 1, end)
            if found is None:
                break
            at = found
            continue
        flags, segments = header[5], header[26]
        if len(header) < _HEADER.size + segments:
            break  # the file ends inside this header
        if flags & BOS_FLAG and not opening:
            starts.append(at)
        opening = bool(flags & BOS_FLAG)
        page, at = at, at + _HEADER.size + segments + sum(header[_HEADER.size : _HEADER.size + segments])
    return starts


class _Span:
    """Bytes ``begin`` to ``end`` of a seekable stream, as a file of its own: one link handed to
    libsndfile without copying it (soundfile's virtual I/O asks for ``seek``, ``tell`` and ``read``)."""

    def __init__(self, stream: BinaryIO, begin: int, end: int) -> None:
        self._stream, self._begin, self._size, self._at = stream, begin, end - begin, 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._at, os.SEEK_END: self._size}[whence]
        self._at = max(0, base + offset)
        return self._at

    def tell(self) -> int:
        return self._at

    def read(self, n: int = -1) -> bytes:
        n = self._size - self._at if n < 0 else min(n, self._size - self._at)
        if n <= 0:
            return b""
        self._stream.seek(self._begin + self._at)
        data = bytes(self._stream.read(n))
        self._at += len(data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer).cast("B")[: max(0, self._size - self._at)]
        if not len(view):
            return 0
        into = getattr(self._stream, "readinto", None)
        if into is None:  # a file object with ``read`` alone
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        self._stream.seek(self._begin + self._at)
        got = into(view) or 0
        self._at += got
        return got


def _formats(stream: BinaryIO, links: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(sample_rate, frames, channels) of each link as libsndfile opens it on its own, up to the
    first that it cannot open (a damaged link: the loader stops there, as at a damaged page);
    libsndfile's error when that is the first."""
    import soundfile as sf

    formats: list[tuple[int, int, int]] = []
    for begin, end in links:
        try:
            with sf.SoundFile(_Span(stream, begin, end)) as fh:
                if fh.frames >= UNKNOWN_FRAMES:
                    raise ValueError("libsndfile finds no length in it")
                formats.append((int(fh.samplerate), int(fh.frames), int(fh.channels)))
        except Exception:
            if not formats:
                raise
            break
    return formats


@dataclass
class Chain:
    """A chained Ogg file: the byte ranges of its links in ``stream``, each a whole Ogg stream
    (or group of multiplexed ones) that libsndfile decodes on its own."""

    stream: BinaryIO
    links: list[tuple[int, int]]

    def decode(self, rate: int, mono: bool, seconds: float | None) -> tuple[np.ndarray, int, int, bool]:
        """The links' audio joined, as float32 [T, C] at the rate returned, the frames the whole
        file holds at that rate, and whether a decoder error stopped the reading (the later links
        are then left out, as the rest of a damaged single stream is).

        Links that share a rate and channel count are joined as they are (the caller averages and
        resamples the whole, as it does a single stream). In a chain of several rates each run of
        links in a row at one rate is joined and resampled to ``rate`` (the caller's) once: no link
        is resampled twice, a run is one signal as it would be on a pipe, where the next link's
        rate is not known yet (:mod:`voxkit.audio.ogg_pipe`), and with ``mono`` each link is
        first averaged to one channel, as the caller treats a single stream. Links with different
        channel counts are refused without ``mono``: no layout keeps their channels apart.
        ``seconds`` (the head and the resampler's margin; None: all) decodes only the links, and
        the part of the last of them, that it reaches: the rest count with libsndfile's length of
        each. The links are opened one at a time, so that a recording of a hundred tracks holds
        one decoder, not a hundred.
        """
        from voxkit.errors import AudioError

        formats = _formats(self.stream, self.links)
        rates, channels = {f[0] for f in formats}, sorted({f[2] for f in formats})
        if len(channels) > 1 and not mono:
            raise AudioError(f"its chained Ogg streams have {' and '.join(map(str, channels))} channels, "
                             "which do not join channel by channel: load it with mono=True")
        mix = mono and (len(rates) > 1 or len(channels) > 1)  # each link averaged to one channel here
        sr = rates.pop() if len(rates) == 1 else int(rate)
        plan, left = [], seconds  # frames to decode from each link
        for orig, frames, _ in formats:
            plan.append(frames if left is None else min(frames, max(0, math.ceil(left * orig))))
            left = None if left is None else left - plan[-1] / orig
        runs = _runs([f[0] for f in formats])  # (first, last + 1) of each run of links at one rate
        width = 1 if mix else channels[0]
        out = np.empty((sum(_at_rate(sum(plan[i:j]), formats[i][0], sr) for i, j in runs), width), np.float32)  # [T, C]
        at = held = 0
        # a link libsndfile cannot open, where the reading reaches: it and the rest are left out
        stopped = len(formats) < len(self.links) and (left is None or left > 0)
        for first, end in runs:
            orig, asked = formats[first][0], sum(plan[first:end])
            whole = _at_rate(sum(f[1] for f in formats[first:end]), orig, sr)
            if not asked:  # past the head: counted, not decoded
                held += whole
                continue
            part = out[at:] if orig == sr else np.empty((asked, width), np.float32)  # [t, C] at the links' own rate
            got, short, cut = self._decode_run(range(first, end), plan, part, mix)
            if orig != sr:
                import torch

                from voxkit.audio.resample import resample

                wav = resample(torch.from_numpy(part[:got].T), orig, sr)  # [C, t']
                out[at : at + wav.shape[-1]] = wav.T.numpy()
                got = wav.shape[-1]
            at += got
            held += got if cut or short else whole
            if cut:  # a decoder error: what follows is left out
                return out[:at], sr, at, True
        return out[:at], sr, at if stopped else held, stopped

    def _decode_run(self, indices: range, plan: list[int], out: np.ndarray, mix: bool) -> tuple[int, bool, bool]:
        """Decode the planned frames of links ``indices`` (one rate) one after another into the
        start of ``out`` [T, C], channels averaged when ``mix``; (frames written, whether a link
        gave fewer than planned, whether a decoder error stopped it). A first link of the file
        that does not open raises libsndfile's error, as any file that does not decode."""
        import soundfile as sf

        at, short = 0, False
        for index in indices:
            if not plan[index]:  # past the head: not opened
                continue
            begin, end = self.links[index]
            try:
                with sf.SoundFile(_Span(self.stream, begin, end)) as fh:
                    if mix:
                        part = np.empty((plan[index], fh.channels), np.float32)  # [t, C] of this link
                        got, cut = read_into(fh, part)
                        out[at : at + got, 0] = part[:got].mean(axis=1)
                    else:
                        got, cut = read_into(fh, out[at : at + plan[index]])
            except Exception:
                if not index:
                    raise  # nothing decodes: libsndfile's reason, as for any file
                got, cut = 0, True
            at += got
            short = short or got < plan[index]
            if cut:
                return at, short, True
        return at, short, False


def _runs(rates: list[int]) -> list[tuple[int, int]]:
    """(first, last + 1) of each run of equal values in ``rates``."""
    runs: list[tuple[int, int]] = []
    for index, value in enumerate(rates):
        if runs and rates[runs[-1][0]] == value:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def _at_rate(frames: int, orig: int, rate: int) -> int:
    """Frames at ``rate`` for ``frames`` at ``orig``: the resampler's length (the ceiling)."""
    return frames if orig == rate else -(-frames * rate // orig)


def _stream(src: BinaryIO | int) -> BinaryIO:
    return io.FileIO(src, "rb", closefd=False) if isinstance(src, int) else src


def find_chain(src: BinaryIO | int, start: int | None, head: bytes, *, decoded: bool = False, walk: bool = False) -> Chain | None:
    """The links of a chained Ogg file (a path's descriptor, or an open file whose audio starts at
    ``start``, and whose first bytes are ``head``); None for a file of one link, the usual case, or
    one that cannot seek.

    Why a serial number first: the streams of a chain have different serial numbers (RFC 3533), so
    a file whose last whole page has its first page's serial number is one stream, told from its
    last :data:`TAIL_BYTES` as the end check reads them (some 20 microseconds); only another one (a
    chain, or a multiplexed file) has its page headers walked. ``decoded``: asked after libsndfile decoded the first
    stream whole, for a chain of streams with one serial number (files joined that were written
    with a fixed one: ``ffmpeg -fflags +bitexact``, one file joined to itself): libsndfile stopped
    reading it before the file's end, which a single stream does only when it is cut or followed
    by stray bytes (then the walk finds one link). ``walk``: the page headers are walked whatever
    the serial numbers and the reading say (a head read, which stops inside the first stream, and
    ``audio_info``, which decodes nothing: about a millisecond for ten minutes of audio).
    """
    if not head.startswith(CAPTURE) or len(head) < _HEADER.size or (start is None and not isinstance(src, int)):
        return None
    stream = _stream(src)
    try:
        here = stream.tell()  # where libsndfile stopped reading, when ``decoded``; put back after
        try:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            if not walk and decoded and here >= size:  # libsndfile read the whole file: one stream
                return None
            if not walk and not decoded:
                tail = _tail(src, start)
                last = None if tail is None else _last_page(tail)
                if last is None or last[1] == _HEADER.unpack_from(head)[4]:
                    return None
            starts = _link_starts(stream, start or 0, size)
        finally:
            stream.seek(here)
    except (AttributeError, OSError, TypeError, ValueError):  # a file object that cannot seek or tell
        return None
    if len(starts) < 2:
        return None
    return Chain(stream, list(zip(starts, [*starts[1:], size], strict=True)))


def chain_info(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """(sample_rate, frames, channels) of a chained Ogg file as the loader decodes it: the first
    link's rate and channels, and the frames of all links at that rate (each link's own length
    from libsndfile, brought to the first link's rate as the loader resamples it); None for a file
    of one link.

    Why: libsndfile's header gives the first link's length, or no length at all when the last link
    is long, and manifests take their durations from it.
    """
    with open(path, "rb") as fh:
        chain = find_chain(fh, 0, fh.read(_HEADER.size), walk=True)  # links with one serial number too
        try:
            formats = [] if chain is None else _formats(fh, chain.links)
        except Exception:  # the first link does not open on its own: libsndfile's answer for the file stands
            formats = []
    if not formats:
        return None
    rate, _, channels = formats[0]
    return rate, sum(_at_rate(frames, orig, rate) for orig, frames, _ in formats), channels
