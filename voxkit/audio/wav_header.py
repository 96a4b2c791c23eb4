"""The header of a WAV stream arriving on a pipe, read without seeking.

Why not the standard ``wave`` module: it reads plain integer PCM of 8, 16 and 32 bits only, so the
WAVs that ffmpeg writes to a pipe for anything but 16-bit mono (WAVE_FORMAT_EXTENSIBLE for 24-bit,
float or more than two channels) and every float WAV were refused on stdin while the same files
worked as paths. Nor libsndfile: it seeks in a WAV's header, and a pipe cannot seek. The RIFF size
is ignored and the data size is used only when known: a pipe writer writes 0xFFFFFFFF (ffmpeg) or 0,
and then the samples run to the end of the stream.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from voxkit.audio.io import pcm_to_float
from voxkit.errors import AudioError

PCM, IEEE_FLOAT, EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
MAX_SKIPPED_CHUNK = 1 << 24  # a "LIST"/"bext" chunk before the data is small; more is not a WAV header


class HeaderEnded(AudioError):
    """The stream ended inside the WAV header."""


@dataclasses.dataclass(frozen=True)
class WavFormat:
    rate: int
    channels: int
    bits: int
    is_float: bool
    data_bytes: int | None = None  # the data chunk's size; None when the writer did not know it (0 or 0xFFFFFFFF)

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8

    def decode(self, data: bytes) -> np.ndarray:
        """Whole frames of ``data`` -> float32 mono [n] (channels averaged)."""
        width = self.bits // 8
        whole = len(data) // self.frame_bytes * self.frame_bytes
        raw = np.frombuffer(data[:whole], dtype=np.uint8)
        if self.is_float:
            samples = raw.view("<f4" if self.bits == 32 else "<f8").astype(np.float32)
        elif self.bits == 24:  # no numpy type: sign-extend three little-endian bytes into int32
            b = raw.reshape(-1, 3).astype(np.int32)  # [n * C, 3]
            value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            samples = (np.where(value >= 1 << 23, value - (1 << 24), value) / float(1 << 23)).astype(np.float32)
        else:
            samples = pcm_to_float(raw.view({1: "u1", 2: "<i2", 4: "<i4"}[width]))
        return samples.reshape(-1, self.channels).mean(axis=1)  # [n]


def read_wav_header(stream: object) -> WavFormat:
    """Read up to the start of the samples; the stream is left at the first sample byte."""
    riff = _exact(stream, 12)
    if riff[:4] not in (b"RIFF", b"RF64") or riff[8:12] != b"WAVE":
        raise AudioError("stdin does not start with a RIFF/WAVE header")
    fmt: WavFormat | None = None
    while True:
        chunk = _exact(stream, 8)
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"data":
            if fmt is None:
                raise AudioError("the WAV stream has no 'fmt ' chunk before its samples")
            # a file piped whole knows its size, and chunks after the samples (LIST) are not audio
            return dataclasses.replace(fmt, data_bytes=None if size in (0, 0xFFFFFFFF) else size)
        if name == b"fmt ":
            fmt = _parse_fmt(_exact(stream, size))
            if size % 2:
                _exact(stream, 1)
            continue
        if size > MAX_SKIPPED_CHUNK:
            raise AudioError(f"the WAV stream has a {size}-byte {name!r} chunk before its samples: not a WAV header")
        _exact(stream, size + size % 2)  # chunks are padded to an even size


def _parse_fmt(body: bytes) -> WavFormat:
    if len(body) < 16:
        raise AudioError("the WAV stream's 'fmt ' chunk is too short")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # the first two bytes of the sub-format GUID
    if tag not in (PCM, IEEE_FLOAT):
        raise AudioError(f"the WAV stream holds format {tag:#06x}, not PCM or float; "
                         "decode it on the way (ffmpeg -i IN -f wav -c:a pcm_s16le - | voxkit transcribe -)")
    is_float = tag == IEEE_FLOAT
    if (is_float and bits not in (32, 64)) or (not is_float and bits not in (8, 16, 24, 32)):
        raise AudioError(f"unsupported WAV sample format on stdin: {bits}-bit {'float' if is_float else 'PCM'}")
    if channels < 1 or rate < 1:
        raise AudioError(f"the WAV stream's header gives {channels} channels at {rate} Hz")
    return WavFormat(rate=rate, channels=channels, bits=bits, is_float=is_float)


def _exact(stream: object, n: int) -> bytes:
    out = b""
    while len(out) < n:
        more = stream.read(n - len(out))  # type: ignore[attr-defined]
        if not more:
            raise HeaderEnded("stdin is not a readable WAV stream (the header ends early); for raw samples use --format s16le")
        out += more
    return out
