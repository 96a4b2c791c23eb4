"""A chained Ogg file (logical streams one after another) decodes whole, not up to its first stream's end.

An internet-radio recording whose tracks are streams of their own, or ``cat a.ogg b.ogg``, decoded
as its first stream alone with no word, and when the last stream was long libsndfile found no
length at all and the file was refused as "written to a pipe". Each stream (a link) is now found
from the page headers and decoded on its own (voxkit/audio/ogg.py); the expected audio below is
each link loaded as a file of its own, joined.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import voxkit
from cli_helpers import run_cli
from voxkit.audio import ogg
from voxkit.audio.io import audio_duration, audio_info, load_audio, load_head
from voxkit.audio.resample import resample
from voxkit.errors import AudioError, VoxkitWarning

RATE = 16000
SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"


def _tone(seconds: float, rate: int, channels: int = 1, hz: float = 440.0, seed: int = 0) -> np.ndarray:
    """A tone with some noise, [T] or [T, C] (the channels at different levels, so that mixing them shows)."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * hz * t) + 0.05 * np.random.default_rng(seed).standard_normal(t.size)
    if channels > 1:
        wave = np.stack([wave * (1.0 - 0.3 * c) for c in range(channels)], axis=1)
    return wave.astype(np.float32)


def _ogg(seconds: float, rate: int, subtype: str = "VORBIS", channels: int = 1, hz: float = 440.0) -> bytes:
    """A whole Ogg stream as libsndfile writes it (each call a serial number of its own)."""
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds, rate, channels, hz), rate, format="OGG", subtype=subtype)
    return buf.getvalue()


def _pages(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each page of a whole Ogg stream."""
    pages, at = [], 0
    while at < len(data):
        segments = data[at + 26]
        end = at + 27 + segments + sum(data[at + 27 : at + 27 + segments])
        pages.append((at, end))
        at = end
    return pages


def _with_serial(data: bytes, serial: int) -> bytes:
    """``data`` with every page's serial number set to ``serial`` and its checksum redone, as a
    writer with a fixed serial number (``ffmpeg -fflags +bitexact``) leaves it."""
    out = bytearray()
    for start, end in _pages(data):
        page = bytearray(data[start:end])
        struct.pack_into("<I", page, 14, serial)
        struct.pack_into("<I", page, 22, 0)
        struct.pack_into("<I", page, 22, ogg.ogg_crc(bytes(page)))
        out += page
    return bytes(out)


def _alone(data: bytes, rate: int = RATE, mono: bool = True) -> np.ndarray:
    return load_audio(io.BytesIO(data), rate, mono=mono).numpy()


def _loaded(source: object, rate: int = RATE, **kwargs: object) -> tuple[np.ndarray, list[str]]:
    """Samples and voxkit's warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wav = load_audio(source, rate, **kwargs).numpy()  # type: ignore[arg-type]
    return wav, [str(w.message) for w in caught if issubclass(w.category, VoxkitWarning)]


CHAINS = {
    "16 kHz Vorbis + 44.1 kHz stereo Vorbis": [(2.0, 16000, "VORBIS", 1, 440), (3.0, 44100, "VORBIS", 2, 660)],
    "Vorbis + Opus": [(2.0, 16000, "VORBIS", 1, 440), (1.5, 48000, "OPUS", 1, 880)],
    "Opus + Vorbis, three links": [(1.5, 48000, "OPUS", 2, 880), (2.0, 22050, "VORBIS", 1, 330), (1.0, 16000, "VORBIS", 1, 550)],
    "two 44.1 kHz links": [(2.0, 44100, "VORBIS", 1, 440), (1.0, 44100, "VORBIS", 1, 660)],
}


@pytest.mark.parametrize("links", CHAINS.values(), ids=CHAINS.keys())
@pytest.mark.parametrize("kind", ["path", "bytes", "open file inside a larger one"])
def test_a_chained_file_decodes_as_its_links_one_after_another(tmp_path: Path, links: list[tuple], kind: str) -> None:
    """Every link, at any rate, channel count or codec, sample for sample as loaded alone, with no
    notice; the duration the manifests read says the same."""
    parts = [_ogg(*link) for link in links]
    chained = b"".join(parts)
    path = tmp_path / "chained.ogg"
    path.write_bytes(chained)
    if kind == "path":
        wav, messages = _loaded(path)
    elif kind == "bytes":
        wav, messages = _loaded(io.BytesIO(chained))
    else:
        (tmp_path / "inside.bin").write_bytes(b"x" * 100 + chained)
        with (tmp_path / "inside.bin").open("rb") as fh:
            fh.seek(100)
            wav, messages = _loaded(fh)
    if len({link[1] for link in links}) > 1:  # each link resampled once, from its own rate
        expected = np.concatenate([_alone(part) for part in parts])
    else:  # one rate: joined at it and resampled as one signal, as a single stream is
        native = np.concatenate([_alone(part, links[0][1]) for part in parts])
        expected = resample(torch.from_numpy(native), links[0][1], RATE).numpy()
    assert messages == []
    assert wav.shape == expected.shape
    np.testing.assert_allclose(wav, expected, atol=1e-6)
    rate, frames, _ = audio_info(path)
    assert rate == links[0][1] and frames == load_audio(path, rate).shape[0]
    assert audio_duration(path) == pytest.approx(sum(link[0] for link in links), abs=1e-3)


def test_a_long_last_link_no_longer_makes_the_file_lengthless(tmp_path: Path) -> None:
    """libsndfile looks for the first stream's length only in the file's last bytes: behind a
    last link of more than about 64 KB it reported none, and the file was refused as one written
    to a pipe."""
    first, last = _ogg(1.0, RATE), _ogg(30.0, 44100, channels=2)
    assert len(last) > 2 * ogg.MAX_PAGE
    path = tmp_path / "long-last.ogg"
    path.write_bytes(first + last)
    assert sf.info(str(path)).frames >= ogg.UNKNOWN_FRAMES  # what libsndfile says of it
    wav, messages = _loaded(path)
    assert messages == [] and wav.shape == (31 * RATE,)
    np.testing.assert_allclose(wav, np.concatenate([_alone(first), _alone(last)]), atol=1e-6)
    assert audio_info(path) == (RATE, 31 * RATE, 1)


def test_channels_apart_join_when_the_links_agree_and_are_refused_when_they_do_not(tmp_path: Path) -> None:
    stereo = [_ogg(1.0, 44100, channels=2), _ogg(2.0, 22050, channels=2, hz=660)]
    joined = load_audio(io.BytesIO(b"".join(stereo)), RATE, mono=False).numpy()
    expected = np.concatenate([_alone(part, mono=False) for part in stereo], axis=1)
    assert joined.shape == (2, 3 * RATE)
    np.testing.assert_allclose(joined, expected, atol=1e-6)
    mixed = tmp_path / "mixed.ogg"
    mixed.write_bytes(_ogg(1.0, RATE) + stereo[0])
    with pytest.raises(AudioError) as caught:
        load_audio(mixed, RATE, mono=False)
    assert str(caught.value) == (f"cannot decode audio {mixed}: its chained Ogg streams have 1 and 2 channels, "
                                 "which do not join channel by channel: load it with mono=True")
    assert load_audio(mixed, RATE).shape == (2 * RATE,)  # mono: each link averaged, as a single stream is


@pytest.mark.parametrize("order", ["shorter first", "longer first", "one file twice"])
def test_links_that_share_a_serial_number_are_told_apart_too(tmp_path: Path, order: str) -> None:
    """RFC 3533 gives each link a serial number of its own, but a writer with a fixed one (ffmpeg's
    bitexact mode) or a file joined to itself does not: such a chain is told after libsndfile
    stops reading at its first link's end. It read the first link to the last link's length,
    cutting a longer one short without a word."""
    short, long = _with_serial(_ogg(1.0, RATE), 7), _with_serial(_ogg(2.0, RATE, hz=660), 7)
    parts = {"shorter first": [short, long], "longer first": [long, short], "one file twice": [short, short]}[order]
    path = tmp_path / "one-serial.ogg"
    path.write_bytes(b"".join(parts))
    wav, messages = _loaded(path)
    assert messages == []
    np.testing.assert_allclose(wav, np.concatenate([_alone(part) for part in parts]), atol=1e-6)


def test_a_single_stream_takes_the_old_path_without_a_walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of one stream loaded whole is told by its last page's serial number (from the bytes
    the end check reads anyway): its pages are not walked and libsndfile decodes it as before."""
    data = _ogg(3.0, 44100, channels=2)
    path = tmp_path / "single.ogg"
    path.write_bytes(data)

    def no_walk(*args: object) -> list[int]:
        raise AssertionError("a single stream's pages were walked")

    monkeypatch.setattr(ogg, "_link_starts", no_walk)
    expected = resample(torch.from_numpy(sf.read(io.BytesIO(data), dtype="float32")[0].T.copy()).mean(dim=0), 44100, RATE)
    for source in (path, io.BytesIO(data)):
        wav, messages = _loaded(source)
        assert messages == []
        np.testing.assert_allclose(wav, expected.numpy(), atol=1e-6)
    monkeypatch.undo()  # a head read and audio_info walk: neither reads past the first stream's start
    assert load_head(data, None, RATE, "test", 1.0)[1] == pytest.approx(3.0)
    assert audio_info(path) == (44100, 3 * 44100, 2)


@pytest.mark.parametrize("order", ["one file twice", "longer first"])
def test_a_head_read_and_audio_info_see_links_that_share_a_serial_number(tmp_path: Path, order: str) -> None:
    """A head read as long as the first link, and audio_info, took such a chain for its first link:
    3 s of a 6 s file, in the durations data manifest writes."""
    first = _with_serial(_ogg(3.0, RATE), 7)
    second = first if order == "one file twice" else _with_serial(_ogg(1.0, RATE, hz=660), 7)
    path = tmp_path / "one-serial.ogg"
    path.write_bytes(first + second)
    whole = np.concatenate([_alone(first), _alone(second)])
    seconds = whole.shape[0] / RATE
    head, duration = load_head(path, None, RATE, "test", 3.5)
    assert duration == pytest.approx(seconds)
    np.testing.assert_allclose(head.numpy(), whole[: head.shape[0]], atol=1e-6)
    assert head.shape[0] >= int(3.5 * RATE)
    rate, frames, channels = audio_info(path)
    assert (rate, channels) == (RATE, 1) and frames == whole.shape[0]


def test_a_multiplexed_file_is_not_split(tmp_path: Path) -> None:
    """Streams interleaved (all their first pages at the start, as ffmpeg writes two audio tracks
    or an Ogg Skeleton track beside the audio) are one link, which libsndfile decodes as before:
    its first stream."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    sf.write(tmp_path / "a.wav", _tone(2.0, RATE), RATE)
    sf.write(tmp_path / "b.wav", _tone(3.0, 44100, 2, hz=660), 44100)
    path = tmp_path / "mux.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "a.wav"), "-i", str(tmp_path / "b.wav"),
                    "-map", "0", "-map", "1", "-c:a", "libvorbis", str(path)], check=True)
    data = path.read_bytes()
    (first, _), (second, _), (third, _) = _pages(data)[:3]  # both streams' first pages lead the file
    assert data[first + 5] & ogg.BOS_FLAG and data[second + 5] & ogg.BOS_FLAG and not data[third + 5] & ogg.BOS_FLAG
    assert data[first + 14 : first + 18] != data[second + 14 : second + 18]
    with path.open("rb") as fh:
        assert ogg.find_chain(fh, 0, data[:4096]) is None
    wav, messages = _loaded(path)
    with sf.SoundFile(path) as fh:
        assert (fh.samplerate, fh.channels, fh.frames) == (RATE, 1, 2 * RATE)
        np.testing.assert_allclose(wav, fh.read(dtype="float32"), atol=1e-6)
    assert messages == [] and audio_info(path) == (RATE, 2 * RATE, 1)


def test_a_head_read_decodes_only_the_links_it_reaches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the first seconds decodes up to them (and the resampler's margin) and no further:
    the result is the whole file's start, and the duration the whole file's."""
    parts = [_ogg(2.0, RATE), _ogg(3.0, 44100, channels=2, hz=660), _ogg(1.5, 48000, "OPUS", hz=880)]
    chained = b"".join(parts)
    whole = load_audio(io.BytesIO(chained), RATE).numpy()
    asked: list[tuple[int, int]] = []  # (link, frames) of each link opened
    decode = ogg.Chain._decode_run

    def spy(self: ogg.Chain, indices: range, plan: list[int], out: np.ndarray, mix: bool) -> tuple[int, bool, bool]:
        asked.extend((index, plan[index]) for index in indices if plan[index])
        return decode(self, indices, plan, out, mix)

    monkeypatch.setattr(ogg.Chain, "_decode_run", spy)
    for seconds, reached in [(1.0, [(0, 16800)]), (2.5, [(0, 32000), (1, 24255)]), (10.0, None)]:
        asked.clear()
        head, duration = load_head(chained, None, RATE, "test", seconds)
        assert duration == pytest.approx(6.5)
        np.testing.assert_allclose(head.numpy(), whole[: round(seconds * RATE)], atol=1e-6)
        if reached is not None:
            assert asked == reached  # the head and 50 ms: none of the later links
        else:
            assert len(asked) == 3 and head.shape == whole.shape


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
def test_a_cut_last_link_warns_and_the_links_before_it_stay_whole(tmp_path: Path, subtype: str) -> None:
    rate = 48000 if subtype == "OPUS" else RATE
    first, last = _ogg(2.0, 22050, channels=2), _ogg(3.0, rate, subtype)
    path = tmp_path / "cut.ogg"
    path.write_bytes(first + last[: len(last) * 6 // 10])
    wav, messages = _loaded(path)
    assert messages == [f"{path} is truncated or damaged: it decodes to {len(wav) / RATE:.2f} s, its end is missing "
                        "(no Ogg end-of-stream page)"]
    start = _alone(first)
    assert 2 * RATE + RATE // 2 < len(wav) < 5 * RATE
    np.testing.assert_allclose(wav[: len(start)], start, atol=1e-6)  # the first link whole
    assert audio_duration(path) == pytest.approx(len(wav) / RATE, abs=1e-4)
    with pytest.warns(VoxkitWarning, match=r"^<stream> is truncated or damaged: .* its end is missing"):
        load_head((first + last[: len(last) * 6 // 10]), None, RATE, "test", 0.5)


def test_a_link_cut_short_before_the_next_one_keeps_both(tmp_path: Path) -> None:
    """A page cut short and the next link's first page right behind it (a failed copy joined to
    the next file): the walk looks for the next whole page and finds the link."""
    first, second = _ogg(2.0, RATE), _ogg(1.0, 44100, channels=2, hz=660)
    cut = first[: len(first) * 7 // 10]
    assert cut[_pages(first)[-1][0] :] != first[_pages(first)[-1][0] :]  # the cut is inside a page
    path = tmp_path / "joined.ogg"
    path.write_bytes(cut + second)
    wav, messages = _loaded(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cut file alone says it is cut
        expected = np.concatenate([_alone(cut), _alone(second)])
    assert messages == []  # the file ends whole; the first link ended before the next began
    np.testing.assert_allclose(wav, expected, atol=1e-6)


def test_the_walk_reads_page_headers_and_finds_each_link() -> None:
    parts = [_ogg(1.0, RATE), _ogg(1.0, 48000, "OPUS"), _ogg(1.0, 22050)]
    chained = b"".join(parts)
    ends = np.cumsum([len(part) for part in parts]).tolist()
    chain = ogg.find_chain(io.BytesIO(chained), 0, chained[:4096])
    assert chain is not None and chain.links == list(zip([0, *ends[:-1]], ends, strict=True))
    assert ogg.find_chain(io.BytesIO(parts[0]), 0, parts[0][:4096]) is None
    assert ogg.find_chain(io.BytesIO(chained + b"TAG" + bytes(125)), 0, chained[:4096]).links[-1] == (ends[1], ends[2] + 128)


def test_transcribe_hears_both_links_of_a_chained_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two of the bundled samples as one chained file, the second at another rate and codec: the
    transcript holds words of both."""
    english, rate = sf.read(SAMPLES / "en.flac", dtype="float32")
    spanish, _ = sf.read(SAMPLES / "es.flac", dtype="float32")
    first, second = io.BytesIO(), io.BytesIO()
    sf.write(first, english, rate, format="OGG", subtype="VORBIS")
    upsampled = resample(torch.from_numpy(spanish), rate, 48000).numpy()
    sf.write(second, np.stack([upsampled, upsampled], axis=1), 48000, format="OGG", subtype="OPUS")
    path = tmp_path / "en-es.ogg"
    path.write_bytes(first.getvalue() + second.getvalue())
    code, out, err = run_cli(["transcribe", str(path)], capsys)
    assert code == 0 and "Traceback" not in err, err
    text = out.lower()
    assert "order number" in text and "mckenzie" in text  # the first link (English)
    assert "rocamora" in text or "viajaron" in text  # the second (Spanish)


def _page(body: bytes, flags: int, serial: int, sequence: int) -> bytes:
    """One Ogg page carrying ``body`` (under 255 bytes), its checksum filled in."""
    page = bytearray(struct.pack("<4sBBqIIIB", b"OggS", 0, flags, 0, serial, sequence, 0, 1) + bytes([len(body)]) + body)
    struct.pack_into("<I", page, 22, ogg.ogg_crc(bytes(page)))
    return bytes(page)


def test_a_link_libsndfile_cannot_open_ends_the_reading_with_a_notice(tmp_path: Path) -> None:
    """A link that is no audio libsndfile knows (here two pages of made-up bytes) is a damaged
    file's rest: what comes before it is kept, with the notice of a damaged file; a head read that
    stays before it says nothing."""
    odd = _page(b"not a codec" * 4, ogg.BOS_FLAG, 99, 0) + _page(b"nor this", ogg.EOS_FLAG, 99, 1)
    first, last = _ogg(2.0, RATE), _ogg(1.0, RATE, hz=660)
    path = tmp_path / "odd-link.ogg"
    path.write_bytes(first + odd + last)
    chain = ogg.find_chain(io.BytesIO(path.read_bytes()), 0, first[:4096])
    assert chain is not None and len(chain.links) == 3
    wav, messages = _loaded(path)
    assert messages == [f"{path} is truncated or damaged: it decodes to 2.00 s, the rest is left out"]
    np.testing.assert_allclose(wav, _alone(first), atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_head(path.read_bytes(), None, RATE, "test", 1.0)[0].shape == (RATE,)
    assert audio_info(path) == (RATE, 2 * RATE, 1)
