"""Audio file I/O: read anything soundfile decodes, as float32 mono (or multichannel) at a given rate.

Why soundfile + torchaudio.functional.resample: soundfile bundles libsndfile (wav/flac/ogg/mp3)
without ffmpeg, and torchaudio's resampler is a plain tensor op — no numba compile (librosa) in the
loading path, which the data loader and the CLI both hit on every file.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import numpy as np
import torch

from voxkit.errors import AudioError

Source = str | os.PathLike | BinaryIO


def _name(source: Source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")


def resample(wav: torch.Tensor, orig_sr: int, sample_rate: int) -> torch.Tensor:
    """Resample along the last axis (band-limited sinc; identity when the rates match)."""
    if orig_sr == sample_rate:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_sr, sample_rate)


def load_audio(source: Source, sample_rate: int, *, mono: bool = True) -> torch.Tensor:
    """Decode ``source`` to float32 in [-1, 1]: [T] when ``mono`` (channels averaged), else [C, T].

    Raises :class:`AudioError` for a missing, empty, undecodable or non-finite input.
    """
    import soundfile as sf

    name = _name(source)
    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        raise AudioError(f"audio file not found: {name}")
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)  # [T, C]
    except Exception as err:  # libsndfile raises several types (LibsndfileError, RuntimeError, ...)
        raise AudioError(f"cannot decode audio {name}: {err}") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"audio is empty: {name}")
    if not np.isfinite(data).all():
        raise AudioError(f"audio contains NaN or infinite samples: {name}")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    if mono:
        wav = wav.mean(dim=0)  # [T]
    return resample(wav, int(sr), int(sample_rate)).contiguous()


def save_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write [T] or [C, T] float audio; the format follows the extension (.wav int16, .flac 16-bit)."""
    import soundfile as sf

    arr = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if arr.ndim == 2:
        arr = arr.T  # [T, C] for soundfile
    if arr.size == 0:
        raise AudioError(f"refusing to write empty audio to {os.fspath(path)}")
    arr = np.clip(arr.astype(np.float32, copy=False), -1.0, 1.0)
    ext = os.path.splitext(os.fspath(path))[1].lower()
    subtype = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}.get(ext)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(os.fspath(path), arr, int(sample_rate), subtype=subtype)


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header only (no decoding)."""
    import soundfile as sf

    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {os.fspath(path)}")
    try:
        info = sf.info(os.fspath(path))
    except Exception as err:
        raise AudioError(f"cannot read audio header of {os.fspath(path)}: {err}") from None
    return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(sample_rate, frames, channels) from the header; raises AudioError like :func:`audio_duration`."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except Exception as err:
        raise AudioError(f"cannot read audio header of {os.fspath(path)}: {err}") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def to_bytes_wav(wav: torch.Tensor, sample_rate: int) -> bytes:
    """Encode mono/multichannel float audio as an in-memory 16-bit wav (for tests and servers)."""
    import soundfile as sf

    buf = io.BytesIO()
    arr = wav.detach().cpu().numpy()
    sf.write(buf, arr.T if arr.ndim == 2 else arr, int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()
