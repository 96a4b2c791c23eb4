"""Audio sources that yield 16 kHz mono float32 chunks: files, stdin (raw PCM or WAV), microphone.

Live sources arrive in pieces, so resampling is done block by block with overlap: each block is
resampled together with ``CONTEXT`` input samples on both sides and only the outputs belonging to
the block are kept. This equals whole-signal resampling up to the sinc filter's tiny tails.
"""

from __future__ import annotations

import math
import sys
import wave
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import torch

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.errors import AudioError

TARGET_RATE = ASR_SAMPLE_RATE
RAW_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4"), "u8": np.dtype("u1")}


def _to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype.kind == "i":
        return data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    return data.astype(np.float32)


class StreamResampler:
    """Resample a stream chunk by chunk (overlap on both sides; output lags by CONTEXT input samples)."""

    CONTEXT = 96

    def __init__(self, orig_rate: int, target_rate: int = TARGET_RATE) -> None:
        g = math.gcd(orig_rate, target_rate)
        self.orig, self.target = orig_rate, target_rate
        self.unit = orig_rate // g  # input samples per whole number of output samples
        self.ctx = -(-self.CONTEXT // self.unit) * self.unit
        self.buffer = np.zeros(self.ctx, np.float32)  # left context (zeros before the start)

    def _resample(self, x: np.ndarray) -> np.ndarray:
        import torchaudio.functional as AF

        return AF.resample(torch.from_numpy(x), self.orig, self.target).numpy()

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self.orig == self.target:
            return samples
        self.buffer = np.concatenate([self.buffer, samples.astype(np.float32, copy=False)])
        usable = (len(self.buffer) - 2 * self.ctx) // self.unit * self.unit  # block with context on both sides
        if usable <= 0:
            return np.zeros(0, np.float32)
        window = self.buffer[: usable + 2 * self.ctx]
        out = self._resample(window)
        ratio = self.target / self.orig
        kept = out[int(self.ctx * ratio) : int((self.ctx + usable) * ratio)]
        self.buffer = self.buffer[usable:]
        return kept

    def flush(self) -> np.ndarray:
        if self.orig == self.target:
            return np.zeros(0, np.float32)
        tail = len(self.buffer) - self.ctx
        if tail <= 0:
            return np.zeros(0, np.float32)
        padded = np.concatenate([self.buffer, np.zeros(self.ctx + (-tail % self.unit), np.float32)])
        out = self._resample(padded)
        ratio = self.target / self.orig
        return out[int(self.ctx * ratio) : int(self.ctx * ratio) + int(round(tail * ratio))]


def read_raw(stream: BinaryIO, fmt: str, sample_rate: int, channels: int = 1, block_seconds: float = 0.1) -> Iterator[np.ndarray]:
    """Raw interleaved PCM from a byte stream; a truncated final frame is dropped, not fatal."""
    if fmt not in RAW_FORMATS:
        raise AudioError(f"unknown raw format {fmt!r} (choose from {', '.join(RAW_FORMATS)})")
    if sample_rate <= 0 or channels <= 0:
        raise AudioError("--sample-rate and --channels must be positive")
    dtype = RAW_FORMATS[fmt]
    frame = dtype.itemsize * channels
    resampler = StreamResampler(sample_rate)
    block = max(frame, int(sample_rate * block_seconds) * frame)
    pending = b""
    while True:
        data = stream.read(block)
        if not data:
            break
        data = pending + data
        whole = len(data) // frame * frame
        pending = data[whole:]
        samples = _to_float(np.frombuffer(data[:whole], dtype=dtype).reshape(-1, channels)).mean(axis=1)
        out = resampler.push(samples)
        if out.size:
            yield out
    if pending:
        print(f"voxkit: dropped {len(pending)} trailing bytes (an incomplete {fmt} frame)", file=sys.stderr)
    out = resampler.flush()
    if out.size:
        yield out


def read_wav_stream(stream: BinaryIO, block_seconds: float = 0.1) -> Iterator[np.ndarray]:
    """A WAV file arriving on a pipe (integer PCM), decoded as it comes."""
    try:
        wav = wave.open(stream, "rb")  # noqa: SIM115 - closed below
    except (wave.Error, EOFError) as err:
        reason = str(err) or "the header ends early"  # EOFError carries no message
        raise AudioError(f"stdin is not a readable PCM WAV stream ({reason}); for raw samples use --format s16le") from None
    with wav:
        width, rate, channels = wav.getsampwidth(), wav.getframerate(), wav.getnchannels()
        dtype = {1: np.dtype("u1"), 2: np.dtype("<i2"), 4: np.dtype("<i4")}.get(width)
        if dtype is None:
            raise AudioError(f"unsupported WAV sample width {8 * width} bits on stdin")
        resampler = StreamResampler(rate)
        frames = max(1, int(rate * block_seconds))
        while True:
            try:
                data = wav.readframes(frames)
            except (wave.Error, EOFError):
                break  # truncated stream: keep what arrived
            if not data:
                break
            whole = len(data) // (width * channels) * width * channels
            samples = _to_float(np.frombuffer(data[:whole], dtype=dtype).reshape(-1, channels)).mean(axis=1)
            out = resampler.push(samples)
            if out.size:
                yield out
        out = resampler.flush()
        if out.size:
            yield out


def read_stdin(fmt: str, sample_rate: int, channels: int = 1) -> Iterator[np.ndarray]:
    """``-`` on the command line: WAV (``fmt='wav'`` or auto-detected RIFF header) or raw PCM."""
    stream = sys.stdin.buffer
    if fmt == "auto":
        head = stream.peek(4)[:4] if hasattr(stream, "peek") else b""
        fmt = "wav" if head == b"RIFF" else "s16le"
    if fmt == "wav":
        return read_wav_stream(stream)
    return read_raw(stream, fmt, sample_rate, channels)


def read_microphone(block_seconds: float = 0.08, device: str | int | None = None) -> Iterator[np.ndarray]:
    """16 kHz mono blocks from the default (or given) input device, until interrupted.

    Checks for the package and a device before returning, so that a missing microphone is
    reported as a usage error rather than midway through a run.
    """
    try:
        import sounddevice as sd
    except (ImportError, OSError) as err:
        raise AudioError(f"--mic needs the 'sounddevice' package and PortAudio (pip install 'voxkit[mic]'): {err}") from None
    try:
        info = sd.query_devices(device, "input")
    except Exception as err:  # no device, or PortAudio cannot list devices
        raise AudioError(f"no microphone available: {err}") from None
    rate = int(info["default_samplerate"])

    def blocks() -> Iterator[np.ndarray]:
        resampler = StreamResampler(rate)
        block = int(rate * block_seconds)
        with sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=device, blocksize=block) as mic:
            while True:
                data, _ = mic.read(block)
                out = resampler.push(data[:, 0])
                if out.size:
                    yield out

    return blocks()
