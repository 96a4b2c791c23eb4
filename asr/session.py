"""Live transcription of several streams in lock-step, one 80 ms step at a time.

A :class:`StreamingSession` owns ``B`` slots. Audio is pushed into a slot whenever it arrives
(any chunk size); :meth:`StreamingSession.step` advances every slot by one decoder step once each
active slot holds 80 ms of audio, and reports the tokens as events. Each slot has its own delay
and can be restarted alone (the model's per-stream reset), so a server can multiplex sessions.

When the audio is already there (a file, a caller that fell behind), ``step(n)`` advances up to
``chunk_steps`` steps in one call: the causal encoder runs once over all ``n`` steps (larger
products, one pass over its weights instead of ``n``) and only the decoder goes token by token.
The tokens are those of ``n`` single steps; the events come grouped by slot instead of by step.

On a GPU, ``graphs=True`` records the session's decoder token and its one-step encoder (features
included) as CUDA graphs when the session is made, and every step replays them: all ``B`` streams
advance through one launch each instead of hundreds of kernels (:mod:`voxkit.lm.graphs`). The
graphs are bound to this session's buffers and caches, which is why they live here and never on
the shared model. An ``n``-step chunk runs the encoder eagerly and still replays the decoder's graph.

Audio framing matches training exactly: a stream starts with ``left_pad`` silent steps, step ``t``
sees the 1520-sample window ``[1280 t - 200, 1280 t + 1320)`` of (silence + audio), and the end is
flushed with ``delay + 1 + right_pad`` silent steps so that the last word comes out.

Word times: a word starts at the step its [STREAMING_WORD] marker is written for (the marker comes
``delay`` steps after the word begins, later when the previous word's tokens still fill those
steps) and ends at the next word's start, the audio's end or an estimate from its length, whichever
is first. The words written during the flush can carry steps past the end of the audio (a word cut
off at the end, a backlog of long words, words the model reads into the silence), so they are held
until the stream ends and then fitted into the audio by :func:`fit_tail`: every word of a
transcript lies inside the audio, in order, with start < end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from voxkit.asr.features import LOOKAHEAD, SAMPLE_RATE, SAMPLES_PER_STEP, STEP_WINDOW
from voxkit.asr.model import RealtimeRecognizer, RecognizerState
from voxkit.asr.options import RecognizerOptions
from voxkit.asr.transcript import Transcript, Word
from voxkit.audio.constants import STEP_MS, STEP_SECONDS
from voxkit.audio.fifo import SampleFifo
from voxkit.lm import graphs as cuda_graphs
from voxkit.tokenizer import BOS_ID, STREAMING_PAD_ID, STREAMING_WORD_ID, Tokenizer

OVERLAP = STEP_WINDOW - SAMPLES_PER_STEP  # 240 samples shared by consecutive windows
FILE_CHUNK_STEPS = 32  # most steps one call advances when the audio is already there (2.56 s)


@dataclasses.dataclass
class Event:
    """``delta``: the word in progress grew (tentative); ``word``: a word is final; ``final``: stream done."""

    kind: str
    stream: int
    text: str
    start: float  # seconds from the start of the stream's audio
    end: float

    def to_json(self) -> dict[str, Any]:
        """The event as a dict of JSON types (``json.dumps`` of the dataclass itself fails), times
        rounded to the millisecond as :meth:`Transcript.to_json` rounds them: what a server sends."""
        times = {"start": round(float(self.start), 3), "end": round(float(self.end), 3)}
        return {"kind": self.kind, "stream": int(self.stream), "text": self.text, **times}


@dataclasses.dataclass
class _Slot:
    delay: int = 6
    active: bool = False
    finishing: bool = False
    buffer: SampleFifo = dataclasses.field(default_factory=lambda: SampleFifo(8 * SAMPLES_PER_STEP))  # (silence +) audio not yet stepped
    audio_samples: int = 0
    real_steps: int = 0  # set by finish(): steps whose samples are all (silence +) audio, none of the flush
    words: list[Word] = dataclasses.field(default_factory=list)
    pending: list[int] = dataclasses.field(default_factory=list)  # text tokens of the word in progress
    pending_start: float = 0.0
    has_word: bool = False
    tail: list[Word] = dataclasses.field(default_factory=list)  # words closed by flush steps, not yet timed
    held: list[tuple[int, Event]] = dataclasses.field(default_factory=list)  # deltas after a held word: (len(tail) then, delta)

    def available(self) -> int:
        return len(self.buffer)

    def take(self, n: int) -> np.ndarray:
        return self.buffer.pop(n)

    def push(self, samples: np.ndarray) -> None:
        self.buffer.append(samples)


class StreamingSession:
    def __init__(
        self,
        model: RealtimeRecognizer,
        tokenizer: Tokenizer,
        batch_size: int = 1,
        device: str | torch.device = "cpu",
        chunk_steps: int = 1,
        graphs: bool = False,
    ) -> None:
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
        self.device = torch.device(device)
        if graphs:
            cuda_graphs.check_capturable(model.encoder.transformer)
            cuda_graphs.check_capturable(model.decoder)
            cuda_graphs.check_device(self.device)
            cuda_graphs.check_fft_plans(self.device)
        self.model = model.eval()
        self.chunk_steps = chunk_steps
        self.tokenizer = tokenizer
        self.B = batch_size
        args = model.args
        self.left_pad = args.n_left_pad_tokens
        self.right_pad = args.right_pad_tokens
        if self.left_pad < 1:
            raise ValueError("the recogniser needs at least one left-pad step")
        # The session's own caches: the model is shared and never written to, so any number of
        # sessions, file transcriptions and generations can use it at once.
        self.state: RecognizerState = model.init_state(batch_size, chunk_steps=chunk_steps, static=graphs)
        self.state.enter()
        self.slots = [_Slot() for _ in range(batch_size)]
        dtype = model.decoder.norm.weight.dtype  # the activations' dtype (weights may be kept in 16 bits)
        most = chunk_steps * SAMPLES_PER_STEP
        self.window = torch.zeros(batch_size, OVERLAP + most, device=self.device)  # [B, 240 + 1280 n] audio
        self._overlap = torch.zeros(batch_size, OVERLAP, device=self.device)  # [B, 240] end of the last window
        self.staging = np.zeros((batch_size, most), np.float32)  # [B, 1280 n] new samples
        self.tokens_out = torch.zeros(batch_size, chunk_steps, dtype=torch.long, device=self.device)  # [B, n] last call's outputs
        self.steps = torch.zeros(batch_size, dtype=torch.long, device=self.device)  # [B] steps taken
        self.prompt = torch.zeros(batch_size, dtype=torch.long, device=self.device)  # [B] 1 + L + d
        self.delays = torch.zeros(batch_size, dtype=dtype, device=self.device)  # [B]
        self.prev = torch.full((batch_size,), BOS_ID, dtype=torch.long, device=self.device)  # [B]
        self.steps_host = [0] * batch_size
        self.dtype = dtype
        self._audio_in = torch.zeros(batch_size, 1, args.decoder.dim, dtype=dtype, device=self.device)  # [B, 1, D] graph input
        self._encoder_graph: cuda_graphs.CapturedStep | None = None
        self._decoder_graph: cuda_graphs.CapturedStep | None = None
        if graphs:
            self._capture()

    def close(self) -> None:
        self._encoder_graph = self._decoder_graph = None  # frees the graphs' memory
        self.state.exit()

    def _capture(self) -> None:
        """Record the one-step encoder and the decoder token as CUDA graphs over this session's buffers.

        Done while every slot is idle: the warm-up calls really step the streams (on silence), so
        everything they changed is then put back as a new session has it.
        """
        rings = [self.state.encoder.transformer, self.state.decoder]
        window = self.window[:, : OVERLAP + SAMPLES_PER_STEP]  # [B, 1520] the one-step view step() fills
        self._encoder_graph = cuda_graphs.CapturedStep(lambda: self._encode(window), self.device, rings=rings)
        self._decoder_graph = cuda_graphs.CapturedStep(lambda: self._decode_token(self._audio_in), self.device, rings=rings)
        self.state.reset()
        for buffer in (self.window, self._overlap, self.tokens_out, self.steps):
            buffer.zero_()
        self.prev.fill_(BOS_ID)

    # ------------------------------------------------------------------------- stream control

    def start(self, stream: int, delay: int) -> None:
        """(Re)start slot ``stream`` with a delay in steps of 80 ms."""
        delay = RecognizerOptions.from_steps(delay).delay_steps  # the one set of bounds (asr/options.py)
        mask = torch.zeros(self.B, dtype=torch.bool, device=self.device)
        mask[stream] = True
        self.state.reset(mask)
        self._overlap[stream].zero_()
        self.steps[stream] = 0
        self.prompt[stream] = 1 + self.left_pad + delay
        self.delays[stream] = delay
        self.steps_host[stream] = 0
        slot = _Slot(delay=delay, active=True)
        # Silence before the audio: the first window's overlap is zeros already (see module doc).
        slot.push(np.zeros(self.left_pad * SAMPLES_PER_STEP - LOOKAHEAD, np.float32))
        self.slots[stream] = slot

    def push(self, stream: int, samples: np.ndarray | torch.Tensor) -> None:
        """Append 16 kHz mono float samples to a started stream."""
        slot = self.slots[stream]
        if not slot.active or slot.finishing:
            raise RuntimeError(f"stream {stream} is not accepting audio")
        data = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
        slot.audio_samples += data.shape[0]
        slot.push(data)

    def finish(self, stream: int) -> None:
        """No more audio: flush with silence so that the delayed text catches up."""
        slot = self.slots[stream]
        slot.real_steps = self.steps_host[stream] + len(slot.buffer) // SAMPLES_PER_STEP
        tail = -slot.audio_samples % SAMPLES_PER_STEP
        slot.push(np.zeros(tail + (slot.delay + 1 + self.right_pad) * SAMPLES_PER_STEP + LOOKAHEAD, np.float32))
        slot.finishing = True

    def ready(self) -> bool:
        """True when every active slot holds one more step of audio (and at least one is active)."""
        return self.steps_ready() > 0

    def steps_ready(self) -> int:
        """How many steps every active slot can take with the audio it holds (0: none is active)."""
        return min((s.available() // SAMPLES_PER_STEP for s in self.slots if s.active), default=0)

    @property
    def active(self) -> list[int]:
        return [b for b, s in enumerate(self.slots) if s.active]

    # ------------------------------------------------------------------------- stepping

    @torch.inference_mode()
    def step(self, steps: int = 1) -> list[Event]:
        """Advance all slots by ``steps`` 80 ms steps; inactive slots run on silence and are ignored."""
        if not 1 <= steps <= self.chunk_steps:
            raise ValueError(f"steps must be 1..{self.chunk_steps} (the session's chunk_steps), got {steps}")
        if self.steps_ready() < steps:
            raise RuntimeError(f"not every active stream has {steps * STEP_MS} ms of audio")
        n = steps * SAMPLES_PER_STEP
        for b, slot in enumerate(self.slots):
            if slot.active:
                self.staging[b, :n] = slot.take(n)
            else:
                self.staging[b, :n] = 0.0
        window = self.window[:, : OVERLAP + n]  # [B, 240 + n] view: no per-step allocation
        window[:, :OVERLAP].copy_(self._overlap)
        window[:, OVERLAP:].copy_(torch.from_numpy(self.staging[:, :n]))
        self._overlap.copy_(window[:, n:])  # the next window starts 240 samples before this one ends
        one_step_graph = self._encoder_graph if steps == 1 else None
        audio = self._encode(window) if one_step_graph is None else one_step_graph.replay()  # [B, steps, D]
        for k in range(steps):
            if self._decoder_graph is not None:
                self._audio_in.copy_(audio[:, k : k + 1])
                self._decoder_graph.replay()
            else:
                self._decode_token(audio[:, k : k + 1])
            self.tokens_out[:, k] = self.prev
        out = self.tokens_out[:, :steps].tolist()
        events: list[Event] = []
        for b, slot in enumerate(self.slots):
            if not slot.active:
                continue
            first = 1 + self.left_pad + slot.delay
            for token in out[b]:
                index = self.steps_host[b] + 1  # token index of this output
                self.steps_host[b] = index
                if index >= first:
                    events.extend(self._on_token(b, slot, token, index - first, slot.finishing and index > slot.real_steps))
            # steps <= every slot's remaining steps, so a stream can only end at the last one
            if slot.finishing and slot.available() < SAMPLES_PER_STEP:
                events.extend(self._end(b, slot))
        return events

    def _encode(self, window: torch.Tensor) -> torch.Tensor:
        """Audio windows [B, 240 + 1280 n] -> decoder audio inputs [B, n, D], the encoder state updated."""
        mel = self.model.features.frames(window).to(self.dtype)  # [B, n_mels, 8 n]
        return self.model.encode(mel, self.delays, self.state)  # [B, n, D]

    def _decode_token(self, audio: torch.Tensor) -> torch.Tensor:
        """One decoder step of every stream from its audio input [B, 1, D]: ``prev`` [B] holds the new tokens.

        Reads and writes the session's tensors in place only (``prev``, ``steps``, the caches), so
        that the same call can be recorded once as a CUDA graph and replayed.
        """
        # Input token: BOS at step 0, [STREAMING_PAD] through the prompt, then the last output.
        forced = torch.where(self.steps == 0, BOS_ID, STREAMING_PAD_ID)  # [B]
        tokens = torch.where(self.steps < self.prompt, forced, self.prev)  # [B]
        logits = self.model.decode(audio, tokens[:, None], self.delays, self.state)  # [B, 1, V]
        self.prev.copy_(logits[:, -1].argmax(-1))  # [B]
        self.steps += 1
        return self.prev

    def _end(self, b: int, slot: _Slot) -> list[Event]:
        """The flush is done: time the words it wrote (:func:`fit_tail`), report them, and end."""
        self._close_word(b, slot, None, True)  # into the tail
        duration = slot.audio_samples / SAMPLE_RATE
        floor = slot.words[-1].end if slot.words else 0.0
        events: list[Event] = []
        for index, word in enumerate(fit_tail(slot.tail, floor, duration)):
            slot.words.append(word)
            events.append(Event("word", b, word.text, word.start, word.end))
            # the next word's deltas, written after this word was held: each word still follows its deltas
            events += [e for k, e in slot.held if k == index + 1]
        slot.tail, slot.held = [], []
        slot.active = False
        events.append(Event("final", b, Transcript(slot.words, duration).text, 0.0, duration))
        return events

    def _on_token(self, b: int, slot: _Slot, token: int, generated_step: int, flushing: bool) -> list[Event]:
        """``flushing``: the token comes from a step that read flush silence past the audio."""
        if token == STREAMING_PAD_ID:
            return []
        if token == STREAMING_WORD_ID:
            events = self._close_word(b, slot, generated_step * STEP_SECONDS, flushing)
            slot.has_word, slot.pending, slot.pending_start = True, [], generated_step * STEP_SECONDS
            return events
        if not slot.has_word:  # text without a marker: start a word here
            slot.has_word, slot.pending, slot.pending_start = True, [], generated_step * STEP_SECONDS
        slot.pending.append(token)
        text = self.tokenizer.decode(slot.pending)
        when = min(slot.pending_start, slot.audio_samples / SAMPLE_RATE)  # a flush step may lie past the audio
        delta = Event("delta", b, text.replace("\ufffd", ""), when, when)
        if slot.tail:  # an earlier word is held for the end's fit (_end): so is this delta, to stay after it
            slot.held.append((len(slot.tail), delta))
            return []
        return [delta]

    def _close_word(self, b: int, slot: _Slot, next_start: float | None, flushing: bool) -> list[Event]:
        if not slot.has_word:
            return []
        # A byte sequence that never became a character (a lead byte without its continuation) is
        # not text: drop it rather than commit U+FFFD into the transcript.
        text = self.tokenizer.decode(slot.pending).replace("\ufffd", "").strip()
        slot.has_word, slot.pending = False, []
        if not text:
            return []
        guess = slot.pending_start + 0.25 + 0.06 * len(text)  # no end marker in the stream: estimate
        if flushing:  # closed by a flush step: timed with the words after it (fit_tail)
            slot.tail.append(Word(text, slot.pending_start, guess))
            return []
        # A marker from a step that read audio only comes ``delay + 1`` steps after the audio it
        # times, so both the start and the next word's start lie inside the audio.
        duration = slot.audio_samples / SAMPLE_RATE
        end = min(x for x in (guess, next_start, duration) if x is not None)
        word = Word(text, slot.pending_start, max(end, slot.pending_start))
        slot.words.append(word)
        return [Event("word", b, text, word.start, word.end)]

    def transcript(self, stream: int) -> Transcript:
        slot = self.slots[stream]
        return Transcript(list(slot.words), slot.audio_samples / SAMPLE_RATE)


def fit_tail(words: Sequence[Word], floor: float, duration: float, min_seconds: float = STEP_SECONDS) -> list[Word]:
    """Times inside the audio for the words written after it ended (each given as (its marker's
    start, its estimated end)), after a last word already reported that ends at ``floor``.

    Why: a word's marker time is only an upper bound on its start (the marker waits for the
    previous word's tokens), and in the flush it can lie past the end of the audio, where no word
    can begin. Going backwards from the audio's end, each word ends at the earliest of its estimate,
    the next word's start and the end of the audio, and starts at its marker, moved earlier as far
    as needed to last at least ``min_seconds`` (the model's time resolution): words that fit keep
    the times they had, and the late ones are pulled back into the audio in order. If that would
    start before ``floor``, the words share the time from ``floor`` to the end equally. With no
    audio left after ``floor`` they share the last ``min_seconds`` per word instead, overlapping
    the last reported word: a word the model wrote late (behind a backlog of long words) may be
    real speech, and dropping it would lose it.
    """
    if not words or duration <= 0:
        return []
    fitted: list[Word] = []
    upper = duration
    for word in reversed(words):
        end = min(word.end, upper)
        start = min(word.start, end - min_seconds)
        fitted.append(Word(word.text, start, end))
        upper = start
    fitted.reverse()
    if fitted[0].start < floor:
        low = floor if floor < duration else max(0.0, duration - min_seconds * len(fitted))
        width = (duration - low) / len(fitted)
        fitted = [Word(w.text, low + i * width, low + (i + 1) * width) for i, w in enumerate(fitted)]
    return fitted


def transcribe_batch(
    model: RealtimeRecognizer,
    tokenizer: Tokenizer,
    waves: Sequence[torch.Tensor | np.ndarray],
    delay: int,
    batch_size: int = 8,
    chunk_steps: int = FILE_CHUNK_STEPS,
    graphs: bool = False,
) -> list[Transcript]:
    """Transcribe whole signals as fast as possible, ``batch_size`` streams at a time.

    The audio is all there, so each call advances as many steps as every active stream still has
    (at most ``chunk_steps``): the same tokens as live stepping, with the encoder run in chunks.
    ``graphs``: replay the decoder's steps as a CUDA graph (a model on a GPU; see StreamingSession).
    """
    results: list[Transcript | None] = [None] * len(waves)
    if not waves:
        return []
    device = next(model.parameters()).device
    session = StreamingSession(
        model, tokenizer, min(batch_size, len(waves)), device=device, chunk_steps=chunk_steps, graphs=graphs
    )
    try:
        queue = list(range(len(waves)))
        owner: dict[int, int] = {}

        def fill(slot: int) -> None:
            if queue:
                i = queue.pop(0)
                owner[slot] = i
                session.start(slot, delay)
                session.push(slot, waves[i])
                session.finish(slot)

        for slot in range(session.B):
            fill(slot)
        while session.active:
            for event in session.step(min(session.steps_ready(), chunk_steps)):
                if event.kind == "final":
                    results[owner[event.stream]] = session.transcript(event.stream)
                    fill(event.stream)
    finally:
        session.close()
    return [r if r is not None else Transcript([], 0.0) for r in results]
