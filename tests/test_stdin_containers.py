"""MP3, Ogg and AIFF on standard input: decoded as they arrive, as a file of the same bytes decodes.

``cat talk.mp3 | voxkit transcribe -`` was refused with a pointer to ffmpeg; libsndfile reads these
containers from a pipe, so voxkit now does too (voxkit/audio/piped.py). FLAC, which libsndfile
cannot read from a pipe, and containers it cannot read at all are still refused in one line.
"""

from __future__ import annotations

import io
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxkit.audio.io import load_audio
from voxkit.audio.stream import read_stdin
from voxkit.errors import AudioError, VoxkitWarning

SAMPLES = Path(__file__).resolve().parents[1] / "voxkit" / "assets" / "samples"
needs_mp3 = pytest.mark.skipif("MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 codec")


def _speechlike(rate: int, seconds: float = 2.0, channels: int = 1) -> np.ndarray:
    """A tone with some noise and a slow swell, [T] or [T, C] (the channels differ)."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(0).standard_normal((t.size, channels))
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] * (0.5 + 0.5 * np.sin(np.pi * t / seconds))[:, None]
    out = (tone * np.arange(1, channels + 1) / channels + 0.03 * noise).astype(np.float32)
    return out[:, 0] if channels == 1 else out


def _encoded(fmt: str, subtype: str, rate: int, channels: int = 1, seconds: float = 2.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _speechlike(rate, seconds, channels), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _from_stdin(data: bytes) -> np.ndarray:
    return np.concatenate(list(read_stdin("auto", 16000, stream=io.BytesIO(data))))


CASES = [("OGG", "VORBIS", 16000, 1), ("OGG", "VORBIS", 44100, 2), ("AIFF", "PCM_16", 22050, 1)]
if "MP3" in sf.available_formats():
    CASES += [("MP3", "MPEG_LAYER_III", 16000, 1), ("MP3", "MPEG_LAYER_III", 44100, 2)]
if "OPUS" in sf.available_subtypes("OGG"):
    CASES += [("OGG", "OPUS", 48000, 2)]


@pytest.mark.parametrize(("fmt", "subtype", "rate", "channels"), CASES)
def test_a_container_on_stdin_decodes_like_the_same_bytes_as_a_file(fmt: str, subtype: str, rate: int, channels: int) -> None:
    data = _encoded(fmt, subtype, rate, channels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no truncation notice for a whole stream
        streamed = _from_stdin(data)  # [T] mono 16 kHz
    whole = load_audio(io.BytesIO(data), 16000).numpy()  # [T]
    assert streamed.shape == whole.shape
    # resampled block by block with overlap instead of in one call: equal up to the filter's tails
    np.testing.assert_allclose(streamed, whole, atol=2e-4)


@needs_mp3
def test_a_cut_mp3_on_stdin_keeps_what_decoded_with_one_line() -> None:
    data = _encoded("MP3", "MPEG_LAYER_III", 16000)
    whole = _from_stdin(data)
    with pytest.warns(VoxkitWarning, match=r"^stdin is truncated or damaged: its MP3 audio stops decoding after \d\.\d\d s"):
        cut = _from_stdin(data[: len(data) * 6 // 10])
    assert 0.8 * 16000 < cut.size < 1.4 * 16000  # 60 % of 2 s, less at most the last 0.1 s block
    np.testing.assert_allclose(cut[:-200], whole[: cut.size - 200], atol=2e-4)  # the resampler's flush differs at the end


@needs_mp3
def test_bytes_that_only_start_like_an_mp3_are_one_error() -> None:
    with pytest.raises(AudioError, match=r"^stdin looks like MP3 audio but does not decode: "):
        _from_stdin(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8)


def test_containers_libsndfile_cannot_stream_are_refused_with_the_way_out() -> None:
    flac = _encoded("FLAC", "PCM_16", 16000)
    with pytest.raises(AudioError, match=r"FLAC audio, which voxkit decodes only from files: give the file's path instead of -, or "
                                         r"decode it to WAV on the way \(ffmpeg -i in\.flac -f wav - \| voxkit transcribe -\)"):
        read_stdin("auto", 16000, stream=io.BytesIO(flac))
    with pytest.raises(AudioError, match=r"MP4/M4A audio, which voxkit cannot decode: decode it to WAV on the way \(ffmpeg -i in\.m4a"):
        read_stdin("auto", 16000, stream=io.BytesIO(b"\x00\x00\x00\x20ftypM4A " + bytes(64)))


class _Trickle:
    """A live source: ``read1`` returns what has arrived; the last half arrives only when released."""

    def __init__(self, data: bytes) -> None:
        self.parts = [data[i : i + 512] for i in range(0, len(data), 512)]
        self.half = len(self.parts) // 2
        self.given = 0
        self.release = threading.Event()

    def read(self, n: int = -1, /) -> bytes:  # the sniff reads the first bytes whole
        out, self.parts[0] = self.parts[0][:n], self.parts[0][n:]
        return out

    def read1(self, n: int = -1, /) -> bytes:
        if not self.parts:
            return b""
        if self.given == self.half and not self.release.wait(timeout=20):
            raise OSError("the test never released the second half")
        self.given += 1
        return self.parts.pop(0)


@pytest.mark.parametrize("fmt,subtype", [("OGG", "VORBIS")] + ([("MP3", "MPEG_LAYER_III")] if "MP3" in sf.available_formats() else []))
def test_audio_on_stdin_is_decoded_as_it_arrives(fmt: str, subtype: str) -> None:
    """The first chunks come out while the rest of the stream has not arrived yet (8 s: Vorbis's
    setup header and first pages fill half of a 2 s stream)."""
    data = _encoded(fmt, subtype, 16000, seconds=8.0)
    source = _Trickle(data)
    chunks = read_stdin("auto", 16000, stream=source)  # type: ignore[arg-type]
    first = next(chunks)
    assert first.size > 0 and source.given <= source.half  # decoded before the second half was sent
    source.release.set()
    rest = np.concatenate([first, *chunks])
    np.testing.assert_allclose(rest, _from_stdin(data), atol=1e-6)


@needs_mp3
def test_ctrl_c_while_stdin_waits_ends_cleanly(tmp_path: Path) -> None:
    """The copying thread waits for input when Ctrl-C comes: it reads the command's StdinBuffer,
    not ``sys.stdin.buffer`` (whose lock that thread held), so the interpreter shuts down instead
    of aborting with "could not acquire lock for <stdin> at interpreter shutdown"."""
    speech = load_audio(SAMPLES / "en.flac", 16000).numpy()
    buf = io.BytesIO()
    sf.write(buf, np.concatenate([speech, speech]), 16000, format="MP3", subtype="MPEG_LAYER_III")
    data = buf.getvalue()
    proc = subprocess.Popen([sys.executable, "-c", "from voxkit.cli.main import main; main()", "transcribe", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(data[: len(data) // 3])  # the first words, then nothing more for now
        first = b""
        deadline = time.monotonic() + 120
        while len(first) < 5:  # the first word is out: the thread now waits for more input
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "no first word within 120 s"
            got = proc.stdout.read(5 - len(first))  # unbuffered: what communicate() reads next is not held here
            assert got, "the transcriber ended before its first word"
            first += got
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and b"Fatal Python error" not in err, err.decode()
    assert (first + out).startswith(b"Order")  # what was heard is printed


@needs_mp3
def test_joined_mp3_files_on_stdin_say_the_rest_is_left_out() -> None:
    """libsndfile decodes one MP3 file: two joined with cat ended after the first without a word
    (a chained Ogg stream is decoded whole: tests/test_ogg_pipe.py)."""
    first, second = _encoded("MP3", "MPEG_LAYER_III", 16000), _encoded("MP3", "MPEG_LAYER_III", 16000, seconds=3.0)
    with pytest.warns(VoxkitWarning, match=r"^stdin holds more after the first 2\.00 s \(MP3 files joined together\), "
                                           "which libsndfile does not decode"):
        out = _from_stdin(first + second)
    assert out.size == _from_stdin(first).size  # the first part, whole
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _from_stdin(first)  # a single stream: no such line


@needs_mp3
def test_a_tag_after_the_last_mp3_frame_is_no_second_stream() -> None:
    """ID3v1 ("TAG", 128 bytes) and APE tags follow the audio of many MP3 files: they are left
    unread without a word."""
    data = _encoded("MP3", "MPEG_LAYER_III", 16000)
    for tag in (b"TAG" + b"Title".ljust(125, b" "), b"APETAGEX" + bytes(200)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _from_stdin(data + tag).size == _from_stdin(data).size


class _LateClose(io.BytesIO):
    """A writer that closes its end a while after its last byte (ssh, curl, a script that goes on)."""

    def read1(self, n: int = -1, /) -> bytes:
        data = super().read1(n)
        if not data:
            time.sleep(1.0)
        return data


@needs_mp3
def test_a_single_mp3_whose_writer_closes_late_is_no_joined_stream() -> None:
    """libsndfile ends a tagged MP3 at its tag's length, before stdin's end: that was taken for
    more audio to come ("files joined together") when the writer closed a moment later, or when a
    large tag after the audio kept the pipe full."""
    data = _encoded("MP3", "MPEG_LAYER_III", 16000)
    for source in (_LateClose(data), io.BytesIO(data + b"APETAGEX" + bytes(100_000))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = np.concatenate(list(read_stdin("auto", 16000, stream=source)))
        assert out.size == _from_stdin(data).size
