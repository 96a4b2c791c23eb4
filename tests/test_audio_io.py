"""voxkit.audio.io: decoding, downmix, resampling and clear errors for bad input."""

import io
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from voxkit.audio.io import audio_duration, load_audio, save_audio
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
