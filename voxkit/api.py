"""Python API for transcription: ``voxkit.Transcriber(...).transcribe(path)`` and live streams.

    >>> import voxkit
    >>> asr = voxkit.Transcriber()                 # the bundled model, 480 ms delay
    >>> print(asr.transcribe("talk.wav").text)
    >>> stream = asr.stream()
    >>> for chunk in microphone_chunks():          # 16 kHz mono float32, any size
    ...     for event in stream.push(chunk):
    ...         print(event.kind, event.text)
    >>> stream.finish()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxkit.errors import VoxkitError

if TYPE_CHECKING:
    import torch

    from voxkit.asr.session import Event
    from voxkit.asr.transcript import Transcript


MIN_DELAY_MS, MAX_DELAY_MS, STEP_MS = 80, 2400, 80


def check_delay_ms(delay_ms: int) -> int:
    """Delay in steps of 80 ms; raises VoxkitError for values the model was not trained for."""
    if delay_ms % STEP_MS or not MIN_DELAY_MS <= delay_ms <= MAX_DELAY_MS:
        raise VoxkitError(f"delay must be a multiple of 80 ms between 80 and 2400 ms, got {delay_ms}")
    return delay_ms // STEP_MS


class Transcriber:
    """A loaded recogniser; thread-compatible, not thread-safe (one call at a time)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        delay_ms: int | None = None,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        import torch

        from voxkit.asr.bundle import load_bundle

        if threads:
            torch.set_num_threads(threads)
        self.bundle = load_bundle(model, device=device)
        default = self.bundle.model.args.default_delay_tokens * STEP_MS
        self.delay = check_delay_ms(delay_ms if delay_ms is not None else default)

    @property
    def model_dir(self) -> Path:
        return self.bundle.folder

    def _load(self, audio: str | os.PathLike[str] | np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        import torch

        from voxkit.audio.io import load_audio, resample

        if isinstance(audio, (str, os.PathLike)):
            return load_audio(audio, 16000)
        wav = torch.as_tensor(np.asarray(audio, dtype=np.float32) if isinstance(audio, np.ndarray) else audio).float()
        if wav.dim() == 2:
            wav = wav.mean(0)  # [C, T] -> [T]
        if wav.dim() != 1 or wav.numel() == 0:
            raise VoxkitError("audio arrays must be non-empty [T] or [C, T]")
        if not torch.isfinite(wav).all():
            raise VoxkitError("audio contains NaN or infinite samples")
        return resample(wav, sample_rate, 16000)

    def transcribe(self, audio: str | os.PathLike[str] | np.ndarray | torch.Tensor, *, sample_rate: int = 16000) -> Transcript:
        """Transcribe a file or array (any rate/channels) as fast as the machine allows."""
        return self.transcribe_many([audio], sample_rate=sample_rate)[0]

    def transcribe_many(
        self, audios: Sequence[str | os.PathLike[str] | np.ndarray | torch.Tensor], *, sample_rate: int = 16000, batch_size: int = 8
    ) -> list[Transcript]:
        from voxkit.asr.session import transcribe_batch

        waves = [self._load(a, sample_rate) for a in audios]
        return transcribe_batch(self.bundle.model, self.bundle.tokenizer, waves, self.delay, batch_size=batch_size)

    def stream(self, delay_ms: int | None = None) -> TranscriptionStream:
        """A live session: push 16 kHz mono samples as they arrive, get word events back."""
        delay = check_delay_ms(delay_ms) if delay_ms is not None else self.delay
        return TranscriptionStream(self, delay)


class TranscriptionStream:
    def __init__(self, transcriber: Transcriber, delay: int) -> None:
        from voxkit.asr.session import FILE_CHUNK_STEPS, StreamingSession

        bundle = transcriber.bundle
        device = next(bundle.model.parameters()).device
        # Audio that arrives faster than real time (a file) is stepped in chunks of up to 2.56 s.
        self.session = StreamingSession(bundle.model, bundle.tokenizer, 1, device=device, chunk_steps=FILE_CHUNK_STEPS)
        self.session.start(0, delay)
        self.delay = delay
        self.done = False

    def push(self, samples: np.ndarray | torch.Tensor) -> list[Event]:
        """Add audio (16 kHz mono float); returns the events of every step it completed."""
        if self.done:
            raise VoxkitError("this stream is finished")
        self.session.push(0, samples)
        return self._run()

    def _run(self) -> list[Event]:
        events: list[Event] = []
        while ready := self.session.steps_ready():
            events.extend(self.session.step(min(ready, self.session.chunk_steps)))
        return events

    def finish(self) -> list[Event]:
        """End of audio: flush the delayed text and close the stream."""
        if self.done:
            return []
        self.session.finish(0)
        events = self._run()
        self.done = True
        self.session.close()
        return events

    @property
    def transcript(self) -> Transcript:
        return self.session.transcript(0)

    @property
    def steps(self) -> int:
        return self.session.steps_host[0]
