"""voxkit.audio.io: decoding, downmix, resampling and clear errors for bad input."""

import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voxkit.audio.io import audio_duration, load_audio
from voxkit.audio.write import save_audio
from voxkit.errors import AudioError


def _tone(sr: int, seconds: float = 0.5, freq: float = 440.0) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    return 0.5 * torch.sin(2 * math.pi * freq * t)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_round_trip_and_duration(tmp_path, ext):
    wav = _tone(16000)
    path = tmp_path / f"a.{ext}"
    save_audio(path, wav, 16000)
    back = load_audio(path, 16000)
    assert back.dtype == torch.float32 and back.ndim == 1
    assert abs(back.numel() - wav.numel()) <= 1
    if ext != "ogg":  # lossless: 16-bit quantisation only
        assert torch.allclose(back, wav, atol=1e-3)
    assert audio_duration(path) == pytest.approx(0.5, abs=1e-3)


def test_resample_and_downmix(tmp_path):
    left, right = _tone(22050, 1.0), _tone(22050, 1.0, 880.0)
    path = tmp_path / "stereo.wav"
    save_audio(path, torch.stack([left, right]), 22050)
    mono = load_audio(path, 16000)
    assert mono.shape == (16000,)
    multi = load_audio(path, 24000, mono=False)
    assert multi.shape == (2, 24000)
    # Resampled energy is preserved (band-limited tone well below both Nyquists).
    assert float(multi[0].pow(2).mean()) == pytest.approx(0.125, rel=0.02)


def test_file_like_source():
    buf = io.BytesIO()
    sf.write(buf, _tone(8000).numpy(), 8000, format="WAV")
    buf.seek(0)
    assert load_audio(buf, 16000).numel() == 8000


def test_errors(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav", 16000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(junk, 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty, 16000)
    nan = tmp_path / "nan.wav"
    x = np.zeros(100, np.float32)
    x[5] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(nan, 16000)
    with pytest.raises(AudioError):
        audio_duration(junk)


def test_wav_stream_cut_inside_its_header_says_so():
    from voxkit.audio.stream import read_wav_stream

    whole = io.BytesIO()
    sf.write(whole, _tone(16000).numpy(), 16000, format="WAV", subtype="PCM_16")
    with pytest.raises(AudioError, match="header ends early"):
        next(read_wav_stream(io.BytesIO(whole.getvalue()[:30])))


def test_audio_constants_agree_with_the_design_and_each_other():
    from voxkit.asr import features
    from voxkit.audio import constants as c
    from voxkit.audio.stream import TARGET_RATE

    # DESIGN §2: 16 kHz recognition, 24 kHz codec, one step = 80 ms = 12.5 Hz, 400/160/128 log-mel, 240-sample patches
    assert (c.ASR_SAMPLE_RATE, c.CODEC_SAMPLE_RATE, c.STEP_MS, c.STEPS_PER_SECOND) == (16000, 24000, 80, 12.5)
    assert (c.ASR_SAMPLES_PER_STEP, c.CODEC_SAMPLES_PER_STEP) == (1280, 1920)
    assert (c.MEL_N_FFT, c.MEL_HOP, c.MEL_BINS, c.MEL_FRAMES_PER_STEP) == (400, 160, 128, 8)
    assert (c.CODEC_PATCH, c.CODEC_PATCHES_PER_STEP) == (240, 8)
    assert c.ASR_SAMPLES_PER_STEP == c.MEL_HOP * c.MEL_FRAMES_PER_STEP  # a step holds whole mel frames
    assert c.CODEC_SAMPLES_PER_STEP == c.CODEC_PATCH * c.CODEC_PATCHES_PER_STEP  # and whole codec patches
    assert c.ASR_SAMPLES_PER_STEP / c.ASR_SAMPLE_RATE == c.STEP_SECONDS == c.CODEC_SAMPLES_PER_STEP / c.CODEC_SAMPLE_RATE
    # the recogniser's names and the live sources read the same values
    assert (features.SAMPLE_RATE, features.SAMPLES_PER_STEP, features.HOP, features.N_FFT) == (16000, 1280, 160, 400)
    assert TARGET_RATE == c.ASR_SAMPLE_RATE


def _bytes_of(fmt: str, wav: torch.Tensor, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav.numpy(), sr, format=fmt)
    return buf.getvalue()


def test_stdin_containers_are_told_from_raw_samples():
    from voxkit.audio.stream import HEAD_BYTES, audio_container

    tone = _tone(16000)
    named = {fmt: audio_container(_bytes_of(fmt, tone)[:HEAD_BYTES]) for fmt in ("WAV", "FLAC", "OGG", "MP3")}
    assert {fmt: sig.name if sig else None for fmt, sig in named.items()} == {
        "WAV": "WAV", "FLAC": "FLAC", "OGG": "Ogg (Vorbis/Opus)", "MP3": "MP3"  # libsndfile's MP3 has no ID3 tag
    }
    assert audio_container(b"ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00").name == "MP3"
    assert audio_container(b"\xff\xf1\x50\x80\x00\x1f\xfc\x00\x00\x00\x00\x00").name == "AAC (ADTS)"
    assert audio_container(b"\x00\x00\x00\x20ftypM4A ").name == "MP4/M4A"
    # raw s16le: quiet noise starting with the sample -1 (bytes FF FF) is no MPEG frame header (layer I/II/reserved are not MP3)
    for first in (-1, -2, -257, 0, 1200, -30000):
        raw = np.array([first, 5, -3, 7, 0, 2], "<i2").tobytes()
        assert audio_container(raw) is None, first


def test_float32_votes_tell_float_from_16_bit_samples():
    from voxkit.audio.stream import FLOAT_SHARE, float32_votes

    speech = _tone(16000, 1.0).numpy() * np.linspace(0.01, 1.0, 16000, dtype=np.float32)  # quiet to full scale
    plausible, nonzero = float32_votes(speech.astype("<f4").tobytes())
    assert nonzero == 16000 - 1 and plausible >= FLOAT_SHARE * nonzero  # sin(0) = 0 is skipped
    plausible, nonzero = float32_votes((speech * 32767).astype("<i2").tobytes())
    assert nonzero > 7000 and plausible < 0.2 * nonzero
    assert float32_votes(bytes(4000)) == (0, 0)  # silence decides nothing


def test_read_stdin_auto_puts_the_sniffed_bytes_back():
    from voxkit.audio.stream import read_raw, read_stdin

    pcm = (_tone(16000, 0.3).numpy() * 32767).astype("<i2").tobytes()
    auto = np.concatenate(list(read_stdin("auto", 16000, stream=io.BytesIO(pcm))))
    explicit = np.concatenate(list(read_raw(io.BytesIO(pcm), "s16le", 16000)))
    np.testing.assert_array_equal(auto, explicit)  # no sample lost or shifted by the sniffing
    wav = np.concatenate(list(read_stdin("auto", 16000, stream=io.BytesIO(_bytes_of("WAV", _tone(16000, 0.3))))))
    np.testing.assert_allclose(wav, explicit, atol=1e-4)
    with pytest.raises(AudioError, match=r"FLAC audio.*ffmpeg -i in\.flac -f wav -"):
        read_stdin("auto", 16000, stream=io.BytesIO(_bytes_of("FLAC", _tone(16000))))


@pytest.mark.parametrize(("container", "subtype", "channels", "rate"), [
    ("WAV", "PCM_16", 1, 16000), ("WAV", "PCM_24", 1, 22050), ("WAV", "PCM_32", 2, 44100), ("WAV", "FLOAT", 1, 48000),
    ("WAV", "DOUBLE", 1, 16000), ("WAV", "PCM_U8", 1, 8000), ("WAVEX", "PCM_24", 4, 16000), ("WAVEX", "FLOAT", 2, 44100),
])
def test_wav_stream_reads_what_the_file_path_reads(container: str, subtype: str, channels: int, rate: int) -> None:
    """ffmpeg pipes 24-bit, float and multichannel audio as WAVE_FORMAT_EXTENSIBLE; the wave module
    refused those (and every float WAV) on stdin while the same files worked as paths."""
    from voxkit.audio.stream import read_wav_stream

    tone = _tone(rate).numpy()[: rate // 2]  # [T] 0.5 s
    buf = io.BytesIO()
    sf.write(buf, np.repeat(tone[:, None], channels, axis=1), rate, format=container, subtype=subtype)
    streamed = np.concatenate(list(read_wav_stream(io.BytesIO(buf.getvalue()))))
    np.testing.assert_allclose(streamed, load_audio(io.BytesIO(buf.getvalue()), 16000).numpy(), atol=1e-6)


def test_wav_stream_with_sizes_a_pipe_writer_does_not_know() -> None:
    """RIFF size 0 and data size 0xFFFFFFFF (ffmpeg to a pipe): the samples run to the end; a known
    data size stops before a chunk that follows the samples."""
    import struct

    from voxkit.audio.stream import read_wav_stream

    buf = io.BytesIO()
    sf.write(buf, _tone(16000).numpy()[:8000], 16000, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    known = np.concatenate(list(read_wav_stream(io.BytesIO(bytes(data) + b"LIST\x04\x00\x00\x00abcd"))))
    assert known.shape == (8000,)
    data[4:8] = struct.pack("<I", 0)
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    np.testing.assert_array_equal(np.concatenate(list(read_wav_stream(io.BytesIO(bytes(data))))), known)


def test_save_audio_errors_are_one_line_and_leave_no_partial_file(tmp_path: Path) -> None:
    tone = np.sin(np.arange(1600) / 5).astype(np.float32) * 0.3
    with pytest.raises(AudioError, match=r"unknown audio format '\.xyz'"):
        save_audio(tmp_path / "a.xyz", tone, 16000)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(AudioError, match=r"^cannot write .*file/a\.wav: .*file is a file, not a folder$"):
        save_audio(blocker / "a.wav", tone, 16000)
    target = tmp_path / "keep.wav"
    save_audio(target, tone, 16000)
    before = target.read_bytes()
    with pytest.raises(AudioError, match="refusing to write empty audio"):
        save_audio(target, np.zeros(0, np.float32), 16000)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "keep.wav"]
    save_audio(target, tone[:800], 16000)  # replaced by a complete file
    assert sf.info(target).frames == 800


def test_save_audio_writes_through_a_link_and_keeps_a_replaced_files_mode(tmp_path: Path) -> None:
    tone = np.sin(np.arange(1600) / 5).astype(np.float32) * 0.3
    real, link = tmp_path / "real.wav", tmp_path / "link.wav"
    save_audio(real, tone, 16000)
    real.chmod(0o600)
    link.symlink_to(real)
    save_audio(link, tone[:800], 16000)
    assert link.is_symlink() and sf.info(real).frames == 800
    assert real.stat().st_mode & 0o777 == 0o600


def test_a_format_libsndfile_lacks_says_what_is_read_and_how_to_convert(tmp_path):
    """An M4A voice memo was "Format not recognised." and nothing more."""
    memo = tmp_path / "memo.m4a"
    memo.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(range(256)) * 8)
    with pytest.raises(AudioError) as err:
        load_audio(memo, 16000)
    assert str(err.value) == (f"cannot decode audio {memo}: Format not recognised (voxkit reads WAV, FLAC, MP3, Ogg (Vorbis, Opus), "
                              f"AIFF and the other formats of libsndfile; convert other formats first: ffmpeg -i {memo} memo.wav)")
    with pytest.raises(AudioError, match=r"^cannot decode audio <stream>: Format not recognised \(voxkit reads WAV, .*libsndfile\)$"):
        load_audio(io.BytesIO(memo.read_bytes()), 16000)
    named = tmp_path / "memo.WAV"  # an M4A named .wav: the command must not write over its input
    named.write_bytes(memo.read_bytes())
    with pytest.raises(AudioError, match=r"convert other formats first: ffmpeg -i \S*memo\.WAV memo_converted\.wav\)$"):
        load_audio(named, 16000)
