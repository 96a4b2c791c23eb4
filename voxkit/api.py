"""Python API for transcription: ``voxkit.Transcriber(...).transcribe(path)`` and live streams.

    >>> import voxkit
    >>> asr = voxkit.Transcriber()                 # the bundled model, 480 ms delay
    >>> print(asr.transcribe("talk.wav").text)
    >>> stream = asr.stream()
    >>> for chunk in microphone_chunks():          # 16 kHz mono, float or int16, any size
    ...     for event in stream.push(chunk):
    ...         print(event.kind, event.text)
    >>> for event in stream.finish():              # the last words come out at the end
    ...     print(event.kind, event.text)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxkit.asr.options import RecognizerOptions
from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.checks import flag, is_number, whole_number
from voxkit.devices import usable_device
from voxkit.errors import AudioError, VoxkitError

if TYPE_CHECKING:
    import torch

    from voxkit.asr.session import Event
    from voxkit.asr.transcript import Transcript
    from voxkit.audio.io import AudioInput


class Transcriber:
    """A loaded recogniser, shared by everything made from it: any number of live streams
    (:meth:`stream`), file transcriptions and generations may run interleaved or at the same time
    on threads of their own (a server's handlers), each with its own state (the model is never
    written to; tests/test_threads.py). A stream belongs to one caller: push to it from one
    thread at a time (a second thread that calls it while another is inside is refused with a
    VoxkitError, never let in to mix the two). ``threads`` sets torch's thread count, which is the whole process's."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        delay_ms: int | None = None,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        segment: bool = True,
        dtype: torch.dtype | str | None = "float32",
        boost: bool = True,
    ) -> None:
        """``segment``: cut long audio at pauses into pieces that fit the model's window, each
        heard with a fresh state (asr/segments.py); False hands the model the stream whole, for a
        model trained on long streams. Audio shorter than a few seconds is never cut.

        ``boost``: raise quiet input (a microphone at low gain, a file recorded far below full
        scale) to the level the model was trained at, from the audio heard so far (asr/level.py);
        input at that level or above is untouched. False hands the model the samples as they are.

        ``dtype``: the weights' precision in memory, as ``AudioChat.from_pretrained`` takes it (a
        torch dtype or its name; None or "auto": as stored). float32 is the default because a
        CPU computes it fastest (a folder stored in 16 bits stays 16-bit in memory there and is
        widened at each use); bfloat16 or float16 halve a GPU's memory and traffic."""
        import torch

        from voxkit.asr.bundle import load_bundle
        from voxkit.asr.segments import DEFAULT_SEGMENTING
        from voxkit.checks import weight_dtype

        segment, boost = flag(segment, "segment"), flag(boost, "boost")
        if threads is not None:
            torch.set_num_threads(whole_number(threads, "threads", 1))
        usable_device(device, "device")
        self.bundle = load_bundle(model, device=device, dtype=weight_dtype(dtype))
        # The delay is validated here, once, in milliseconds (asr/options.py owns the bounds).
        self.options = RecognizerOptions.for_model(self.bundle.model.args.default_delay_tokens, delay_ms)
        self.delay = self.options.delay_steps
        self.segmenting = DEFAULT_SEGMENTING if segment else None
        self.boost = bool(boost)

    @property
    def model_dir(self) -> Path:
        """The folder the model was loaded from."""
        return self.bundle.folder

    def transcribe(self, audio: AudioInput, *, sample_rate: int | None = None) -> Transcript:
        """Transcribe a file or an in-memory signal as fast as the machine allows.

        A file (a path, an open binary file, or the file's bytes) is decoded whatever its rate and
        channels (its header says them: a ``sample_rate`` given with a file is refused, not
        ignored). An array or tensor (numpy or torch) is read at ``sample_rate`` (Hz; default
        16000) and may be:

        - ``[T]`` mono samples;
        - ``[T, C]`` (frames first: what ``soundfile.read`` and ``sounddevice`` return) or ``[C, T]``
          (channels first: ``torchaudio.load``, ``librosa.load(mono=False)``), with 1 to 8 channels
          and more than 8 samples. The channel axis is the short one; an array where both or
          neither axis could hold the channels is refused, never guessed. Channels are averaged.
        - float in [-1, 1], or integer PCM: int16 / int32 are scaled by 2^15 / 2^31, uint8 is
          centred at 128 (the int16 that ``soundfile.read(..., dtype="int16")`` gives is the same
          signal as its float).

        Raises :class:`voxkit.errors.VoxkitError` (an ``AudioError``) for any other shape or type,
        empty or non-finite audio, and an unreadable file.
        """
        if is_number(audio) or isinstance(audio, bool):  # transcribe_many() would call it a list of numbers
            raise AudioError(f"transcribe(): audio must be a path, an open file, the bytes of an audio file, or samples "
                             f"(numpy, torch); got the number {audio!r}")
        return self.transcribe_many([audio], sample_rate=sample_rate)[0]

    def transcribe_many(
        self,
        audios: Sequence[AudioInput],
        *,
        sample_rate: int | None = None,
        batch_size: int = 8,
    ) -> list[Transcript]:
        """:meth:`transcribe` for several inputs, ``batch_size`` segments stepped together."""
        import torch

        from voxkit.asr.segments import transcribe_segmented
        from voxkit.audio.io import is_file_input, load_input

        one = (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, torch.Tensor)
        if isinstance(audios, one) or hasattr(audios, "read"):
            raise VoxkitError("transcribe_many() takes a list of inputs; for one input use transcribe()")
        audios = list(audios)
        if audios and is_number(audios[0]):  # a list of samples is one signal, not many inputs
            raise VoxkitError("transcribe_many() takes a list of inputs, got a list of numbers: for one signal use transcribe()")
        whole_number(batch_size, "batch_size", 1)
        if sample_rate is not None and any(is_file_input(a) for a in audios):
            raise VoxkitError(f"transcribe(): sample_rate={sample_rate!r} is for arrays of samples; a file is read at the "
                              "rate its header gives: leave sample_rate out")
        rate = ASR_SAMPLE_RATE if sample_rate is None else sample_rate
        waves = [load_input(a, rate, ASR_SAMPLE_RATE, "transcribe()") for a in audios]
        return transcribe_segmented(self.bundle.model, self.bundle.tokenizer, waves, self.delay, self.segmenting, batch_size=batch_size,
                                    boost=self.boost)

    def stream(self, delay_ms: int | None = None, *, sample_rate: int = ASR_SAMPLE_RATE) -> TranscriptionStream:
        """A live session: push mono samples at ``sample_rate`` Hz as they arrive, get word events back.

        A sound card's 44.1 or 48 kHz is resampled inside the stream, chunk by chunk, as
        :meth:`transcribe` resamples a whole array (``sample_rate`` is the same keyword there and in
        ``Codec.stream``); the events' times are seconds of the audio whatever its rate."""
        from voxkit.audio.io import check_sample_rate

        rate = check_sample_rate(sample_rate)
        delay = RecognizerOptions.from_ms(delay_ms).delay_steps if delay_ms is not None else self.delay
        return TranscriptionStream(self, delay, rate)


class TranscriptionStream:
    """One live transcription: :meth:`push` audio as it arrives, :meth:`finish` at its end.

    Both return lists of :class:`~voxkit.asr.session.Event` (``delta``: the word in progress grew;
    ``word``: a word is final, with its times; ``final``: the whole text, once, at the end), in the
    order they happen; ``event.to_json()`` is a dict for a server to send. :attr:`transcript` holds
    the final words so far. Made by :meth:`Transcriber.stream`; it keeps the model alive on its own.
    """

    def __init__(self, transcriber: Transcriber, delay: int, sample_rate: int = ASR_SAMPLE_RATE) -> None:
        from voxkit.asr.segments import SegmentedStream
        from voxkit.audio.stream import StreamResampler

        bundle = transcriber.bundle
        device = next(bundle.model.parameters()).device
        # Audio that arrives faster than real time (a file) is stepped in chunks of up to 2.56 s;
        # long audio is cut at pauses like transcribe()'s, so both give the same words.
        self.live = SegmentedStream(bundle.model, bundle.tokenizer, delay, transcriber.segmenting, device=device, boost=transcriber.boost)
        self.session = self.live.session
        self.delay = delay  # steps of 80 ms
        self.done = False
        self.warned_unscaled = False  # one warning per stream, not one per chunk
        self.sample_rate = sample_rate
        # push() and finish() step shared buffers: a second caller while one runs is refused at
        # once, not let in to interleave steps and corrupt both (a stream belongs to one caller)
        self.busy = threading.Lock()
        # one resampler for the whole stream: chunks resampled alone would each gain or lose a
        # fraction of a sample at their edges
        self.resampler = StreamResampler(sample_rate, ASR_SAMPLE_RATE) if sample_rate != ASR_SAMPLE_RATE else None

    def push(self, samples: np.ndarray | torch.Tensor) -> list[Event]:
        """Add mono audio at the stream's ``sample_rate``; returns the events of every step it completed.

        ``samples`` is a chunk of any length (numpy or torch): ``[T]``, or ``[T, 1]`` / ``[1, T]``
        (a one-channel block from a sound card), float in [-1, 1] or integer PCM scaled like
        :meth:`Transcriber.transcribe` (int16 by 2^15). Multichannel chunks are refused, not
        downmixed: a short chunk does not show which axis holds the channels (transcribe() can tell
        from a whole recording), so mix them down first, e.g. ``block.mean(axis=1)`` for a
        frames-first block. Bytes are refused: raw PCM from a socket is ``np.frombuffer(data, np.int16)``.
        """
        import torch

        from voxkit.audio.io import as_float_samples, warn_if_unscaled

        if self.done:
            raise VoxkitError("this stream is finished: start another one with Transcriber.stream()")
        if isinstance(samples, (bytes, bytearray, memoryview)):
            raise AudioError("push() takes samples, not bytes: read raw PCM as an array first, e.g. np.frombuffer(chunk, np.int16)")
        if not isinstance(samples, (np.ndarray, torch.Tensor, list, tuple)):
            raise AudioError(f"push() takes a chunk of samples (numpy, torch or a list of floats), got {type(samples).__name__}")
        data = as_float_samples(samples)
        if data.ndim == 2 and 1 in data.shape:
            data = data.reshape(-1)  # one channel, either layout
        if data.ndim != 1:
            raise AudioError(
                f"push() takes mono samples [T] (or [T, 1] / [1, T]), got shape {tuple(data.shape)}; "
                "mix multichannel audio down first, e.g. block.mean(axis=1) for [frames, channels]"
            )
        if not np.isfinite(data).all():
            raise AudioError("audio contains NaN or infinite samples")
        if not self.warned_unscaled:
            self.warned_unscaled = warn_if_unscaled(data, "push()")
        with self._one_caller("push()"):
            if self.done:  # finished by another caller since the check above
                raise VoxkitError("this stream is finished: start another one with Transcriber.stream()")
            if self.resampler is not None:
                data = self.resampler.push(data)  # [T'] at 16 kHz, lagging by the resampler's context
            return self.live.push(data)

    def finish(self) -> list[Event]:
        """End of audio: flush the delayed text and close the stream (a second call returns [])."""
        with self._one_caller("finish()"):
            if self.done:
                return []
            events = self.live.push(self.resampler.flush()) if self.resampler is not None else []
            events += self.live.finish()
            self.done = True
            self.live.close()
            return events

    @contextlib.contextmanager
    def _one_caller(self, what: str) -> Iterator[None]:
        if not self.busy.acquire(blocking=False):
            raise VoxkitError(f"{what} was called while another thread was inside this stream: a stream belongs to one "
                              "caller, so give each thread its own Transcriber.stream() or hold a lock around its calls")
        try:
            yield
        finally:
            self.busy.release()

    @property
    def transcript(self) -> Transcript:
        """The words made final so far (all of them once :meth:`finish` has returned)."""
        return self.live.transcript

    @property
    def delay_ms(self) -> int:
        """How far the text lags the audio: a word comes out this long after it is spoken."""
        return RecognizerOptions.from_steps(self.delay).delay_ms

    @property
    def steps(self) -> int:
        """Decoder steps taken so far (with the left pads and flushes of a cut stream's segments)."""
        return self.live.steps
