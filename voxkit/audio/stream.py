"""Audio sources that yield 16 kHz mono float32 chunks: files, stdin (raw PCM or WAV), microphone.

Live sources arrive in pieces, so resampling is done block by block with overlap
(:class:`StreamResampler`): each block is resampled together with the input samples its outputs'
filter reaches on both sides and only the outputs belonging to the block are kept. This equals
whole-signal resampling up to float rounding, with the same length.

Stdin with ``--format auto`` is sniffed from its first bytes (:func:`audio_container`): a WAV
header is decoded as WAV; MP3, Ogg (Vorbis, Opus) and AIFF are decoded as they arrive by libsndfile
reading a pipe (:mod:`voxkit.audio.piped`); FLAC (which libsndfile cannot read from a pipe) and
containers libsndfile does not read are refused with the command that decodes them; anything else
is read as raw s16le. Raw data that is really 32-bit float is recognised by its bytes and warned
about once (:func:`float32_votes`).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import numpy as np
import torch

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.fifo import SampleFifo
from voxkit.audio.io import pcm_to_float as _to_float
from voxkit.audio.resample import DENSE_KERNEL_LIMIT, PolyphaseResampler, dense_kernel_size
from voxkit.errors import AudioError, warn

TARGET_RATE = ASR_SAMPLE_RATE
RAW_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4"), "u8": np.dtype("u1")}


class StreamResampler:
    """Resample a stream chunk by chunk to what :func:`~voxkit.audio.resample.resample` gives for the
    whole signal: the same length, and samples equal up to float rounding.

    Why it keeps its own queue and filter: a live source pushes a chunk every 80-100 ms for hours,
    so the sinc kernel is computed once and the pending samples stay in one :class:`SampleFifo`.
    Rates whose torchaudio kernel is small (:data:`~voxkit.audio.resample.DENSE_KERNEL_LIMIT`) are
    resampled in blocks of whole periods (``unit`` input samples, the input rate divided by the
    rates' gcd) with ``ctx`` input samples of overlap on both sides (``torchaudio.transforms.Resample``,
    the output lags by ``ctx``); the others by :class:`~voxkit.audio.resample.PolyphaseResampler`, which
    computes any run of outputs, so each push returns every output whose filter taps have arrived
    (the output lags by the filter's width) instead of waiting for a period that can be a second long.
    """

    CONTEXT = 96
    """Fewest input samples of overlap in the block path (more where the filter reaches further)."""

    def __init__(self, orig_rate: int, target_rate: int = TARGET_RATE) -> None:
        g = math.gcd(orig_rate, target_rate)
        self.orig, self.target = orig_rate, target_rate
        self.unit = orig_rate // g  # input samples per whole number of output samples
        self.step = target_rate // g  # output samples per ``unit`` input samples
        self._filter: torch.nn.Module | None = None
        self._poly: PolyphaseResampler | None = None
        self.ctx = 0
        if orig_rate != target_rate and dense_kernel_size(orig_rate, target_rate) <= DENSE_KERNEL_LIMIT:
            import torchaudio.transforms as AT

            self._filter = AT.Resample(orig_rate, target_rate, dtype=torch.float32)  # as functional.resample on float32
            reach = max(self.CONTEXT, self._filter.width)  # a block's outputs read this far beyond it
            self.ctx = -(-reach // self.unit) * self.unit
        elif orig_rate != target_rate:
            self._poly = PolyphaseResampler(orig_rate, target_rate)
            self.ctx = self._poly.width
        self.received = 0  # input samples pushed
        self.done = 0  # output samples returned by push (the polyphase path)
        self.offset = 0  # the first pending sample's index in the input with ``ctx`` zeros in front (the polyphase path)
        self.pending = SampleFifo(2 * self.ctx + orig_rate // 5)
        self.pending.append(np.zeros(self.ctx, np.float32))  # left context: zeros before the start

    def _resample(self, x: np.ndarray) -> np.ndarray:
        assert self._filter is not None
        with torch.inference_mode():
            return self._filter(torch.from_numpy(x)).numpy()  # [n * target / orig]

    def _outputs(self, x: np.ndarray, stop: int) -> np.ndarray:
        """The polyphase path's outputs ``done`` to ``stop`` from ``x``, the pending samples (and
        the end's zeros)."""
        assert self._poly is not None
        with torch.inference_mode():
            return self._poly.outputs(torch.from_numpy(x)[None], self.done, stop, self.offset)[0].numpy()  # [stop - done]

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self.orig == self.target:
            return samples
        self.pending.append(samples)
        self.received += samples.shape[0]
        if self._poly is not None:
            # output n reads padded inputs first_tap(n) .. first_tap(n) + 2 * ctx: those up to
            # ``received - ctx`` input samples' worth have all their taps
            stop = self._poly.length(self.received - self.ctx) if self.received > self.ctx else 0
            if stop <= self.done:
                return _EMPTY
            out = self._outputs(self.pending.peek(len(self.pending)), stop)
            drop = self._poly.first_tap(stop) - self.offset  # what the next output no longer reads
            self.pending.pop(drop)
            self.offset += drop
            self.done = stop
            return out
        usable = (len(self.pending) - 2 * self.ctx) // self.unit * self.unit  # block with context on both sides
        if usable <= 0:
            return _EMPTY
        out = self._resample(self.pending.peek(usable + 2 * self.ctx))
        self.pending.pop(usable)
        lead = self.ctx // self.unit * self.step  # outputs of the left context
        return out[lead : lead + usable // self.unit * self.step]

    def flush(self) -> np.ndarray:
        """The rest of the output, as if the stream were followed by silence, to the one-shot
        length ``ceil(received * target / orig)``; the state is kept, so a second flush repeats it."""
        if self.orig == self.target:
            return _EMPTY
        if self._poly is not None:
            stop = self._poly.length(self.received)
            if stop <= self.done:
                return _EMPTY
            reach = self._poly.first_tap(stop - 1) + self._poly.taps - self.offset  # pending samples the last output reads
            held = self.pending.peek(len(self.pending))
            return self._outputs(np.concatenate([held, np.zeros(max(0, reach - held.shape[0]), np.float32)]), stop)
        tail = len(self.pending) - self.ctx
        if tail <= 0:
            return _EMPTY
        padded = np.concatenate([self.pending.peek(len(self.pending)), np.zeros(self.ctx + (-tail % self.unit), np.float32)])
        out = self._resample(padded)
        lead = self.ctx // self.unit * self.step
        rest = -(-tail * self.step // self.unit)  # ceil: pushes returned whole periods, and the one-shot length is a ceiling
        return out[lead : lead + rest]


_EMPTY = np.zeros(0, np.float32)  # what a push that completes no block returns (nothing to write into)


class ByteSource(Protocol):
    """What the readers need of a byte stream: ``read(n)`` returning fewer than n bytes only at its end."""

    def read(self, n: int = -1, /) -> bytes: ...


class Signature(NamedTuple):
    magic: bytes
    name: str
    extension: str  # for the decoding command in the message


MP3 = Signature(b"ID3", "MP3", "mp3")  # an ID3 tag; untagged MP3 is told by its frame header
AAC = Signature(b"", "AAC (ADTS)", "aac")  # told by its frame header
MP4 = Signature(b"", "MP4/M4A", "m4a")  # "ftyp" at offset 4
OGG = Signature(b"OggS", "Ogg (Vorbis/Opus)", "ogg")
AIFF = Signature(b"FORM", "AIFF", "aiff")
# Containers a stream starts with.
SIGNATURES = (
    Signature(b"RIFF", "WAV", "wav"),
    MP3,
    Signature(b"fLaC", "FLAC", "flac"),
    OGG,
    AIFF,
    Signature(b"\x1aE\xdf\xa3", "WebM/Matroska", "webm"),
    Signature(b"#!AMR", "AMR", "amr"),
    Signature(b"caff", "CAF", "caf"),
)
PIPED = (MP3, OGG, AIFF)
"""Containers libsndfile decodes from a pipe as they arrive (FLAC it cannot: "lost sync")."""
FILE_ONLY = ("FLAC", "CAF")
"""Containers libsndfile reads from a file but not from a pipe; the others it does not read at all."""
HEAD_BYTES = 12  # enough for every signature (MP4's "ftyp" sits at offset 4)
FLOAT_CHECK_WORDS = 4096  # non-zero 4-byte words of raw input looked at before deciding "float or not"
FLOAT_SHARE = 0.9  # share of them that must read as float samples in [-1, 1]


def audio_container(head: bytes) -> Signature | None:
    """The audio container a stream's first bytes (``HEAD_BYTES`` of them) open, or None for raw samples.

    MP3 without an ID3 tag starts with a frame header: 11 set sync bits, a version that is not the
    reserved one, layer III, and bitrate and sample-rate fields that hold no reserved value; AAC in
    ADTS frames has 12 sync bits and layer 0. Read as s16le, such a header is a first sample of
    exactly one of -7425, -7169, -3841, -3585, -3329, -3073, -1793, -1537, -1281 or -1025, which a
    raw recording starts with only by rare chance; the message that refuses it names
    ``--format s16le`` as the way out.
    """
    for sig in SIGNATURES:
        if head.startswith(sig.magic):
            return sig
    if head[4:8] == b"ftyp":
        return MP4
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        b1, b2 = head[1], head[2]
        if b1 & 0xF6 == 0xF0 and (b2 >> 2) & 0x0F < 13:  # ADTS: 12 sync bits, layer 00, a listed rate
            return AAC
        version, layer, bitrate, rate = (b1 >> 3) & 3, (b1 >> 1) & 3, b2 >> 4, (b2 >> 2) & 3
        if version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3:  # layer field 01 = layer III
            return MP3
    return None


def container_refusal(head: bytes, command: str, *, whole: bool = False, raw: str | None = "--format s16le") -> str | None:
    """Why stdin's bytes, which start with ``head``, are audio voxkit cannot read from a pipe, in
    the words every command that takes ``-`` uses; None where they can be read (or are no container).

    ``command`` is the command line the message tells the user to pipe WAV into (``voxkit
    transcribe -``, ``voxkit codec encode - OUT``). ``whole``: the command reads all of stdin
    before decoding it (a codes file or a chat question needs the whole clip), so FLAC and CAF,
    which libsndfile reads from memory but not from a pipe, are readable. ``raw``: the flags that
    read the bytes as raw s16le samples, for the rare raw recording whose first sample happens to
    look like an MP3 or AAC frame header (None where the command takes no raw samples).

    Why one function: ``voxkit transcribe -`` and ``voxkit codec encode -`` refused an M4A in
    different words, one of them with the Python API's advice; a user piping the same file into
    either should read the same diagnosis and the same way out.
    """
    kind = audio_container(head)
    if kind is None or kind.name == "WAV" or kind in PIPED or (whole and kind.name in FILE_ONLY):
        return None
    where = "decodes only from files: give the file's path instead of -, or" if kind.name in FILE_ONLY else "cannot decode:"
    message = (f"the data is {kind.name} audio, which voxkit {where} decode it to WAV on the way "
               f"(ffmpeg -i in.{kind.extension} -f wav - | {command})")
    return message if raw is None else f"{message}; if it really is raw s16le samples, add {raw}"


def float32_votes(data: bytes) -> tuple[int, int]:
    """(words that read as float samples in [-1, 1], non-zero words) among ``data``'s 4-byte words.

    Why this tells float32 from s16le: a float32 audio sample (2**-24 <= |x| <= 1) keeps its sign
    and exponent in a narrow band, so almost every non-zero word of float audio passes; read as
    16-bit audio, a word passes only when its second sample lies within 13184..16256 or
    -19584..-16512, which ordinary recordings do for a small share of samples. Zero words are
    skipped: silence is valid in both formats.
    """
    usable = len(data) // 4 * 4
    bits = np.frombuffer(data[:usable], dtype="<u4")
    nonzero = (bits & 0x7FFFFFFF) != 0  # +0.0 and -0.0
    values = np.abs(bits[nonzero].view("<f4"))
    with np.errstate(invalid="ignore"):
        plausible = np.isfinite(values) & (values <= 1.0) & (values >= 2.0**-24)
    return int(plausible.sum()), int(nonzero.sum())


def _warn(message: str) -> None:
    """A :class:`VoxkitWarning`, attributed to the caller outside voxkit (:func:`voxkit.errors.warn`);
    the command line prints it as its own one line (``voxkit transcribe: warning: ...``)."""
    warn(message)


def raw_samples(data: bytes, fmt: str, channels: int = 1) -> tuple[np.ndarray, bytes]:
    """Raw interleaved PCM of :data:`RAW_FORMATS` -> (float32 mono [n], the bytes of a trailing
    partial frame). Integers are scaled to [-1, 1] and channels averaged; NaN or infinite floats
    pass through, for the caller's loader to refuse in one line."""
    dtype = RAW_FORMATS[fmt]
    whole = len(data) // (dtype.itemsize * channels) * (dtype.itemsize * channels)
    with np.errstate(invalid="ignore", over="ignore"):
        samples = _to_float(np.frombuffer(data[:whole], dtype=dtype).reshape(-1, channels)).mean(axis=1)  # [n]
    return samples.astype(np.float32, copy=False), data[whole:]


def read_raw(
    stream: ByteSource, fmt: str, sample_rate: int, channels: int = 1, block_seconds: float = 0.1, *, check_float: bool = False
) -> Iterator[np.ndarray]:
    """Raw interleaved PCM from a byte stream; a truncated final frame is dropped, not fatal.

    ``check_float``: the format was guessed (``--format auto``), so warn once if the first
    ``FLOAT_CHECK_WORDS`` non-zero words look like 32-bit float samples (:func:`float32_votes`).
    """
    if fmt not in RAW_FORMATS:
        raise AudioError(f"unknown raw format {fmt!r} (choose from {', '.join(RAW_FORMATS)})")
    if sample_rate <= 0 or channels <= 0:
        raise AudioError("--sample-rate and --channels must be positive")
    dtype = RAW_FORMATS[fmt]
    frame = dtype.itemsize * channels
    resampler = StreamResampler(sample_rate)
    block = max(frame, int(sample_rate * block_seconds) * frame)
    pending = b""
    votes: list[int] | None = [0, 0] if check_float else None  # (float-like, non-zero) words so far
    consumed = 0
    while True:
        data = stream.read(block)
        if not data:
            break
        if votes is not None:
            plausible, nonzero = float32_votes(data[-consumed % 4 :])  # words aligned to the stream's start
            votes = [votes[0] + plausible, votes[1] + nonzero]
            if votes[1] >= FLOAT_CHECK_WORDS:
                _warn_if_float(votes, fmt)
                votes = None
        consumed += len(data)
        samples, pending = raw_samples(pending + data, fmt, channels)
        out = resampler.push(samples)
        if out.size:
            yield out
    if votes is not None and votes[1] >= FLOAT_CHECK_WORDS // 16:  # a short stream: decide on what came
        _warn_if_float(votes, fmt)
    if pending:
        _warn(f"dropped {len(pending)} trailing bytes (an incomplete {fmt} frame)")
    out = resampler.flush()
    if out.size:
        yield out


def _warn_if_float(votes: list[int], fmt: str) -> None:
    if votes[0] >= FLOAT_SHARE * votes[1]:
        _warn(f"stdin looks like 32-bit float samples but is read as {fmt} (--format auto); if it is float, add --format f32le")


def read_wav_stream(stream: ByteSource, block_seconds: float = 0.1) -> Iterator[np.ndarray]:
    """A WAV file arriving on a pipe, decoded as it comes: integer PCM of 8 to 32 bits and float,
    plain or WAVE_FORMAT_EXTENSIBLE (:mod:`voxkit.audio.wav_header`); a truncated stream keeps
    what arrived."""
    from voxkit.audio.wav_header import read_wav_header

    fmt = read_wav_header(stream)
    resampler = StreamResampler(fmt.rate)
    block = max(1, int(fmt.rate * block_seconds)) * fmt.frame_bytes
    left = fmt.data_bytes  # None: to the end of the stream
    carry = b""  # a partial frame of the last read
    while left is None or left > 0:
        data = stream.read(block if left is None else min(block, left))
        if not data:
            break
        if left is not None:
            left -= len(data)
        data = carry + data
        whole = len(data) // fmt.frame_bytes * fmt.frame_bytes
        carry = data[whole:]
        out = resampler.push(fmt.decode(data[:whole]))
        if out.size:
            yield out
    if left is not None and left >= fmt.frame_bytes * max(1, fmt.rate // 100):  # what a path's truncation check says too
        held = (fmt.data_bytes - left) // fmt.frame_bytes
        _warn(f"stdin is truncated: its WAV header promises {fmt.data_bytes // fmt.frame_bytes / fmt.rate:.2f} s, "
              f"it held {held / fmt.rate:.2f} s")
    out = resampler.flush()
    if out.size:
        yield out


def read_piped_stream(head: bytes, stream: ByteSource, kind: Signature, block_seconds: float = 0.1) -> Iterator[np.ndarray]:
    """An MP3, Ogg or AIFF stream whose first bytes ``head`` were read to sniff it, decoded by
    libsndfile as it arrives (:class:`~voxkit.audio.piped.PipedDecoder`), channels averaged and
    resampled to 16 kHz; a stream cut mid-frame keeps what decoded before the cut, with a warning.

    Why: ``cat talk.mp3 | voxkit transcribe -`` or a radio stream from ``curl`` is what a user
    pipes in; decoding it here saves the ffmpeg step a WAV pipe needs. libsndfile decodes one
    logical stream: an Ogg stream is therefore split at its links first, each decoded on its own
    (:mod:`voxkit.audio.ogg_pipe`: a radio's next track), while a second MP3 file joined to the
    first is left out with a warning. The command line passes a
    :class:`~voxkit.audio.stdin_buffer.StdinBuffer`, whose reads hold no lock of ``sys.stdin``: the
    copying thread may be waiting for input when the process ends (Ctrl-C), and a thread waiting
    inside ``sys.stdin.buffer`` holds its lock, which the interpreter's shutdown cannot take.
    """
    from voxkit.audio.mp3 import quiet_stderr
    from voxkit.audio.piped import PipedDecoder, pump

    read = getattr(stream, "read1", None) or stream.read  # what has arrived, not a whole 64 KB
    if kind is OGG:
        from voxkit.audio.ogg_pipe import read_ogg_pipe

        yield from read_ogg_pipe(head, read, block_seconds, StreamResampler, _warn)
        return
    decoder = PipedDecoder(read, head, live=True)
    try:
        # libmpg123 prints from C while it looks for the first frame; only then: fd 2 stays the
        # process's during a live session, whose reads wait for input most of the time
        with quiet_stderr() if kind is MP3 else contextlib.nullcontext():
            decoder.__enter__()
    except Exception as err:  # libsndfile raises several types
        reason = getattr(err, "error_string", None) or err
        raise AudioError(f"stdin looks like {kind.name} audio but does not decode: {reason}") from None
    try:
        rate = decoder.samplerate
        resampler = StreamResampler(rate)
        decoded, stopped = yield from pump(decoder, resampler, block_seconds, kind.name, 0.0, _warn)
        if not stopped and decoder.source_error is None and _another_stream(decoder.unread(), kind):
            _warn(f"stdin holds more after the first {decoded / rate:.2f} s ({kind.name} files joined together), "
                  "which libsndfile does not decode: it is left out; decode it on the way: "
                  "ffmpeg -i - -f wav - | voxkit transcribe -")
        if decoder.source_error is not None:
            _warn(f"stdin ends after {decoded / rate:.2f} s of audio: {decoder.source_error}")
        out = resampler.flush()
        if out.size:
            yield out
    finally:
        decoder.__exit__(None, None, None)


def _another_stream(rest: bytes, kind: Signature) -> bool:
    """Whether what follows a decoded stream starts another one: an MP3 file (its ID3 tag or a
    frame header). A tag at the end of an MP3 (ID3v1 "TAG", APE, Lyrics3) is no audio, nor is an
    AIFF's chunk after its samples."""
    from voxkit.audio.mp3 import is_mp3

    if kind is MP3:
        at = rest.find(b"\xff")
        while at >= 0:
            if at + 4 <= len(rest) and is_mp3(rest[at : at + 4]) and rest[at + 2] >> 4 not in (0, 15):  # a frame, a valid bitrate
                return True
            at = rest.find(b"\xff", at + 1)
        return b"ID3" in rest
    return False


class _Replay:
    """A byte stream with the first bytes already read from it (to sniff them) put back in front."""

    def __init__(self, head: bytes, rest: ByteSource) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            out, self.head = self.head + self.rest.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        return out + self.rest.read(n - len(out)) if len(out) < n else out


def read_stdin(fmt: str, sample_rate: int, channels: int = 1, stream: ByteSource | None = None) -> Iterator[np.ndarray]:
    """``-`` on the command line (or ``stream``): WAV (``fmt='wav'`` or a RIFF header) or raw PCM.

    With ``fmt='auto'`` MP3, Ogg and AIFF are decoded (:func:`read_piped_stream`), other
    compressed containers (FLAC, AAC, ...) are refused with the command that decodes them, and
    raw data is read as s16le with a warning if it looks like float32.
    """
    source: ByteSource = sys.stdin.buffer if stream is None else stream
    if fmt == "auto":
        head = source.read(HEAD_BYTES)
        kind = audio_container(head)
        if kind in PIPED:
            return read_piped_stream(head, source, kind)  # type: ignore[arg-type]
        source = _Replay(head, source)
        refusal = container_refusal(head, "voxkit transcribe -")
        if refusal is not None:
            raise AudioError(refusal)
        if kind is None:
            return read_raw(source, "s16le", sample_rate, channels, check_float=True)
        fmt = "wav"
    if fmt == "wav":
        return read_wav_stream(source)
    return read_raw(source, fmt, sample_rate, channels)


def read_microphone(block_seconds: float = 0.08, device: str | int | None = None, *,
                    on_open: Callable[[str, int], None] | None = None) -> Iterator[np.ndarray]:
    """16 kHz mono blocks from the default (or given) input device, until interrupted.

    Checks for the package and a device before returning, so that a missing microphone is
    reported as a usage error rather than midway through a run. ``on_open(device name, rate)`` is
    called once the device records: the microphone opens when the first block is asked for (after
    the model has loaded), and a person who speaks before then is not heard.
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
            if on_open is not None:
                on_open(str(info.get("name", "the microphone")), rate)
            while True:
                data, _ = mic.read(block)
                out = resampler.push(data[:, 0])
                if out.size:
                    yield out

    return blocks()
