"""Truncated FLAC, MP3 and Ogg files: what decodes is kept, with one voxkit line and no C-library output.

A FLAC cut short used to be refused whole ("flac decoder lost sync"); a cut MP3 was read without a
notice while libmpg123 printed its own line to file descriptor 2. The files are cut from generated
tones with ``head -c``-style byte slicing, as a failed copy leaves them.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxkit.audio.io import load_audio, load_head, load_input
from voxkit.errors import AudioError, VoxkitWarning

RATE = 16000
needs_mp3 = pytest.mark.skipif("MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 codec")


def _tone(seconds: float = 3.0, rate: int = RATE) -> np.ndarray:
    """A tone with some noise: coders spend their bytes evenly over it, so a cut at 60 % of the
    bytes falls well inside the audio, not in the headers."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise).astype(np.float32)


def _encoded(fmt: str, subtype: str, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(rate=rate), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, VoxkitWarning)]


def test_a_truncated_flac_keeps_what_decodes_and_warns_once(tmp_path: Path) -> None:
    whole = _encoded("FLAC", "PCM_16")
    path = tmp_path / "cut.flac"
    path.write_bytes(whole[: len(whole) * 6 // 10])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wav = load_audio(path, RATE)
    [message] = _messages(caught)
    held = wav.shape[0] / RATE
    assert message == f"{path} is truncated or damaged: it decodes to {held:.2f} s of the 3.00 s its header promises, the rest is left out"
    assert 1.0 < held < 2.0  # 60 % of the bytes: all but the FLAC frame the cut went through
    np.testing.assert_allclose(wav.numpy(), _tone()[: wav.shape[0]], atol=1e-4)  # the start, sample for sample
    with pytest.warns(VoxkitWarning, match=r"<stream> is truncated or damaged: it decodes to .* of the 3\.00 s"):
        assert load_input(path.read_bytes(), None, RATE, "test").shape == wav.shape
    with pytest.warns(VoxkitWarning, match="cut.flac is truncated"):
        head, duration = load_head(path, None, RATE, "test", 2.5)  # a head past the cut: what is there
    assert head.shape == wav.shape and duration == pytest.approx(held)


def test_a_flac_with_nothing_to_decode_is_still_one_error(tmp_path: Path) -> None:
    whole = _encoded("FLAC", "PCM_16")
    first_frame = whole.index(b"\xff\xf8", 42)  # the first audio frame follows the metadata blocks
    headers_only = tmp_path / "headers.flac"
    headers_only.write_bytes(whole[: first_frame + 20])
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an error, not a warning about 0.00 s
        with pytest.raises(AudioError, match=r"^cannot decode audio .*headers\.flac: .*lost sync"):
            load_audio(headers_only, RATE)
        with pytest.raises(AudioError, match=r"^cannot decode audio .*garbage\.flac: Format not recognised"):
            load_audio(garbage, RATE)


@needs_mp3
def test_a_truncated_mp3_warns_once_and_the_decoder_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    whole = _encoded("MP3", "MPEG_LAYER_III")
    path = tmp_path / "cut.mp3"
    path.write_bytes(whole[: len(whole) * 6 // 10])
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wav = load_audio(path, RATE)
        from_bytes = load_input(path.read_bytes(), None, RATE, "test")
    held = wav.shape[0] / RATE
    assert _messages(caught) == [f"{path} is truncated: its header promises 3.00 s, it holds {held:.2f} s",
                                 f"<stream> is truncated: its header promises 3.00 s, it holds {held:.2f} s"]
    assert 1.0 < held < 2.0 and from_bytes.shape == wav.shape
    os.write(2, b"stderr still works\n")  # fd 2 is back where it was
    assert capfd.readouterr().err == "stderr still works\n"  # libmpg123's "Xing stream size off ..." is gone


def _untagged(whole: bytes) -> bytes:
    """``whole`` with its Xing tag frame made an ordinary (silent) frame: an MP3 as an encoder writes
    it to a pipe, whose length libmpg123 can only estimate from the first frame's bitrate."""
    at = whole.index(b"Xing")
    return whole[:at] + b"None" + whole[at + 4 :]


@needs_mp3
def test_whole_mp3s_and_ones_without_a_length_tag_do_not_warn(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Without a Xing/Info tag nothing promises a length, so a whole file is no truncation."""
    paths = []
    for name, data in (("whole.mp3", _encoded("MP3", "MPEG_LAYER_III")), ("untagged.mp3", _untagged(_encoded("MP3", "MPEG_LAYER_III")))):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_audio(paths[0], RATE).shape == (3 * RATE,)
        assert load_audio(paths[1], RATE).shape[0] > 3 * RATE
    assert capfd.readouterr().err == ""


@needs_mp3
def test_an_mp3_without_a_length_tag_decodes_to_its_end(tmp_path: Path) -> None:
    """libsndfile stops a seekable MP3 at libmpg123's estimate of its length, which for a file
    without a length tag came from the first frame's bitrate: this 3 s file read as 1.56 s, silently.
    Decoded from a pipe it gives every frame: the tagged file's samples, after the frame that held
    the tag and the encoder's delay, which only the tag told the decoder to drop."""
    whole = _encoded("MP3", "MPEG_LAYER_III")
    path = tmp_path / "untagged.mp3"
    path.write_bytes(_untagged(whole))
    assert sf.info(str(path)).frames < 2 * RATE  # what libsndfile believes
    tagged = load_audio(io.BytesIO(whole), RATE).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wav = load_audio(path, RATE).numpy()
        head, duration = load_head(path, None, RATE, "test", 2.5)
        from_stream = load_audio(io.BytesIO(path.read_bytes()), RATE).numpy()
    lag = len(wav) - len(tagged)
    assert 1152 <= lag <= 1152 + 2 * 1152  # the tag's frame, the encoder's delay and padding
    offsets = [o for o in range(lag + 1) if np.abs(wav[o : o + len(tagged)] - tagged).max() < 1e-6]
    assert len(offsets) == 1 and 1152 < offsets[0] < lag  # the whole tagged audio, sample for sample
    np.testing.assert_array_equal(from_stream, wav)
    np.testing.assert_array_equal(head.numpy(), wav[: round(2.5 * RATE)])  # the head, not the estimate's 1.56 s
    assert duration > 2.5


@needs_mp3
def test_a_cut_mp3_without_a_length_tag_keeps_what_decodes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Cut mid-frame, such a file fails in libmpg123 at the cut: the frames before it are kept
    with one line, and the decoder's own lines stay hidden."""
    whole = _untagged(_encoded("MP3", "MPEG_LAYER_III"))
    path = tmp_path / "cut.mp3"
    path.write_bytes(whole[: len(whole) * 6 // 10])
    full = load_audio(io.BytesIO(whole), RATE).numpy()
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wav = load_audio(path, RATE).numpy()
    held = len(wav) / RATE
    assert _messages(caught) == [f"{path} is truncated or damaged: it decodes to {held:.2f} s, the rest is left out"]
    assert 1.2 < held < 2.0  # 60 % of the bytes, less at most the 4 frames of the read that met the cut
    np.testing.assert_allclose(wav, full[: len(wav)], atol=1e-6)
    assert capfd.readouterr().err == ""


@needs_mp3
def test_a_decode_off_the_main_thread_never_silences_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """fd 2 is the process's: a server decodes in handler threads while its main thread logs, and
    every log line written during those decodes arrives (the decoder's own line may then show too)."""
    whole = _encoded("MP3", "MPEG_LAYER_III")
    path = tmp_path / "cut.mp3"
    path.write_bytes(whole[: len(whole) // 2])
    done = threading.Event()
    failures: list[BaseException] = []

    def decode() -> None:
        try:
            for _ in range(20):
                load_audio(path, RATE)
        except BaseException as err:  # reported below: a thread's exception is otherwise lost
            failures.append(err)
        finally:
            done.set()

    capfd.readouterr()
    with warnings.catch_warnings():  # process-wide: set once here, not in the thread
        warnings.simplefilter("ignore")
        worker = threading.Thread(target=decode)
        worker.start()
        written = 0
        while not done.is_set():
            os.write(2, b"log line\n")
            written += 1
            time.sleep(0.0005)
        worker.join()
    assert failures == []
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert written > 0 and err.count("log line\n") == written and err.endswith("after\n")


@pytest.mark.parametrize(("subtype", "rate"), [("VORBIS", RATE), ("OPUS", 48000)])
def test_a_cut_ogg_keeps_its_whole_pages_with_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str], subtype: str, rate: int) -> None:
    """An Ogg stream states no length up front (libsndfile takes it from the last whole page): a cut
    Ogg file is told by its last page, which lacks the end-of-stream flag (voxkit/audio/ogg.py); its
    whole pages are kept. Cut inside its headers it is one error."""
    whole = _encoded("OGG", subtype, rate)
    cut, stub = tmp_path / "cut.ogg", tmp_path / "stub.ogg"
    cut.write_bytes(whole[: len(whole) * 6 // 10])
    stub.write_bytes(whole[: len(whole) // 10])
    capfd.readouterr()
    with pytest.warns(VoxkitWarning, match=r"cut\.ogg is truncated or damaged: it decodes to .* s, its end is missing"):
        assert 0 < load_audio(cut, RATE).shape[0] < 3 * RATE
    with pytest.raises(AudioError, match=r"^cannot decode audio .*stub\.ogg: "):
        load_audio(stub, RATE)
    assert capfd.readouterr().err == ""


def test_paths_leave_no_descriptor_open(tmp_path: Path) -> None:
    """A path is opened by voxkit (one descriptor for libsndfile and the header checks) and closed
    again on every way out: decoded, truncated, undecodable."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counting open descriptors needs /proc")
    whole = _encoded("FLAC", "PCM_16")
    (tmp_path / "cut.flac").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "bad.flac").write_bytes(b"fLaC" + bytes(500))
    sf.write(tmp_path / "ok.wav", _tone(), RATE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            load_audio(tmp_path / "ok.wav", RATE)
            load_audio(tmp_path / "cut.flac", RATE)
            with pytest.raises(AudioError):
                load_audio(tmp_path / "bad.flac", RATE)
    # what is open on the test's files (a count of all descriptors moved when the garbage collector
    # closed another test's file in between)
    assert _open_under(tmp_path) == []


def _open_under(folder: Path) -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used, closed by now
            continue
    return [t for t in targets if t.startswith(str(folder))]


@needs_mp3
def test_transcribe_prints_one_line_per_truncated_file(model_dir: Path, tmp_path: Path) -> None:
    """The command's stderr (file descriptor 2, where libmpg123 wrote) holds voxkit's lines and nothing else."""
    flac, mp3 = _encoded("FLAC", "PCM_16"), _encoded("MP3", "MPEG_LAYER_III")
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) * 6 // 10])
    (tmp_path / "cut.mp3").write_bytes(mp3[: len(mp3) * 6 // 10])
    run = subprocess.run([sys.executable, "-m", "voxkit.cli.main", "transcribe", str(tmp_path / "cut.flac"),
                          str(tmp_path / "cut.mp3"), "--model", str(model_dir), "-f", "txt"],
                         capture_output=True, text=True, check=True)
    lines = [line for line in run.stderr.splitlines() if not line.startswith("# ")]  # "# NAME" heads each transcript
    assert len(lines) == 2, run.stderr
    assert lines[0].startswith(f"voxkit transcribe: warning: {tmp_path / 'cut.flac'} is truncated or damaged: it decodes to ")
    assert lines[1].startswith(f"voxkit transcribe: warning: {tmp_path / 'cut.mp3'} is truncated: its header promises 3.00 s")


def test_a_flac_whose_header_gives_no_length_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    """A FLAC written to a pipe (total samples 0 in STREAMINFO): libsndfile reports 2^63 - 1 frames and
    cannot read it; the error said "array is too big"."""
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(np.arange(RATE) / 5)).astype(np.float32), RATE, format="FLAC")
    data = bytearray(buf.getvalue())
    assert data[:4] == b"fLaC"
    fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # STREAMINFO's 36-bit total samples set to 0: unknown
    data[18:26] = fields.to_bytes(8, "big")
    path = tmp_path / "piped.flac"
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=r"piped\.flac: its header gives no length .* ffmpeg -i .*piped\.flac piped\.wav$"):
        load_audio(path, RATE)


def test_a_flac_damaged_in_the_middle_says_so_and_keeps_the_start(tmp_path: Path) -> None:
    """The decoder stops at the damage as it does at a cut: the warning names both, and says the rest is left out."""
    data = bytearray(_encoded("FLAC", "PCM_16"))
    data[len(data) // 3 : len(data) // 3 + 200] = bytes(200)
    path = tmp_path / "mid.flac"
    path.write_bytes(bytes(data))
    with pytest.warns(VoxkitWarning, match=r"mid\.flac is truncated or damaged: it decodes to .* of the 3\.00 s its header "
                                           r"promises, the rest is left out"):
        wav = load_audio(path, RATE)
    assert 0 < wav.shape[0] < 1.5 * RATE


@needs_mp3
def test_the_length_of_an_mp3_without_a_length_tag_is_counted_not_estimated(tmp_path: Path) -> None:
    """A manifest's duration comes from audio_info: the header's estimate (1.56 s for this 3 s
    file) would batch and score the clip as half its length."""
    from voxkit.audio.io import audio_duration, audio_info

    whole = _encoded("MP3", "MPEG_LAYER_III")
    path = tmp_path / "untagged.mp3"
    path.write_bytes(_untagged(whole))
    decoded = load_audio(path, RATE).shape[0]
    assert audio_info(path) == (RATE, decoded, 1)
    assert audio_duration(path) == pytest.approx(decoded / RATE)
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(whole)
    assert audio_info(tagged) == (RATE, 3 * RATE, 1)  # the tag's exact count, no decoding


class _SlowFile(io.BytesIO):
    """A file whose reads take a while (a network disk): the pipe's copier is mid-read at times."""

    def read(self, n: int | None = -1, /) -> bytes:
        time.sleep(0.05)
        return super().read(n)


@needs_mp3
def test_a_decoder_that_cannot_open_leaves_no_thread_reading_the_source() -> None:
    """The copier was left running when libsndfile refused the bytes; the caller then closed the
    file (or its descriptor, whose number the next open reuses) while the copier still read it."""
    junk = _SlowFile(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 2048)  # 512 KB: many reads
    with pytest.raises(AudioError, match="cannot decode audio"):
        load_audio(junk, RATE)
    assert not [t for t in threading.enumerate() if t.name == "voxkit-audio-pipe"]


@needs_mp3
def test_a_huge_max_seconds_on_an_untagged_mp3_allocates_what_decodes(tmp_path: Path) -> None:
    """The head buffer was allocated for the whole max_seconds up front: 1e8 s asked for 6 TB."""
    path = tmp_path / "untagged.mp3"
    path.write_bytes(_untagged(_encoded("MP3", "MPEG_LAYER_III")))
    head, duration = load_head(path, None, RATE, "test", 1e8)
    np.testing.assert_array_equal(head.numpy(), load_audio(path, RATE).numpy())
    assert duration == pytest.approx(head.shape[0] / RATE)


@needs_mp3
def test_a_head_read_survives_sigpipe_at_its_default(tmp_path: Path) -> None:
    """The copier learns that the decoder stopped from EPIPE; a program that restored SIGPIPE's
    default (as `| head` scripts do) was killed by the signal instead, with no message."""
    long = io.BytesIO()  # far more than a pipe holds, so the copier still writes when the decoder stops
    noise = np.random.default_rng(1).standard_normal((30 * 44100, 2)).astype(np.float32) * 0.1
    sf.write(long, noise, 44100, format="MP3", subtype="MPEG_LAYER_III")
    path = tmp_path / "untagged.mp3"
    path.write_bytes(_untagged(long.getvalue()))
    assert path.stat().st_size > 4 * 65536
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "from voxkit.audio.io import load_audio\n"
        f"print(load_audio({str(path)!r}, 16000, max_seconds=0.5).shape[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.strip() == str(RATE // 2)


def _id3v2(size: int) -> bytes:
    """An ID3v2.3 tag of ``size`` bytes after its header (padding: what cover art takes)."""
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + synchsafe + bytes(size)


@needs_mp3
def test_an_untagged_mp3_with_cover_art_decodes_and_counts(tmp_path: Path) -> None:
    """libsndfile cannot skip an ID3v2 tag of tens of KB from a pipe ("Format not recognised"):
    the tag is skipped before the bytes go into it."""
    from voxkit.audio.io import audio_info

    plain = _untagged(_encoded("MP3", "MPEG_LAYER_III"))
    path = tmp_path / "art.mp3"
    path.write_bytes(_id3v2(70_000) + plain)
    reference = load_audio(io.BytesIO(plain), RATE)
    np.testing.assert_array_equal(load_audio(path, RATE).numpy(), reference.numpy())
    assert audio_info(path) == (RATE, reference.shape[0], 1)


@needs_mp3
def test_audio_info_counts_a_cut_untagged_mp3_like_load_audio(tmp_path: Path) -> None:
    """The count read 65,536 frames at a time and lost the read that met the cut: a cut clip of
    under 4 s counted 0 frames ("audio is empty") while load_audio decodes most of it."""
    from voxkit.audio.io import audio_info

    whole = _untagged(_encoded("MP3", "MPEG_LAYER_III"))
    path = tmp_path / "cut.mp3"
    path.write_bytes(whole[: len(whole) * 6 // 10])
    with pytest.warns(VoxkitWarning, match="truncated or damaged"):
        decoded = load_audio(path, RATE).shape[0]
    assert audio_info(path) == (RATE, decoded, 1) and decoded > RATE


@needs_mp3
def test_the_rate_of_an_untagged_mp3_is_read_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The codec and TTS evaluations want a clip's rate only: reading it must not count frames."""
    from voxkit.audio import io as audio_io

    path = tmp_path / "untagged.mp3"
    path.write_bytes(_untagged(_encoded("MP3", "MPEG_LAYER_III")))

    def no_decoding(stream: object) -> None:
        raise AssertionError("decoded to read the rate")

    monkeypatch.setattr(audio_io, "count_frames", no_decoding)
    assert audio_io.audio_rate(path) == RATE
