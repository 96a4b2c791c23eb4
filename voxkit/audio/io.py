"""Audio I/O: read anything soundfile decodes, as float32 mono (or multichannel) at a given rate, and
bring in-memory arrays (either channel layout, integer PCM) to the same float32 mono.

Why soundfile + torchaudio.functional.resample: soundfile bundles libsndfile (wav/flac/ogg/mp3)
without ffmpeg, and torchaudio's resampler is a plain tensor op — no numba compile (librosa) in the
loading path, which the data loader and the CLI both hit on every file.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shlex
from typing import BinaryIO

import numpy as np
import torch

from voxkit.audio.mp3 import MP3_FRAME, count_frames, decode_to_end, is_mp3, quiet_stderr
from voxkit.audio.ogg import CAPTURE, chain_info, file_ends_whole, find_chain
from voxkit.audio.promise import estimated_frames, mp3_tagged, read_head, read_into, rewound, warn_truncated, wav_promise
from voxkit.audio.resample import resample  # noqa: F401  (the loaders' resampler, imported from here by callers)
from voxkit.checks import is_number, is_whole
from voxkit.errors import AudioError, warn

Source = str | os.PathLike | BinaryIO
AudioInput = str | os.PathLike | BinaryIO | bytes | bytearray | memoryview | np.ndarray | torch.Tensor | list[float]
"""What the Python APIs take as audio: a file (path, open binary file, or its bytes) or samples
(numpy, torch, a list of floats) with their rate."""

MAX_ARRAY_CHANNELS = 8
"""Most channels an in-memory array may have: the shorter axis of a 2-D array is its channel axis."""


MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000
"""Rates an in-memory array may be given at: telephone speech to the fastest consumer converters."""

FLOAT_PEAK_WARNING = 8.0
"""Float samples peaking above this are integer PCM stored as float, not overshoot (see :func:`warn_if_unscaled`)."""

HEAD_MARGIN_S = 0.05
"""Decoded past the end of a head (:func:`load_head`): the resampler's sinc kernel reaches a dozen
input samples past the last output sample; 50 ms covers it at every rate."""

READABLE = "WAV, FLAC, MP3, Ogg (Vorbis, Opus), AIFF and the other formats of libsndfile"
"""What a file may be: libsndfile's formats (M4A/AAC and WebM are not among them)."""

UNKNOWN_LENGTH = 2**62
"""A frame count libsndfile reports for a file whose header gives none (2^63 - 1: a FLAC written to a
pipe); it then fails on the seek that follows every read, and decoding it whole asks for exabytes."""


class _NoLength(Exception):
    """A file whose header gives no length (see :data:`UNKNOWN_LENGTH`)."""


def check_sample_rate(rate: object, name: str = "sample_rate") -> int:
    """``rate`` as a whole number of Hz that audio can have; an :class:`AudioError` otherwise.

    Why a range and not just > 0: a rate in kHz (16) or another variable passed by mistake is
    otherwise resampled into minutes or hours of noise that the recogniser then transcribes.
    """
    whole = is_whole(rate) or (is_number(rate) and float(rate).is_integer())  # numpy's float32 too
    if not whole or rate <= 0:  # type: ignore[operator]
        raise AudioError(f"{name} must be a positive whole number of Hz, got {rate!r}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        hint = f" ({name} is in Hz, not kHz)" if rate < MIN_SAMPLE_RATE else ""
        given = f"{name} {int(rate)}" if name.startswith("-") else f"{name}={int(rate)}"  # a CLI flag or an argument
        raise AudioError(f"{given} is not an audio rate{hint}: expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    return int(rate)


def warn_if_unscaled(samples: np.ndarray, where: str) -> bool:
    """Warn when float samples look like integer PCM cast to float (int16 values, not [-1, 1]);
    True when it warned (a stream warns once, not at every chunk).

    Such audio is not refused (it is a valid float array) but every sample clips in the model's
    front end, so the transcript is noise; the usual cause is ``wav.astype(np.float32)`` without
    the division by 32768. ``max``/``min`` reduce without a temporary (this runs on live chunks).
    """

    peak = max(float(samples.max()), -float(samples.min())) if samples.size else 0.0
    if peak > FLOAT_PEAK_WARNING:
        warn(f"{where}: float samples peak at {peak:.0f}, expected [-1, 1]: integer PCM cast to float? "
             "divide int16 values by 32768 (or pass the int16 array itself)")
        return True
    return False


def _name(source: Source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")


def pcm_to_float(data: np.ndarray) -> np.ndarray:
    """Samples as float32, integer PCM scaled to [-1, 1).

    Integer audio (int16 from a WAV reader or a sound card, int32, uint8) holds the same signal as
    float audio at 2^(bits-1) times the scale; read as float it would be that many times too loud
    and the recogniser would hear only clipping. Signed types are divided by 2^(bits-1); unsigned
    ones are centred first (uint8's silence is 128). Floats are only cast. 64-bit integers are no
    PCM format (they are what a list of Python ints becomes): scaled by 2^63 they would be silence,
    so they are refused.
    """
    kind = data.dtype.kind
    if kind == "f":
        return data.astype(np.float32, copy=False)
    if kind in "iu" and data.dtype.itemsize > 4:
        raise AudioError(f"{data.dtype} is not a PCM sample type (a list of Python ints becomes it): give float samples "
                         "in [-1, 1] or int16/int32 PCM, e.g. np.array(samples, np.int16)")
    if kind in "iu":
        half = float(2 ** (8 * data.dtype.itemsize - 1))
        centred = data.astype(np.float32) - (half if kind == "u" else 0.0)
        return centred / half
    raise AudioError(f"audio samples must be integers or floats, got {data.dtype}")


def as_float_samples(samples: np.ndarray | torch.Tensor) -> np.ndarray:
    """numpy or torch samples of any shape, on any device, as a float32 numpy array (integer PCM
    scaled by :func:`pcm_to_float`)."""
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu()
        samples = (samples.float() if samples.is_floating_point() else samples).numpy()  # bfloat16 has no numpy type
    return pcm_to_float(np.asarray(samples))


def array_to_mono(samples: np.ndarray | torch.Tensor, *, max_channels: int = MAX_ARRAY_CHANNELS) -> np.ndarray:
    """An in-memory signal as float32 mono samples [T] (integers scaled, channels averaged).

    2-D arrays come in both layouts: [T, C] from soundfile and sounddevice (frames first), [C, T]
    from torchaudio and librosa. The channel axis is the one with at most ``max_channels`` entries
    and the time axis the one with more; an array where both or neither axis could be the channels
    is refused rather than guessed, because the wrong guess turns a recording into a handful of
    many-channel "samples" and the transcript silently comes back empty.
    Raises :class:`AudioError` for other shapes, empty or non-finite audio.
    """
    data = as_float_samples(samples)
    if data.ndim not in (1, 2):
        raise AudioError(f"audio arrays must be [T], [T, C] or [C, T], got shape {tuple(data.shape)}")
    if data.size == 0:
        raise AudioError(f"audio is empty (shape {tuple(data.shape)})")
    if data.ndim == 2:
        rows, cols = data.shape
        if cols <= max_channels < rows:
            data = data.mean(axis=1)  # [T, C] -> [T]
        elif rows <= max_channels < cols:
            data = data.mean(axis=0)  # [C, T] -> [T]
        else:
            raise AudioError(
                f"cannot tell channels from samples in a {rows}x{cols} array: give [T] samples, or [T, C] / [C, T] "
                f"with 1..{max_channels} channels and more than {max_channels} samples"
            )
    if not np.isfinite(data).all():
        raise AudioError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(data)


def load_audio(source: Source, sample_rate: int, *, mono: bool = True, max_seconds: float | None = None) -> torch.Tensor:
    """Decode ``source`` to float32 in [-1, 1]: [T] when ``mono`` (channels averaged), else [C, T].

    ``max_seconds`` keeps only the start of the file (see :func:`load_head`). Raises
    :class:`AudioError` for a missing, empty, undecodable or non-finite input.
    """
    return _load_file(source, sample_rate, mono, max_seconds)[0]


def _load_file(source: Source, sample_rate: int, mono: bool, max_seconds: float | None) -> tuple[torch.Tensor, float]:
    """:func:`load_audio` and the file's whole duration in seconds (what it holds, not what it was cut to)."""
    import soundfile as sf

    name = _name(source)
    _check_seconds(max_seconds, name)
    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        if os.path.isdir(source):
            raise AudioError(f"{name} is a folder, not an audio file")
        if os.path.exists(source):  # a device, a named pipe, a socket: libsndfile needs a file it can seek in
            raise AudioError(f"{name} is not a regular file; to read a stream, pipe it to standard input (-)")
        raise AudioError(f"audio file not found: {name}")
    if not isinstance(source, (str, os.PathLike)):
        source = _open_file_object(source, name)
    start = _tell(source)
    src: BinaryIO | int = source  # type: ignore[assignment]
    if isinstance(source, (str, os.PathLike)):
        # opened once: libsndfile decodes from this descriptor, and the first bytes read here serve
        # the MP3 sniff and the WAV header check (opening and parsing the path a second time made
        # the check a noticeable part of loading a short WAV)
        try:
            src = os.open(source, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as err:
            raise AudioError(f"cannot decode audio {name}: {err.strerror}") from None
    try:
        head = read_head(src, start)  # inside the try: an interrupt here must not leak the descriptor
        mp3 = is_mp3(head)
        chain = find_chain(src, start, head)  # a chained Ogg file: its logical streams one after another
        # an MP3 without a length tag is decoded from a pipe: from a file libsndfile stops at
        # libmpg123's estimate of its length, a fraction of a variable-bitrate file
        tagged = mp3_tagged(src, start) if mp3 else None
        piped = tagged is False
        try:
            with quiet_stderr() if mp3 else contextlib.nullcontext():
                if piped:
                    margin = None if max_seconds is None else max_seconds + HEAD_MARGIN_S
                    data, sr, stopped, more = decode_to_end(rewound(src, start), margin)  # type: ignore[arg-type]  # [T, C]
                    # a head read does not decode the rest: its length is libmpg123's estimate
                    total, container = max(len(data), estimated_frames(src, start) if more else 0), "MP3"
                elif chain is None:
                    with sf.SoundFile(src, closefd=False) as fh:
                        sr, total, container = int(fh.samplerate), int(fh.frames), fh.format
                        if total >= UNKNOWN_LENGTH:
                            raise _NoLength
                        # only the head (and a margin for the resampler's kernel) is decoded: an
                        # hour-long file asked for its first seconds costs those seconds, not the hour
                        asked = total if max_seconds is None else min(total, math.ceil((max_seconds + HEAD_MARGIN_S) * sr))
                        data, stopped = _decode(fh, asked)  # [T, C]
                    if container == "OGG" and not stopped:  # streams that share a serial number: a head read walks
                        whole = max_seconds is None or len(data) < asked
                        chain = find_chain(src, start, head, decoded=whole, walk=not whole)
                if chain is not None:  # each link decoded on its own (voxkit.audio.ogg)
                    margin = None if max_seconds is None else max_seconds + HEAD_MARGIN_S
                    (data, sr, total, stopped), container = chain.decode(sample_rate, mono, margin), "OGG"
        except _NoLength:
            raise AudioError(f"cannot decode audio {name}: its header gives no length (a {container} file written to a pipe?), "
                             f"and libsndfile cannot read such a file; convert it first: {to_wav_command(name)}") from None
        except Exception as err:  # libsndfile raises several types (LibsndfileError, RuntimeError, ...)
            reason = str(getattr(err, "error_string", None) or err)  # libsndfile's reason without the path again
            if reason.startswith("Format not recognised"):  # an M4A voice memo, a WebM clip, a video
                convert = f"; convert other formats first: {to_wav_command(name)}" if isinstance(source, (str, os.PathLike)) else ""
                reason = f"{reason.rstrip('.')} (voxkit reads {READABLE}{convert})"
            elif head.startswith(CAPTURE) and file_ends_whole(src, start) is False:  # cut inside its headers
                reason = f"{reason.rstrip('.')} (it is truncated: it has no Ogg end-of-stream page)"
            raise AudioError(f"cannot decode audio {name}: {reason}") from None
        held = total if piped or chain else len(data) if stopped or len(data) < asked else total  # frames the file holds
        promised, slack, unended = None, max(sr // 100, MP3_FRAME), False
        if container in ("WAV", "WAVEX"):  # WAVEX: WAVE_FORMAT_EXTENSIBLE (24-bit, float or > 2 channels from ffmpeg)
            promised, slack = wav_promise(head, src, start), sr // 100
        elif container == "OGG":  # its header gives no length: the end of a cut file is told by its last page
            unended = not stopped and file_ends_whole(src, start) is False
        elif total > 0 and not piped and (container != "MP3" or (mp3_tagged(src, start) if tagged is None else tagged)):
            promised = total
    finally:
        if isinstance(src, int):
            os.close(src)
    if stopped or unended or (promised is not None and promised - held > slack):
        warn_truncated(name, promised, held, sr, stopped, unended)
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"audio is empty: {name}")
    if not np.isfinite(data).all():
        raise AudioError(f"audio contains NaN or infinite samples: {name}")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    if mono:
        wav = wav.mean(dim=0)  # [T]
    wav = resample(wav, sr, int(sample_rate))  # [..., T']
    if max_seconds is not None:
        wav = wav[..., : round(max_seconds * sample_rate)]  # [..., T'] the margin dropped
    return wav.contiguous(), held / sr


def to_wav_command(name: str, *, beside: bool = False) -> str:
    """The ffmpeg command that converts ``name`` to a WAV in the working folder (``beside``: next
    to it, where an import finds it), quoted so that it runs as pasted ("New Recording 3.m4a");
    never named as the input (a ".wav" that holds another format: ffmpeg refuses to write over
    what it reads)."""
    stem, suffix = os.path.splitext(name if beside else os.path.basename(name))
    target = f"{stem or 'audio'}{'_converted' if suffix.lower() == '.wav' else ''}.wav"
    return f"ffmpeg -i {shlex.quote(name)} {shlex.quote(target)}"


def _check_seconds(seconds: object, where: str) -> None:
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0):
        raise AudioError(f"{where}: max_seconds must be a number of seconds > 0, got {seconds!r}")


def _open_file_object(source: BinaryIO, name: str) -> BinaryIO:
    """An open file object as libsndfile can read it from where it stands.

    Why: libsndfile seeks in what it reads. A pipe (``sys.stdin.buffer``, a socket's file) refused
    the seeks inside a callback, which printed tracebacks and then a wrong reason ("No 'data'
    chunk"); it is read whole here, as an offline transcription reads a file. A closed file, and
    one already read to its end, were "Format not recognised"; each now says what it is.
    """
    if getattr(source, "closed", False):
        raise AudioError(f"{name} is closed: open it again, or pass its path")
    try:
        seekable = bool(source.seekable()) if hasattr(source, "seekable") else hasattr(source, "seek")
    except (OSError, ValueError):
        seekable = False
    if not seekable:
        data = source.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise AudioError(f"{name} gives {type(data).__name__}, not bytes: open audio files in binary mode, open(path, 'rb')")
        if not len(data):
            raise AudioError(f"{name} holds no audio: nothing was left to read in it")
        whole = io.BytesIO(data)
        whole.name = name  # what the messages call it
        return whole
    try:
        at = int(source.tell())
        end = int(source.seek(0, os.SEEK_END))
        source.seek(at)
    except (AttributeError, OSError, TypeError, ValueError):
        return source
    if 0 < end <= at:
        raise AudioError(f"{name} is at its end (byte {at}): nothing is left to read in it; seek(0) to read it again")
    return source


def _tell(source: Source) -> int | None:
    """Where an open file's audio starts (None for a path, or a stream that cannot tell)."""
    if isinstance(source, (str, os.PathLike)):
        return None
    try:
        return int(source.tell())
    except (AttributeError, OSError, ValueError):
        return None


def _decode(fh: object, frames: int) -> tuple[np.ndarray, bool]:
    """The first ``frames`` frames of an open ``soundfile.SoundFile`` as float32 [T, C], and whether
    a decoder error stopped the reading short of them.

    Why not ``fh.read()``: it drops what decoded before an error (:func:`~voxkit.audio.promise.read_into`
    keeps it). One read, not blocks: soundfile seeks after every read, and each seek makes libmpg123
    re-sync (and say so).
    """
    if frames <= 0:  # a length the header does not give: read what is there
        return fh.read(dtype="float32", always_2d=True), False  # type: ignore[attr-defined]  # [T, C]
    out = np.empty((frames, fh.channels), np.float32)  # type: ignore[attr-defined]  # [T, C]
    held, stopped = read_into(fh, out)
    return out[:held], stopped


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (see :func:`audio_info`)."""
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {os.fspath(path)}")
    rate, frames, _ = audio_info(path)
    return frames / rate if rate else 0.0


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(sample_rate, frames, channels) from the header; raises AudioError like :func:`audio_duration`.

    An MP3 without a length tag is the exception: its header's length is libmpg123's estimate from
    the first frame's bitrate (a 3 s variable-bitrate file read as 1.56 s), which would go into a
    manifest's durations; it is decoded to count its frames (its audio is not kept).
    """
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except Exception as err:
        raise AudioError(f"cannot read audio header of {os.fspath(path)}: {err}") from None
    if info.format == "OGG":  # a chained file: libsndfile's header gives its first stream's length, or none
        return chain_info(path) or (int(info.samplerate), int(info.frames), int(info.channels))
    if info.format == "MP3":
        with open(path, "rb") as fh:
            if mp3_tagged(fh, 0) is False:
                try:
                    with quiet_stderr():
                        return count_frames(fh)
                except Exception as err:  # libsndfile raises several types
                    raise AudioError(f"cannot decode audio {os.fspath(path)}: {getattr(err, 'error_string', None) or err}") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def audio_rate(path: str | os.PathLike) -> int:
    """A file's sample rate from its header alone (never a decode: :func:`audio_info` counts the
    frames of an MP3 without a length tag, which a caller that wants only the rate should not pay)."""
    import soundfile as sf

    try:
        return int(sf.info(os.fspath(path)).samplerate)
    except Exception as err:
        raise AudioError(f"cannot read audio header of {os.fspath(path)}: {err}") from None


def is_file_input(audio: object) -> bool:
    """A path, an open file or a file's bytes (read at the rate its header gives), as opposed to
    samples (which need their rate): where a caller's ``sample_rate`` means something."""
    return isinstance(audio, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(audio, "read")


def load_input(audio: AudioInput, sample_rate: int | None, target_rate: int, where: str, *,
               max_seconds: float | None = None) -> torch.Tensor:
    """Any :data:`AudioInput` as float32 mono [T] at ``target_rate``: the one door of the Python APIs.

    A file is decoded whatever its rate and channels; samples (numpy or torch, a list) are read at
    ``sample_rate`` (None: the caller has no default, so an array without its rate is refused),
    brought to mono by :func:`array_to_mono` and checked by :func:`warn_if_unscaled`. ``where``
    names the calling method in messages. ``max_seconds`` keeps only the start (:func:`load_head`).
    """
    return load_head(audio, sample_rate, target_rate, where, max_seconds)[0]


def load_head(audio: AudioInput, sample_rate: int | None, target_rate: int, where: str,
              seconds: float | None) -> tuple[torch.Tensor, float]:
    """The first ``seconds`` (None: all) of any :data:`AudioInput` as :func:`load_input` reads it
    (float32 mono [T] at ``target_rate``), and the whole input's duration in seconds.

    Why: a caller that keeps only the start (a voice reference of at most 30 s) should not pay for
    the rest. A file is decoded only up to its head plus :data:`HEAD_MARGIN_S` (soundfile decodes
    in order and stops where it is asked to); an array is cut before it is resampled. The result
    is the same as cutting the whole input after loading it.
    """
    _check_seconds(seconds, where)
    if isinstance(audio, str) and "://" in audio and not os.path.exists(audio):
        raise AudioError(f"{where}: {audio!r} is a URL; voxkit reads local files only: download it first, "
                         "then pass the file's path or its bytes")
    if isinstance(audio, io.TextIOBase):  # libsndfile would read str from it and fail in a callback
        raise AudioError(f"{where}: {_name(audio)} is open in text mode: open audio files in binary mode, open(path, 'rb')")
    if isinstance(audio, (str, os.PathLike)) or hasattr(audio, "read"):
        return _load_file(audio, target_rate, True, seconds)  # type: ignore[arg-type]
    if isinstance(audio, (bytes, bytearray, memoryview)):
        if not len(audio):
            raise AudioError(f"{where}: the audio file's bytes are empty (0 bytes)")
        try:
            return _load_file(io.BytesIO(audio), target_rate, True, seconds)  # the contents of an audio file
        except AudioError as err:
            if "Format not recognised" not in str(err):
                raise
            # bytes that are no file are most often raw samples (a socket's PCM, ndarray.tobytes())
            raise AudioError(f"{err}; raw PCM samples are no file: pass them as an array with their rate, "
                             "e.g. np.frombuffer(data, np.int16) and sample_rate") from None
    if not isinstance(audio, (np.ndarray, torch.Tensor, list, tuple)):
        raise AudioError(
            f"{where}: audio must be a path, an open file, the bytes of an audio file, or samples (numpy, torch); "
            f"got {type(audio).__name__}"
        )
    if sample_rate is None:
        raise AudioError(f"{where}: an array of samples needs its sample_rate")
    rate = check_sample_rate(sample_rate)
    samples = array_to_mono(audio)  # [T] float32, integer PCM scaled
    warn_if_unscaled(samples, where)
    duration = samples.shape[0] / rate
    if seconds is not None:
        samples = samples[: math.ceil((seconds + HEAD_MARGIN_S) * rate)]  # [T] the head and the resampler's margin
    wave = resample(torch.from_numpy(samples), rate, target_rate)  # [T']
    if seconds is not None:
        wave = wave[: round(seconds * target_rate)]  # [T'] the margin dropped
    return wave.contiguous(), duration
