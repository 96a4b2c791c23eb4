"""A chained Ogg stream on standard input is decoded whole, link by link, as it arrives.

An internet radio sending Ogg starts a new logical stream at each track, and libsndfile decodes
only the first: ``curl radio.ogg | voxkit transcribe -`` stopped at the first track change with a
warning (voxkit/audio/ogg_pipe.py splits the pages into links and decodes each on its own).
"""

from __future__ import annotations

import io
import struct
import threading
import warnings

import numpy as np
import pytest
import soundfile as sf

from voxkit.audio.io import load_audio
from voxkit.audio.ogg import BOS_FLAG, EOS_FLAG, ogg_crc
from voxkit.audio.ogg_pipe import OggLinks
from voxkit.audio.stream import read_stdin
from voxkit.errors import AudioError, VoxkitWarning


def _encoded(subtype: str, rate: int, seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t) + 0.03 * np.random.default_rng(int(freq)).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, tone.astype(np.float32), rate, format="OGG", subtype=subtype)
    return buf.getvalue()


def _page(body: bytes, flags: int, serial: int = 99, sequence: int = 0) -> bytes:
    lacing = [255] * (len(body) // 255) + [len(body) % 255]
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, 0, serial, sequence, 0, len(lacing)) + bytes(lacing)
    page = header + body
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


class _Trickle(io.BytesIO):
    """A live source: a few hundred bytes per read, as a slow network delivers them."""

    def read1(self, n: int = -1, /) -> bytes:
        return super().read1(min(n if n >= 0 else 997, 997))


def _stdin(source: io.BytesIO) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = np.concatenate(list(read_stdin("auto", 16000, stream=source)))
    return out, [str(w.message) for w in caught if issubclass(w.category, VoxkitWarning)]


@pytest.fixture(scope="module")
def links() -> list[bytes]:
    first, third = _encoded("VORBIS", 16000, 2.0), _encoded("VORBIS", 22050, 1.0, 330.0)
    second = _encoded("OPUS", 48000, 3.0, 220.0) if "OPUS" in sf.available_subtypes("OGG") else _encoded("VORBIS", 44100, 3.0, 220.0)
    return [first, second, third]


def test_a_chain_on_stdin_decodes_whole_as_the_same_file_does(links: list[bytes]) -> None:
    """Links at three rates (and two codecs): every link's audio, equal to what the file of the
    same bytes gives, whether the bytes come at once or a few hundred at a time; no warning."""
    data = b"".join(links)
    whole = load_audio(io.BytesIO(data), 16000).numpy().ravel()  # [T]
    assert whole.size == 6 * 16000
    for source in (io.BytesIO(data), _Trickle(data)):
        out, said = _stdin(source)
        assert said == []
        assert out.shape == whole.shape and np.abs(out - whole).max() < 1e-5


def test_links_at_one_rate_are_one_signal(links: list[bytes]) -> None:
    """cat a.ogg a.ogg: one resampler through both (no flush between them), and the serial number
    the two links share does not join them."""
    one, _ = _stdin(io.BytesIO(links[0]))
    two, said = _stdin(io.BytesIO(links[0] + links[0]))
    assert said == [] and np.array_equal(two, np.concatenate([one, one]))


def test_a_link_is_out_before_the_next_one_arrives(links: list[bytes]) -> None:
    """A live radio stream: the track that ended is transcribed to its end while the next one has
    not begun to arrive (the end-of-stream page ends the link, not the next link's first page)."""
    gate = threading.Event()

    class Live(io.BytesIO):
        def read1(self, n: int = -1, /) -> bytes:
            if self.tell() == len(links[0]):
                assert gate.wait(30), "the first link's audio never came out"
            return super().read1(min(n if n >= 0 else 4096, 4096))

    got = 0
    for chunk in read_stdin("auto", 16000, stream=Live(links[0] + links[1])):
        got += len(chunk)
        if got >= 2 * 16000:
            gate.set()
    assert gate.is_set() and got == 5 * 16000


def test_a_cut_last_link_warns_once_and_a_tag_after_the_last_is_nothing(links: list[bytes]) -> None:
    data = links[0] + links[1]
    out, said = _stdin(io.BytesIO(data[: len(links[0]) + len(links[1]) // 2]))
    [message] = said
    assert message.startswith("stdin is truncated or damaged: it decodes to ") and message.endswith(
        " s, its end is missing (no Ogg end-of-stream page)")
    assert 2 * 16000 < out.size < 5 * 16000
    out, said = _stdin(io.BytesIO(data + b"TAG" + b"title".ljust(125, b" ")))
    assert said == [] and out.size == 5 * 16000


def test_a_link_that_does_not_decode_ends_the_audio_with_one_line(links: list[bytes]) -> None:
    """What decoded before it stays (as in a file: voxkit/audio/ogg.py stops at a link it cannot open)."""
    odd = _page(b"\x7fnot a codec" + bytes(40), BOS_FLAG) + _page(bytes(100), EOS_FLAG, sequence=1)
    out, said = _stdin(io.BytesIO(links[0] + odd + links[0]))
    assert out.size == 2 * 16000
    [message] = said
    assert message.startswith("stdin's Ogg stream part 2 (after 2.00 s) does not decode (") and message.endswith(
        "): it and what follows are left out")
    with pytest.raises(AudioError, match=r"^stdin looks like Ogg \(Vorbis/Opus\) audio but does not decode: "):
        _stdin(io.BytesIO(odd + links[0]))


def _split(data: bytes, read: int = 4096) -> list[bytes]:
    """Each link's bytes as :class:`OggLinks` hands them over."""
    source = io.BytesIO(data)
    links = OggLinks(lambda n: source.read(min(n, read)), b"")
    parts = []
    while True:
        part = bytearray()
        while chunk := links.read(1 << 16):
            part += chunk
        parts.append(bytes(part))
        if not links.next_link():
            return parts


def test_pages_are_split_at_the_end_flag_or_a_new_stream_and_keep_stray_bytes() -> None:
    a1, a2 = _page(b"a" * 50, BOS_FLAG, 1), _page(b"b" * 300, EOS_FLAG, 1, 1)
    b1, b2 = _page(b"c" * 70, BOS_FLAG, 2), _page(b"d" * 20, 0, 2, 1)
    c1, c2 = _page(b"e" * 10, BOS_FLAG, 3), _page(b"f" * 600, EOS_FLAG, 3, 1)
    # the end flag ends a link; a link that never sets it ends where a new stream begins
    assert _split(a1 + a2 + b1 + b2 + c1 + c2) == [a1 + a2, b1 + b2, c1 + c2]
    assert _split(a1 + a2 + b1 + b2 + c1 + c2, read=7) == [a1 + a2, b1 + b2, c1 + c2]
    # two streams begun together (a multiplexed link) end when both have
    m1, m2 = _page(b"g" * 5, BOS_FLAG, 4), _page(b"h" * 5, EOS_FLAG, 4, 1)
    assert _split(a1 + m1 + a2 + m2 + c1 + c2) == [a1 + m1 + a2 + m2, c1 + c2]
    # stray bytes inside a link go with it; a damaged page too (its decoder skips it); after the last link they are no link
    damaged = bytearray(_page(b"i" * 40, 0, 2, 2))
    damaged[-1] ^= 0xFF
    assert _split(a1 + b"junk" + a2 + b1 + b2 + bytes(damaged) + b"OggS!" + c1 + c2 + b"tail") == [
        a1 + b"junk" + a2, b1 + b2 + bytes(damaged) + b"OggS!", c1 + c2]


def test_a_link_cut_by_the_source_is_told() -> None:
    a1, a2 = _page(b"a" * 50, BOS_FLAG, 1), _page(b"b" * 300, EOS_FLAG, 1, 1)
    for data, cut in ((a1 + a2, False), (a1 + a2 + a1, True), (a1 + a2[:-5], True), (a1 + a2 + b"\0" * 8, False)):
        source = io.BytesIO(data)
        links = OggLinks(source.read, b"")
        while links.read(1 << 16) or links.next_link():
            pass
        assert links.cut is cut, data


def _reserialled(data: bytes, serial: int) -> list[bytes]:
    """The pages of an Ogg file, each given the serial number ``serial`` (checksums redone)."""
    pages, at = [], 0
    while at < len(data):
        end = at + 27 + data[at + 26] + sum(data[at + 27 : at + 27 + data[at + 26]])
        page = bytearray(data[at:end])
        struct.pack_into("<I", page, 14, serial)
        page[22:26] = bytes(4)
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        pages.append(bytes(page))
        at = end
    return pages


def test_bytes_that_look_like_a_page_between_links_are_skipped(links: list[bytes]) -> None:
    """"OggS" followed by no page after a link's end kept the next link from starting: the rest of
    a radio stream was lost without a word, and its bytes piled up."""
    data = links[0] + b"OggS!" + links[2]
    out, said = _stdin(_Trickle(data))
    assert said == [] and out.size == 3 * 16000
    assert np.abs(out - load_audio(io.BytesIO(data), 16000).numpy().ravel()).max() < 1e-5


def test_runs_of_one_rate_in_a_chain_of_several_are_one_signal_from_a_file_and_a_pipe() -> None:
    """48 kHz, 48 kHz, 22.05 kHz: the pipe resamples the first two as one (it cannot know the third's
    rate yet), and a file of the same bytes now does too (it resampled each link alone)."""
    data = _encoded("VORBIS", 48000, 1.0) + _encoded("VORBIS", 48000, 1.0, 330.0) + _encoded("VORBIS", 22050, 1.0, 550.0)
    whole = load_audio(io.BytesIO(data), 16000).numpy().ravel()  # [T]
    out, said = _stdin(io.BytesIO(data))
    assert said == [] and out.shape == whole.shape == (3 * 16000,) and np.abs(out - whole).max() < 1e-5


def test_a_multiplexed_link_whose_first_stream_ends_first_says_the_rest_is_left_out() -> None:
    """libsndfile ends with the first stream of a link that holds two; the link's other pages were
    left in the pipe and the next link was asked for: a RuntimeError from inside the reader."""
    first = _reserialled(_encoded("VORBIS", 16000, 1.0), 111)
    second = _reserialled(_encoded("VORBIS", 16000, 20.0, 330.0), 222)
    out, said = _stdin(io.BytesIO(first[0] + second[0] + b"".join(first[1:]) + b"".join(second[1:])))
    assert out.size == 16000
    [message] = said
    assert message.startswith("stdin holds more after 1.00 s that its Ogg decoder left unread: it is left out")


def test_a_source_that_fails_between_links_ends_the_audio_with_one_line(links: list[bytes]) -> None:
    class Reset(io.BytesIO):
        def read1(self, n: int = -1, /) -> bytes:
            if self.tell() >= len(links[0]):
                raise ConnectionResetError(104, "Connection reset by peer")
            return super().read1(min(n if n >= 0 else 4096, 4096, len(links[0]) - self.tell()))

    out, said = _stdin(Reset(links[0] + links[1]))
    assert out.size == 2 * 16000 and said == ["stdin ends after 2.00 s of audio: [Errno 104] Connection reset by peer"]
