"""Python API of the speech codec: audio <-> int codes [T, 37], one-shot or streamed frame by frame.

    >>> from voxkit.codec import Codec
    >>> codec = Codec.from_pretrained("runs/codec_small/export")
    >>> codes = codec.encode("talk.wav")              # [T, 37] int64, 12.5 frames per second
    >>> audio = codec.decode(codes)                    # float32 [T * 1920] at 24 kHz
    >>> stream = codec.stream()                        # live: any chunk size in, whole frames out
    >>> for chunk in chunks:                           # 24 kHz mono (or codec.stream(sample_rate=16000))
    ...     for frame_codes in stream.encode(chunk): ...
    >>> last = stream.finish()                         # the last frame, padded with silence

Any input that ``voxkit transcribe`` reads works (a path in any format and rate, or an array with
its rate); it is resampled to 24 kHz and padded with silence to whole 80 ms frames, and
:meth:`Codec.decode` returns those whole frames (``num_samples`` trims to the original length).
Codes files keep the codes with what decoding them needs:

    >>> codec.save_codes("talk.safetensors", codes, num_samples=len(wave))
    >>> audio = codec.decode("talk.safetensors")       # refused if another codec wrote it
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from voxkit.audio.io import AudioInput, array_to_mono, as_float_samples, check_sample_rate, is_file_input, load_input
from voxkit.audio.stream import StreamResampler
from voxkit.checkpoint import detect_layout, weight_files
from voxkit.checks import weight_dtype, whole_number
from voxkit.codec.checkpoint import TRAINING_PREFIX, load_codec
from voxkit.codec.codes_file import CodesFile, check_compatible, load_codes, save_codes
from voxkit.codec.model import CodecModel, CodecState
from voxkit.conv import fold_weight_norm
from voxkit.devices import usable_device
from voxkit.errors import AudioError, CheckpointError, VoxkitError

ONE_PASS_FRAMES = 64
"""Most frames (5.12 s) a one-shot call hands the model at once; longer audio or codes go through a
streaming state in passes of this many frames. Why: the model's whole-sequence pass builds
attention biases over all pairs of steps, so its memory grows with the square of the length
(1.5 GB more for one minute of the small codec, 28.8 GB asked for ten); in passes, memory stays that of
one pass. The codes are the whole-sequence ones (every layer is causal and streams exactly), and
passes of 64 frames took less time than one whole pass of a minute, or passes of 16 or 256
(docs/codec.md, "Long audio")."""

CodesInput = torch.Tensor | np.ndarray | CodesFile | str | os.PathLike
"""What :meth:`Codec.decode` takes: codes [T, 37], a :class:`CodesFile`, or a codes file's path."""

Progress = Callable[[int, int], None]
"""``progress(done, total)`` of :meth:`Codec.encode` and :meth:`Codec.decode`: frames finished and
frames in all, called with ``done = 0`` before the first pass and after every pass. Why a callback:
ten minutes of audio take a minute or more on a CPU, and a caller (the command line's bar) wants to
show how far it got; the API itself prints nothing."""


class Codec:
    """A loaded codec; shared and read-only, so any number of :class:`CodecStream` may use it at once."""

    def __init__(self, model: CodecModel, device: str | torch.device = "cpu") -> None:
        if not isinstance(model, CodecModel):
            hint = f": load a folder with Codec.from_pretrained({os.fspath(model)!r})" if isinstance(model, (str, os.PathLike)) else ""
            raise TypeError(f"Codec() takes a loaded CodecModel, got {type(model).__name__}{hint}")
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.name = "voxkit"
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = "float32",
    ) -> Codec:
        """Load a codec folder (``voxkit export codec`` output, or a training checkpoint of the codec recipe).

        The convs' weight norm is folded into plain weights (:func:`~voxkit.conv.fold_weight_norm`):
        the same outputs without recomputing every weight at each streamed frame.

        ``dtype``: the layers' precision in memory, as ``voxkit.Transcriber`` takes it (a torch
        dtype or its name; None or "auto": as the folder stores them, float32 where they mix
        precisions). float32 is the default because a CPU computes it fastest (a folder stored in
        16 bits is widened); bfloat16 or float16 halve a GPU's memory and traffic. The quantizer
        stays float32 whatever ``dtype`` says: its codebook is a table of means, and a
        nearest-code search on 16-bit numbers picks other codes where two distances nearly tie
        (docs/codec.md, "Use"); kept whole, it also keeps the codebook fingerprint, so codes files
        pass between a 16-bit and a float32 codec. Audio in and out stays float32: inputs are cast
        to the layers' precision, outputs widened back.
        """
        dtype = weight_dtype(dtype)
        usable_device(device, "device")
        path = Path(path)
        model = load_codec(path, device=device)  # float32 throughout
        if dtype is None:
            dtype = _stored_dtype(path)
        fold_weight_norm(model)  # in float32, then rounded once: folding in 16 bits would round twice
        for name, module in model.named_children():
            if name != "quantizer":
                module.to(dtype)
        return cls(model, device=device)

    # ----------------------------------------------------------------------------- facts

    @property
    def sample_rate(self) -> int:
        """Hz of the audio the model codes and decodes (inputs at other rates are resampled)."""
        return self.model.args.sampling_rate

    @property
    def frame_rate(self) -> float:
        """Frames of codes per second of audio."""
        return self.model.args.frame_rate

    @property
    def samples_per_frame(self) -> int:
        """Samples at :attr:`sample_rate` that one frame of codes stands for."""
        return self.model.args.samples_per_frame

    @property
    def num_codebooks(self) -> int:
        """Codes per frame: one semantic code, then the acoustic ones."""
        return self.model.args.num_codebooks

    @property
    def bitrate_bps(self) -> float:
        """Bits per second the codes take."""
        return self.model.args.bitrate_bps

    @property
    def codebook_fingerprint(self) -> str:
        """A short hash of the semantic codebook: codes files record it so that another codec refuses them."""
        from voxkit.codec.codes_file import codebook_fingerprint

        if self._fingerprint is None:  # an inference codec's codebook never changes: hashed once
            self._fingerprint = codebook_fingerprint(self.model.quantizer.codebook())
        return self._fingerprint

    # ----------------------------------------------------------------------------- one-shot

    def load(self, audio: AudioInput, sample_rate: int | None = None) -> torch.Tensor:
        """Any input -> float32 mono [N] at the codec's rate (arrays need their ``sample_rate``).

        A file (a path, an open file, its bytes) is read at the rate its header gives: a
        ``sample_rate`` given with one is refused rather than ignored, as it would be silently.
        """
        if sample_rate is not None and is_file_input(audio):
            raise AudioError(f"Codec: sample_rate={sample_rate!r} is for arrays of samples; a file is read at the rate "
                             "its header gives: leave sample_rate out")
        return load_input(audio, sample_rate, self.sample_rate, "Codec")

    @torch.no_grad()
    def encode(self, audio: AudioInput, sample_rate: int | None = None, *, progress: Progress | None = None) -> torch.Tensor:
        """Audio -> codes [T, 37] int64 (T = ceil(N / 1920): the last frame padded with silence).

        Any length: audio of more than :data:`ONE_PASS_FRAMES` frames goes through the model in
        passes of that many (the same codes in memory that does not grow with the length).
        ``progress``: told the frames done after each pass (:data:`Progress`).
        """
        wave = self.load(audio, sample_rate)  # [N]
        frame, n = self.samples_per_frame, wave.shape[0]
        total = -(-n // frame) * frame  # whole frames
        piece = ONE_PASS_FRAMES * frame
        state = self.model.init_state(1, frames=ONE_PASS_FRAMES) if total > piece else None
        codes = []
        if progress is not None:
            progress(0, total // frame)
        for start in range(0, max(total, 1), piece):  # one pass for short audio; empty audio: one empty pass
            padded = torch.zeros(1, min(piece, total - start))  # [1, F * 1920]: the last frame padded with silence
            part = wave[start : start + padded.shape[1]]  # [<= F * 1920]
            padded[0, : part.shape[0]] = part
            codes.append(self.model.encode(padded.to(self.device), state)[0].cpu())  # [F, 37]
            if progress is not None:
                progress((start + padded.shape[1]) // frame, total // frame)
        return torch.cat(codes)  # [T, 37]

    @torch.no_grad()
    def decode(self, codes: CodesInput, num_samples: int | None = None, *, progress: Progress | None = None) -> np.ndarray:
        """codes [T, 37] -> float32 [T * 1920] at 24 kHz (or its first ``num_samples``).

        ``codes`` may also be a codes file (its path, or the :class:`CodesFile` that
        :func:`~voxkit.codec.codes_file.load_codes` read): it is refused if another codec wrote it
        (other sizes, or another semantic codebook, whose codes would decode into noise), and the
        length it records trims the audio unless ``num_samples`` is given. Any number of frames:
        more than :data:`ONE_PASS_FRAMES` go through the model in passes of that many.
        ``progress``: told the frames decoded after each pass (:data:`Progress`; frames past
        ``num_samples`` are not decoded, nor counted).
        """
        codes, recorded = self._codes_of(codes)
        total = codes.shape[0] * self.samples_per_frame
        if num_samples is None:
            num_samples = total if recorded is None else recorded
        else:
            whole_number(num_samples, "num_samples", 0)
        if num_samples > total:  # a wrong length, not a request for silence
            raise VoxkitError(f"num_samples is {num_samples}, more than the {codes.shape[0]} frames hold ({total})")
        frames = -(-num_samples // self.samples_per_frame)  # frames past the length are not decoded
        state = self.model.init_state(1, frames=ONE_PASS_FRAMES) if frames > ONE_PASS_FRAMES else None
        audio = np.empty(num_samples, dtype=np.float32)  # [num_samples], filled pass by pass
        piece = ONE_PASS_FRAMES * self.samples_per_frame
        if progress is not None:
            progress(0, frames)
        for i, start in enumerate(range(0, frames, ONE_PASS_FRAMES)):
            chunk = codes[None, start : min(start + ONE_PASS_FRAMES, frames)]  # [1, F, 37]
            wave = self.model.decode(chunk.to(self.device), state)[0]  # [F * 1920]
            part = audio[i * piece : (i + 1) * piece]
            part[:] = wave[: part.shape[0]].float().cpu().numpy()
            if progress is not None:
                progress(start + chunk.shape[1], frames)
        return audio

    def _codes_of(self, codes: CodesInput) -> tuple[torch.Tensor, int | None]:
        """Checked codes [T, 37] and, for a codes file, the length it records; a file of another codec is refused."""
        if isinstance(codes, (str, os.PathLike)):
            codes = load_codes(codes, self.model.args, self.codebook_fingerprint)
        if not isinstance(codes, CodesFile):
            return self.check_codes(codes), None
        name = codes.path or "the codes file"
        check_compatible(codes, self.model.args, name, self.codebook_fingerprint)
        try:
            return self.check_codes(codes.codes), codes.num_samples
        except VoxkitError as err:
            raise VoxkitError(f"{name}: {err}") from None

    def roundtrip(self, audio: AudioInput, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Encode and decode (what an evaluation compares with the input): (audio at 24 kHz, 24000)."""
        wave = self.load(audio, sample_rate)
        return self.decode(self.encode(wave, self.sample_rate), num_samples=wave.shape[0]), self.sample_rate

    def save_codes(self, path: str | os.PathLike[str], codes: torch.Tensor | np.ndarray, num_samples: int | None = None) -> None:
        """Write codes [T, 37] to a codes file (safetensors) with this codec's sizes and codebook
        fingerprint, so that :meth:`decode` of another codec refuses it instead of decoding noise.

        ``num_samples``: the audio's length at 24 kHz, which decoding the file trims to (default:
        all T * 1920). Written whole or not at all: a failed write leaves an old file as it was.
        """
        codes = self.check_codes(codes)
        total = codes.shape[0] * self.samples_per_frame
        if num_samples is None:
            num_samples = total
        whole_number(num_samples, "num_samples", 0)
        if num_samples > total:
            raise VoxkitError(f"num_samples is {num_samples}, more than the {codes.shape[0]} frames hold ({total})")
        save_codes(path, codes, num_samples, self.model.args, self.codebook_fingerprint)

    def check_codes(self, codes: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Validate user codes: [T, 37] integers (signed or unsigned) within each codebook's range -> int64 tensor."""
        shape = f"codes must be an integer tensor [T, {self.num_codebooks}]"
        try:
            codes = torch.as_tensor(codes)
        except (TypeError, ValueError, RuntimeError):  # strings, objects, bytes, Python ints past 64 bits
            raise VoxkitError(f"{shape}, got {type(codes).__name__}") from None
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool or codes.dim() != 2 \
                or codes.shape[1] != self.num_codebooks:
            raise VoxkitError(f"{shape}, got {tuple(codes.shape)} {codes.dtype}")
        # as int64 first: torch has no min/max for uint16/32/64; a uint64 past 2^63 turns negative
        # and is refused below like any code out of range
        codes = codes.to(torch.int64)  # [T, 37]
        args = self.model.args
        if codes.numel() and (int(codes[:, 0].min()) < 0 or int(codes[:, 0].max()) >= args.semantic_codebook_size):
            raise VoxkitError(f"semantic codes must lie in [0, {args.semantic_codebook_size})")
        if codes.numel() and (int(codes[:, 1:].min()) < 0 or int(codes[:, 1:].max()) >= args.acoustic_codebook_size):
            raise VoxkitError(f"acoustic codes must lie in [0, {args.acoustic_codebook_size})")
        return codes

    def stream(self, sample_rate: int | None = None) -> CodecStream:
        """A live session: audio in any chunk sizes (at ``sample_rate``, default the codec's) <-> codes."""
        return CodecStream(self, self.sample_rate if sample_rate is None else check_sample_rate(sample_rate))


_LAYER_KEY = re.compile(r"(^|\.)(input_proj|encoder_blocks|decoder_blocks|output_proj)\.")
"""A codec layer's weight, in any of the layouts (a prefix such as ``codec.`` or ``audio_tokenizer.`` before it)."""

_STORED_FLOATS = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
"""safetensors' names of the floating dtypes."""


def _stored_dtype(folder: Path) -> torch.dtype:
    """The precision a codec folder stores its layers in (the quantizer's tables left out), read
    from the safetensors headers alone. Layers stored in mixed precisions load in the narrowest
    one that holds each of them exactly: float32 (float64 if any is).

    Why from the headers: :func:`~voxkit.codec.checkpoint.load_codec` widens every weight to
    float32 as it loads them, so the loaded model no longer says how they were stored.
    """
    from safetensors import SafetensorError, safe_open

    layout = detect_layout(folder)
    found: set[str] = set()
    for file in weight_files(folder, layout):
        try:
            with safe_open(str(file), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    if layout == "training" and not key.startswith(TRAINING_PREFIX):
                        continue  # the discriminator and the distillation head are no part of the codec
                    if _LAYER_KEY.search(key):
                        found.add(fh.get_slice(key).get_dtype())
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"cannot read {file}: {err}") from None
    floats = {_STORED_FLOATS[name] for name in found if name in _STORED_FLOATS}
    if len(floats) == 1:
        return floats.pop()
    return max(floats | {torch.float32}, key=lambda dtype: dtype.itemsize)


class CodecStream:
    """One live stream's state: encode audio as it arrives, decode codes as they arrive.

    Each whole 80 ms frame of input is encoded as soon as it is complete; what is left over waits
    for the next chunk. Decoding turns each frame of codes into 1920 samples at once. A chunk of
    several frames (encoded or decoded) goes through the model in one call, which costs less per
    frame than frame by frame. The codes and the samples equal the one-shot :meth:`Codec.encode` /
    :meth:`Codec.decode` of the same stream.
    """

    def __init__(self, codec: Codec, sample_rate: int) -> None:
        self.codec = codec
        self.sample_rate = sample_rate
        self.state: CodecState = codec.model.init_state(1)
        # [1, frames * 1920]: an incomplete frame's samples, then a pass's whole frames (made once)
        self._buffer = torch.zeros(1, self.state.frames * codec.samples_per_frame, device=codec.device)
        self._filled = 0
        # one resampler for the whole stream: chunks resampled alone would each gain or lose a
        # fraction of a sample at their edges, and the codes would drift from the one-shot ones
        self._resampler = StreamResampler(sample_rate, codec.sample_rate) if sample_rate != codec.sample_rate else None
        self.finished = False  # set by finish(): the input side is closed, decoding goes on

    @torch.no_grad()
    def encode(self, chunk: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Audio chunk (mono, at the stream's rate) -> codes [F, 37] of the frames it completed (F may be 0)."""
        if self.finished:
            raise VoxkitError("this stream's audio is finished: start another one with Codec.stream()")
        if not isinstance(chunk, (np.ndarray, torch.Tensor, list, tuple)):
            raw = isinstance(chunk, (bytes, bytearray, memoryview))
            hint = ": read raw PCM as an array first, e.g. np.frombuffer(chunk, np.int16)" if raw else ""
            raise AudioError(f"encode() takes a chunk of samples (numpy, torch or a list of floats), got {type(chunk).__name__}{hint}")
        data = as_float_samples(chunk)  # integer PCM scaled
        wave = array_to_mono(data) if data.size else np.zeros(0, np.float32)  # [n]
        if self._resampler is not None:
            wave = self._resampler.push(wave)  # [m] at 24 kHz, lagging by the resampler's context
        return self._frames(torch.from_numpy(wave))

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """End of audio: codes [F, 37] of what is left, the last frame padded with silence as
        :meth:`Codec.encode` pads it. The stream's codes are then the one-shot ones. A second call
        returns no codes (the resampler's tail is flushed once)."""
        if self.finished:
            return torch.zeros(0, self.codec.num_codebooks, dtype=torch.long)
        self.finished = True
        tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)
        codes = [self._frames(torch.from_numpy(tail))]
        if self._filled:
            frame = self.codec.samples_per_frame
            self._buffer[0, self._filled : frame] = 0.0
            codes.append(self.codec.model.encode(self._buffer[:, :frame], self.state)[0].cpu())  # [1, 37]
            self._filled = 0
        return torch.cat(codes)

    def _frames(self, wave: torch.Tensor) -> torch.Tensor:
        """Samples at 24 kHz [n] -> codes [F, 37] of the whole frames they complete.

        The frame the last chunk left incomplete and this chunk's whole frames go through the
        model together, in passes of up to ``state.frames`` frames (one call each, not one per
        frame: the per-call cost of every layer is paid once per pass); what is left waits.
        """
        frame = self.codec.samples_per_frame
        buffer = self._buffer  # [1, frames * 1920], its first _filled samples an incomplete frame
        out = []
        pos, n = 0, wave.shape[0]
        while self._filled + n - pos >= frame:
            end = min((self._filled + n - pos) // frame * frame, buffer.shape[1])  # whole frames of this pass
            take = end - self._filled
            buffer[0, self._filled : end] = wave[pos : pos + take]
            out.append(self.codec.model.encode(buffer[:, :end], self.state)[0])  # [end / 1920, 37]
            pos += take
            self._filled = 0
        buffer[0, self._filled : self._filled + n - pos] = wave[pos:]
        self._filled += n - pos
        if not out:
            return torch.zeros(0, self.codec.num_codebooks, dtype=torch.long)
        return torch.cat(out).cpu()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor | np.ndarray) -> np.ndarray:
        """codes [F, 37] -> float32 [F * 1920] samples at 24 kHz."""
        codes = self.codec.check_codes(codes)
        if codes.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return self.codec.model.decode(codes[None].to(self.codec.device), self.state)[0].float().cpu().numpy()
