"""A cut Ogg file (Vorbis, Opus) warns in one line, as a cut WAV, FLAC or MP3 does.

An Ogg stream states no length up front and libsndfile takes a file's length from its last whole
page, so a file cut by a failed copy or a recorder that died decoded as a shorter file without a
word. Its last whole page now tells: a whole stream ends with the end-of-stream flag
(voxkit/audio/ogg.py). The files are cut from generated tones by byte slicing, as a failed copy
leaves them.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_helpers import run_cli
from voxkit.audio.io import load_audio, load_head
from voxkit.audio.ogg import MAX_PAGE, TAIL_BYTES, ends_whole, file_ends_whole, ogg_crc
from voxkit.audio.stream import read_stdin
from voxkit.errors import AudioError, VoxkitWarning

RATE = 16000
CODECS = [("VORBIS", RATE), ("OPUS", 48000)]


def _encoded(subtype: str, rate: int, seconds: float = 3.0) -> bytes:
    """A tone with some noise, as libsndfile writes it to an Ogg file."""
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, tone.astype(np.float32), rate, format="OGG", subtype=subtype)
    return buf.getvalue()


def _pages(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each page of a whole Ogg file, walked from its first byte."""
    pages, at = [], 0
    while at < len(data):
        assert data[at : at + 4] == b"OggS"
        segments = data[at + 26]
        end = at + 27 + segments + sum(data[at + 27 : at + 27 + segments])
        pages.append((at, end))
        at = end
    return pages


def _page(body: bytes, eos: bool, serial: int = 7, sequence: int = 0) -> bytes:
    """One Ogg page carrying ``body`` (255-byte segments), its checksum filled in."""
    lacing = [255] * (len(body) // 255)
    if len(lacing) < 255:  # a packet that ends here (255 full segments: it goes on in the next page)
        lacing.append(len(body) % 255)
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, 4 if eos else 0, sequence, serial, sequence, 0, len(lacing)) + bytes(lacing)
    page = header + body
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def _loaded(source: Path | io.BytesIO) -> tuple[np.ndarray, list[str]]:
    """The decoded samples [T] and voxkit's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wav = load_audio(source, RATE).numpy()
    return wav, [str(w.message) for w in caught if issubclass(w.category, VoxkitWarning)]


def _notice(name: object, samples: int) -> str:
    return f"{name} is truncated or damaged: it decodes to {samples / RATE:.2f} s, its end is missing (no Ogg end-of-stream page)"


@pytest.mark.parametrize(("subtype", "rate"), CODECS)
def test_whole_and_chained_ogg_files_say_nothing(tmp_path: Path, subtype: str, rate: int) -> None:
    """A whole file, as a path, an open file or bytes, and two whole files joined (a chained
    stream, whose last page ends its last part) decode without a notice."""
    whole = _encoded(subtype, rate)
    assert whole[_pages(whole)[-1][0] + 5] & 4  # libsndfile marks the last page
    path = tmp_path / "whole.ogg"
    path.write_bytes(whole)
    (tmp_path / "chained.ogg").write_bytes(whole + _encoded("VORBIS", RATE))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_audio(path, RATE).shape == (3 * RATE,)
        assert load_audio(io.BytesIO(whole), RATE).shape == (3 * RATE,)
        with path.open("rb") as fh:
            assert load_audio(fh, RATE).shape == (3 * RATE,)
        assert load_audio(tmp_path / "chained.ogg", RATE).shape[0] >= 3 * RATE


@pytest.mark.parametrize(("subtype", "rate"), CODECS)
@pytest.mark.parametrize("where", ["mid-page", "before the last page", "inside the last page"])
def test_a_cut_ogg_keeps_its_whole_pages_with_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                        subtype: str, rate: int, where: str) -> None:
    whole = _encoded(subtype, rate)
    last = _pages(whole)[-1][0]
    cut = {"mid-page": len(whole) * 6 // 10, "before the last page": last, "inside the last page": last + 40}[where]
    path = tmp_path / "cut.ogg"
    path.write_bytes(whole[:cut])
    full, _ = _loaded(io.BytesIO(whole))
    capfd.readouterr()
    wav, messages = _loaded(path)
    assert messages == [_notice(path, len(wav))]
    assert 0 < len(wav) < 3 * RATE
    # the start as the whole file decodes it (the last samples are resampled next to the end instead of more audio)
    np.testing.assert_allclose(wav[:-100], full[: len(wav) - 100], atol=2e-4)
    wav, messages = _loaded(io.BytesIO(whole[:cut]))
    assert messages == [_notice("<stream>", len(wav))]
    assert capfd.readouterr().err == ""  # voxkit's notice only, nothing from the C libraries


def test_an_open_file_keeps_its_position_and_a_head_read_warns_too(tmp_path: Path) -> None:
    """The tail check reads from where an open file's audio starts, and puts the position back
    where it found it; reading only the first seconds warns as well (the check decodes nothing)."""
    whole = _encoded("VORBIS", RATE)
    path = tmp_path / "inside.bin"
    for data, complete in [(whole, True), (whole[: len(whole) * 6 // 10], False)]:
        path.write_bytes(b"x" * 100 + data)
        with path.open("rb") as fh:
            fh.seek(120)
            assert file_ends_whole(fh, 100) is complete and fh.tell() == 120
    path.write_bytes(whole[: len(whole) * 6 // 10])
    with path.open("rb") as fh, pytest.warns(VoxkitWarning, match=rf"^{path} is truncated or damaged: it decodes to 0\.\d\d s, its end is"):
        load_audio(fh, RATE)
    with pytest.warns(VoxkitWarning, match=r"^<stream> is truncated or damaged: .* its end is missing"):
        load_head(path.read_bytes(), None, RATE, "test", 0.5)


def test_an_ogg_cut_in_its_headers_says_so(tmp_path: Path) -> None:
    """Vorbis headers whole and no audio: the notice, then the empty file's error (as for a WAV cut
    after its header); Opus headers whole, or either cut inside them: libsndfile's error, which now
    names the cut."""
    vorbis, opus = _encoded("VORBIS", RATE), _encoded("OPUS", 48000)
    headers = tmp_path / "headers.ogg"
    headers.write_bytes(vorbis[: _pages(vorbis)[2][0]])  # identification, comment and setup headers
    with pytest.warns(VoxkitWarning, match=r"headers\.ogg is truncated or damaged: it decodes to 0\.00 s, its end is missing"), \
            pytest.raises(AudioError, match=r"^audio is empty: .*headers\.ogg$"):
        load_audio(headers, RATE)
    for name, data in [("opus.ogg", opus[: _pages(opus)[2][0]]), ("mid.ogg", vorbis[:150]), ("mid-opus.ogg", opus[:60])]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AudioError, match=rf"^cannot decode audio .*{name}: .*\(it is truncated: it has no Ogg end-of-stream page\)$"):
            load_audio(tmp_path / name, RATE)


def test_the_end_is_found_among_the_largest_pages_and_after_trailing_bytes(tmp_path: Path) -> None:
    """Pages of the largest size: a cut in the last still finds the whole one before it in the
    bytes read from the end. A tag after the last page is no cut; zeros where the end should be
    (a recorder's preallocated file) and bytes that only look like a page start are."""
    body = bytes(range(256)) * 255
    pages = [_page(body[: 255 * 255], eos=False, sequence=i) for i in range(4)] + [_page(body[: 255 * 255], eos=True, sequence=4)]
    assert all(len(p) == MAX_PAGE for p in pages) and TAIL_BYTES >= 2 * MAX_PAGE
    whole = b"".join(pages)
    path = tmp_path / "big.ogg"
    for data, complete in [(whole, True), (whole[:-1], False), (whole[: -MAX_PAGE], False), (whole + b"TAG" + bytes(125), True),
                           (whole[:-100] + bytes(100), False), (whole[:-1] + b"OggS\x00\x04" + bytes(28), False)]:
        path.write_bytes(data)
        with path.open("rb") as fh:
            assert file_ends_whole(fh, 0) is complete
        assert ends_whole(data) is complete
    damaged = bytearray(whole)
    damaged[-10] ^= 1  # the last page fails its checksum: the one before it, without the flag, is the last whole page
    assert not ends_whole(bytes(damaged))


def test_the_ogg_checksum_is_rfc_3533s() -> None:
    """zlib's CRC-32 turned to Ogg's, against the bitwise definition (polynomial 0x04C11DB7, MSB first, no xor)."""

    def bitwise(data: bytes) -> int:
        crc = 0
        for byte in data:
            crc ^= byte << 24
            for _ in range(8):
                crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        return crc

    rng = np.random.default_rng(1)
    for size in (0, 1, 27, 1000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert ogg_crc(data) == bitwise(data)


@pytest.mark.parametrize(("subtype", "rate"), CODECS)
def test_a_cut_ogg_on_stdin_warns_once(subtype: str, rate: int) -> None:
    """Standard input sees every byte: its last ones tell a cut stream as a file's do."""
    whole = _encoded(subtype, rate)

    def decoded(data: bytes) -> tuple[int, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            size = sum(len(block) for block in read_stdin("auto", RATE, stream=io.BytesIO(data)))
        return size, [str(w.message) for w in caught if issubclass(w.category, VoxkitWarning)]

    assert decoded(whole) == (3 * RATE, [])
    size, messages = decoded(whole[: len(whole) * 6 // 10])
    [message] = messages
    assert message.startswith("stdin is truncated or damaged: it decodes to ") and message.endswith(
        " s, its end is missing (no Ogg end-of-stream page)")
    assert 0 < size < 2 * RATE


def test_transcribe_prints_one_line_for_a_cut_ogg_and_transcribes_it(model_dir: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Both files are transcribed, the cut one as far as it decodes, and its notice is one line."""
    whole = _encoded("OPUS", 48000)
    (tmp_path / "whole.ogg").write_bytes(whole)
    (tmp_path / "cut.ogg").write_bytes(whole[: len(whole) * 6 // 10])
    code, out, err = run_cli(["transcribe", str(tmp_path / "whole.ogg"), str(tmp_path / "cut.ogg"), "--model", str(model_dir),
                              "-f", "jsonl"], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("# ")]  # "# NAME" heads each transcript
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"voxkit transcribe: warning: {tmp_path / 'cut.ogg'} is truncated or damaged: it decodes to ")
    assert lines[0].endswith(" s, its end is missing (no Ogg end-of-stream page)")
    finals = [event for event in map(json.loads, out.splitlines()) if event["type"] == "final"]
    assert [round(event["duration"], 2) for event in finals] == [3.0, float(lines[0].split("decodes to ")[1].split(" s")[0])]
