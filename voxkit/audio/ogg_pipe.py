"""An Ogg stream on a pipe, chained or not, decoded as it arrives: one decoder per link.

Why: libsndfile decodes the first logical stream of an Ogg stream and stops there. An internet
radio that sends Ogg (Vorbis, Opus) starts a new logical stream at every track or title change, so
``curl -s https://host/radio.ogg | voxkit transcribe -`` stopped transcribing at the first change,
and ``cat a.ogg b.ogg | voxkit transcribe -`` gave only ``a``. A file can be split at its links by
seeking (:class:`voxkit.audio.ogg.Chain`); a pipe cannot seek, so :class:`OggLinks` reads its pages
as they come, by their headers, and hands them to libsndfile one link at a time, each decoder
seeing the end of its input where its link ends.

Where a link ends: after the page that ends the last of its streams (the end-of-stream flag, RFC
3533), so that a live stream's track is decoded to its last sample without waiting for the next
track's first page; or, for a stream that never sets the flag, before a beginning-of-stream page
that follows pages that are not (as :mod:`voxkit.audio.ogg` splits a file). The same rules tell a
stream that was cut: its last link ended without the flag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from voxkit.audio.ogg import BOS_FLAG, CAPTURE, EOS_FLAG, page_end, whole_page
from voxkit.audio.piped import COPY_CHUNK, PipedDecoder, Resampler, pump
from voxkit.errors import AudioError

SOURCE_WAIT_S = 2.0
"""How long a link's copier may take to hand over its last bytes once its decoder has ended."""


class OggLinks:
    """The Ogg pages read from ``read`` (after ``head``, bytes read before to sniff the format),
    one link at a time: :meth:`read` gives the current link's bytes and b"" at its end,
    :meth:`next_link` moves on to the next one.

    ``read(n)`` returns up to ``n`` bytes, b"" at the source's end; like a live source's
    ``read1`` it need not fill ``n``. Whole pages are passed on (a decoder cannot use less), and
    bytes that are no page (stray bytes between pages) go to the link they arrive in, whose
    decoder skips them as it would in a file.
    """

    def __init__(self, read: Callable[[int], bytes], head: bytes = b"") -> None:
        self._read = read
        self._buf = bytearray(head)
        self._source_ended = False
        self._open: set[int] = set()  # the current link's streams whose last page has not come
        self._pages = 0  # pages the current link has given
        self._opening = True  # every page of the current link so far began a stream
        self._ended = False
        self.cut = False
        """Whether the source ended inside a link (no end-of-stream page closed it): a cut stream."""
        self.links = 1
        """Links begun so far."""
        self.source_error: Exception | None = None
        """An error reading the source, which ended the stream there."""

    @property
    def ended(self) -> bool:
        """Whether the current link has ended (its decoder was handed all of it)."""
        return self._ended

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current link (at least one whole page when one is that long);
        b"" at its end. Waits for the source while no whole page has arrived."""
        out = bytearray()
        while not self._ended:
            self._take(out, n)
            if out or self._ended:
                break
            if self._source_ended:  # a partial page, or a link the source cut: the decoder gets what came
                self.cut = self._pages > 0 or bool(self._buf.strip(b"\0"))
                out += self._buf
                self._buf.clear()
                self._ended = True
                break
            self._more()
        return bytes(out)

    def next_link(self) -> bool:
        """After the current link's end: begin the next one; False when no page follows (the
        source ended, perhaps after bytes that are no page: a tag some tool appended)."""
        if not self._ended:
            raise RuntimeError("the current link has not ended")
        while True:
            at = self._buf.find(CAPTURE)
            while at >= 0:
                del self._buf[:at]  # stray bytes before what may be a page go
                if len(self._buf) > 4 and self._buf[4] != 0:  # no version-0 page: only its start looked like one
                    at = self._buf.find(CAPTURE, 1)
                    continue
                end = page_end(self._buf, 0)
                if end is None or end > len(self._buf):
                    break  # its header or body is still to come
                if whole_page(self._buf, 0) is not None:
                    self._open.clear()
                    self._pages, self._opening, self._ended, self.cut = 0, True, False, False
                    self.links += 1
                    return True
                at = self._buf.find(CAPTURE, 1)  # bytes that only look like a page's start
            if at < 0 and len(self._buf) > len(CAPTURE):  # nothing to wait for in them
                del self._buf[: len(self._buf) - len(CAPTURE) + 1]
            if self._source_ended:
                return False
            self._more()

    def _more(self) -> None:
        try:
            data = self._read(COPY_CHUNK)
        except Exception as err:  # the source failed (a reset connection): it ends here, and says why
            self.source_error, data = err, b""
        if data:
            self._buf += data
        else:
            self._source_ended = True

    def _take(self, out: bytearray, n: int) -> None:
        """Move the whole pages (and stray bytes) at the front of the buffer to ``out``, up to
        ``n`` bytes or the link's end."""
        while self._buf and not self._ended:
            if not self._buf.startswith(CAPTURE):
                at = self._buf.find(CAPTURE)
                if at < 0:  # what may be a capture pattern's first bytes stays for the next read
                    at = len(self._buf) - len(CAPTURE) + 1 if not self._source_ended else len(self._buf)
                    if at <= 0:
                        return
                out += self._buf[:at]
                del self._buf[:at]
                continue
            end = page_end(self._buf, 0)
            if end is None and len(self._buf) >= 27 and self._buf[4] != 0:  # no page after all
                out += self._buf[:1]
                del self._buf[:1]
                continue
            if end is None or end > len(self._buf):
                return  # the page is still arriving
            page = whole_page(self._buf, 0)
            if page is None:  # a damaged page, or bytes that only look like one: passed as they are
                out += self._buf[:1]
                del self._buf[:1]
                continue
            flags, serial, _ = page
            if flags & BOS_FLAG and not self._opening:  # the next link begins (this one set no end flag)
                self._ended = True
                return
            if out and len(out) + end > n:
                return
            out += self._buf[:end]
            del self._buf[:end]
            self._pages += 1
            self._opening = bool(flags & BOS_FLAG)
            if flags & BOS_FLAG:
                self._open.add(serial)
            if flags & EOS_FLAG:
                self._open.discard(serial)
                if not self._open:
                    self._ended = True


def read_ogg_pipe(head: bytes, read: Callable[[int], bytes], block_seconds: float,
                  resampler_for: Callable[[int], Resampler], warn: Callable[[str], None]) -> Iterator[np.ndarray]:
    """An Ogg stream on a pipe (first bytes ``head``, the rest from ``read``) as 16 kHz mono
    float32 chunks: each link decoded by its own libsndfile decoder, channels averaged, through
    one resampler while the rate stays (``resampler_for(rate)`` makes one with ``push`` and
    ``flush``), so that a chain of links at one rate is one continuous signal. A link that does
    not decode, a decoder error and a stream that ends cut are told through ``warn``, once, and
    what decoded before stays; a first link that does not decode at all is an AudioError.
    """
    links = OggLinks(read, head)
    resampler: Resampler | None = None
    decoded = 0.0  # seconds decoded so far, over all links
    while True:
        decoder = PipedDecoder(links.read, live=True)
        try:
            decoder.__enter__()
        except Exception as err:  # libsndfile raises several types
            reason = getattr(err, "error_string", None) or err
            if links.links == 1:
                raise AudioError(f"stdin looks like Ogg (Vorbis/Opus) audio but does not decode: {reason}") from None
            warn(f"stdin's Ogg stream part {links.links} (after {decoded:.2f} s) does not decode ({reason}): it and what "
                 "follows are left out")
            break
        stopped = stopped_early = False
        try:
            rate = decoder.samplerate
            if resampler is None or resampler.orig != rate:
                if resampler is not None:
                    out = resampler.flush()
                    if out.size:
                        yield out
                resampler = resampler_for(rate)
            frames, stopped = yield from pump(decoder, resampler, block_seconds, "Ogg (Vorbis/Opus)", decoded, warn)
            if not stopped:  # pages left in the pipe: libsndfile ended inside its link (below)
                stopped_early = CAPTURE in decoder.unread()
            decoded += frames / rate
        finally:
            decoder.__exit__(None, None, None)  # closes the pipe: a copier still writing stops
        if stopped:
            break
        if decoder.source_error is not None:  # the copier failed
            warn(f"stdin ends after {decoded:.2f} s of audio: {decoder.source_error}")
            break
        # libsndfile stopped inside its link (a multiplexed link's first stream ended): the rest is not ours to split
        if stopped_early or not decoder.wait_source(SOURCE_WAIT_S) or not links.ended:
            warn(f"stdin holds more after {decoded:.2f} s that its Ogg decoder left unread: it is left out; decode it "
                 "on the way: ffmpeg -i - -f wav - | voxkit transcribe -")
            break
        more = links.next_link()
        if links.source_error is not None:
            warn(f"stdin ends after {decoded:.2f} s of audio: {links.source_error}")
            break
        if not more:
            if links.cut:
                warn(f"stdin is truncated or damaged: it decodes to {decoded:.2f} s, its end is missing (no Ogg end-of-stream page)")
            break
    if resampler is not None:
        out = resampler.flush()
        if out.size:
            yield out
