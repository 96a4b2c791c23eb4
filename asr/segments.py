"""Long streams cut into segments at pauses, each transcribed by a fresh stream state.

Why: a recogniser only hears what its encoder's attention window holds (the bundled model: 15 s).
One trained on short utterances has never seen the window slide past a stream's beginning and
writes gibberish once it does (docs/asr.md, "Long-form streams"). A segment that starts just
before speech and ends in a pause, before the window fills, looks like a training utterance:
a little silence, speech, silence, then the usual end-of-stream flush. So a long stream is cut
into such segments, each gets a fresh state, and the words are put back on the stream's clock.
The silence between a pause's cut and the next speech is skipped: nothing is transcribed there,
so silence of any length costs nothing and cannot make the model write words or drift.

The rule is causal (it reads only audio already heard; a skipped pause is held until speech
resumes, which delays no word), so a live stream and a whole file cut at the same places and give
the same words: :func:`transcribe_segmented` cuts files up front and runs the segments side by
side, :class:`SegmentedStream` cuts as the audio arrives. Per 80 ms step of audio, quiet or not
(its energy in dB against a noise floor, the quietest step of the last 30 s; and, where energy
cannot tell, whether a voice-activity detector hears speech in it: asr/vad.py):

- after ``min_seconds`` of segment, ``pause_steps`` quiet steps in a row end it; the next one
  starts ``lead_steps`` before the next loud step;
- within ``soft_seconds`` of the limit, any one quiet step ends it and the next starts there;
- at the limit (the window, less the left pad and the flush), it ends wherever the audio is;
- the stream starts as after a pause: the first segment starts ``lead_steps`` before the first
  step that is not quiet.

Cutting inside an utterance's short pauses costs words (the model then starts mid-sentence), hence
``min_seconds``. A cut inside a word (only at the limit, in speech without a single quiet step) can
garble it. A model trained on long streams needs no cuts (``segmenting=None``).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence

import numpy as np
import torch

from voxkit.asr.features import SAMPLES_PER_STEP
from voxkit.asr.level import QuietBoost, raise_quiet
from voxkit.asr.model import DECODER_FULL_ATTENTION_CAPACITY, ENCODER_FULL_ATTENTION_CAPACITY, RealtimeRecognizer
from voxkit.asr.session import FILE_CHUNK_STEPS, Event, StreamingSession, transcribe_batch
from voxkit.asr.step_levels import StepEnergy, StepSplitter, StepWindow, step_energy
from voxkit.asr.transcript import Transcript, Word
from voxkit.asr.vad import SpeechState
from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.fifo import SampleFifo
from voxkit.tokenizer import Tokenizer

FLOOR_STEPS = 375  # the noise floor and the loudest level are read over the last 30 s of steps
CUT_BLOCK_STEPS = 256  # steps read together: a file's buffers stay this size, not the file's
SILENT_DB = -100.0  # energy of a step of digital silence (the log's floor)
QUIET_DB = -60.0  # a step below this is quiet whatever came before


@dataclasses.dataclass(frozen=True)
class Segmenting:
    """Where a stream may be cut (seconds of audio in the current segment; see the module doc)."""

    min_seconds: float = 2.0
    soft_seconds: float = 3.0  # before the limit: any single quiet step will do
    pause_steps: int = 4  # quiet 80 ms steps in a row that make a pause
    lead_steps: int = 2  # quiet steps kept before the speech that starts a segment (after a pause, or the stream's start)
    margin_db: float = 10.0  # a step is quiet below the noise floor plus this
    max_seconds: float | None = None  # None: as long as the model's windows allow
    speech_threshold: float | None = 0.2  # a step whose speech probability (asr/vad.py) is below this is quiet too; None: energy alone

    def limits(self, model: RealtimeRecognizer, delay: int) -> tuple[int, int, int] | None:
        """(min, soft, max) segment lengths in steps for ``model`` at ``delay`` steps, or None
        when its windows cannot hold a second of audio (a toy model: it gets the stream whole).

        A segment's whole stream (left pad, audio, ``delay + 1 + right_pad`` flush steps) must fit
        the encoder's window (in steps) and the decoder's, or the window slides after all.
        """
        args = model.args
        enc = (args.encoder.max_window or ENCODER_FULL_ATTENTION_CAPACITY) // args.downsample_factor
        dec = (args.decoder.max_window or DECODER_FULL_ATTENTION_CAPACITY) - 1  # BOS takes a slot
        most = min(enc, dec) - args.n_left_pad_tokens - delay - 1 - args.right_pad_tokens
        if self.max_seconds is not None:
            most = min(most, int(self.max_seconds / (SAMPLES_PER_STEP / ASR_SAMPLE_RATE)))
        step_s = SAMPLES_PER_STEP / ASR_SAMPLE_RATE
        if most * step_s < 1.0:
            return None
        low = min(most, max(1, round(self.min_seconds / step_s)))
        soft = min(most, max(low, most - round(self.soft_seconds / step_s)))
        return low, soft, most


DEFAULT_SEGMENTING = Segmenting()


def step_energies(samples: np.ndarray) -> np.ndarray:
    """dB energy of each whole 80 ms step of ``samples`` [N] -> [N // 1280]."""
    n = samples.shape[0] // SAMPLES_PER_STEP
    return step_energy(samples[: n * SAMPLES_PER_STEP].reshape(n, SAMPLES_PER_STEP))  # [n]


class PauseCutter:
    """Finds the segment boundaries of one stream as its audio arrives (causal: the same ones
    whatever the chunking). Holds the floor's 30 s of step energies, nothing that grows with the stream.

    Boundaries are ``(sample, True)`` where a segment starts and ``(sample, False)`` where one
    ends (sample offsets from the stream's start). The stream starts as a pause does: the first
    segment starts ``lead_steps`` before the first step that is not quiet, so a stream that opens
    with silence or a hum is not heard until someone speaks (and one that never has speech, not at all).
    """

    def __init__(self, limits: tuple[int, int, int], segmenting: Segmenting = DEFAULT_SEGMENTING) -> None:
        self.low, self.soft, self.most = limits
        self.pause = segmenting.pause_steps
        self.lead = segmenting.lead_steps
        self.margin = segmenting.margin_db
        self.steps_of = StepSplitter(SAMPLES_PER_STEP, CUT_BLOCK_STEPS)  # whole steps of each push
        self.energy = StepEnergy()
        self.window = StepWindow(FLOOR_STEPS)  # dB of the last 30 s of steps
        self.threshold = segmenting.speech_threshold
        self.speech = SpeechState(SAMPLES_PER_STEP) if self.threshold is not None else None
        self.segment_start = 0  # step where the current segment starts (or the gap, in a gap)
        self.in_gap = True  # between a pause's cut (or the stream's start) and the next speech
        self.run = 0  # quiet steps in a row at the end of the audio seen
        self.steps = 0  # whole steps seen

    def feed(self, samples: np.ndarray) -> list[tuple[int, bool]]:
        """Add audio; returns the new boundaries in order."""
        # a step's quietness, block by block of steps: a live push is one block, allocates no buffer
        blocks = [self._quiet(steps) for steps in self.steps_of.split(np.asarray(samples, np.float32))]
        if not blocks:
            return []
        quiet = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)  # [n] bool
        first = self.steps
        self.steps += quiet.shape[0]
        idx = np.arange(1, quiet.shape[0] + 1)  # [n]
        # Quiet steps in a row ending at each new step: the run restarts after each loud step,
        # and continues a run that ended the last chunk.
        run = idx - np.maximum.accumulate(np.where(quiet, 0, idx))  # [n]
        run = run + np.where(np.cumsum(~quiet) == 0, self.run, 0)  # [n]
        self.run = int(run[-1])
        steps = np.arange(first, self.steps)  # [n] absolute step indices
        out: list[tuple[int, bool]] = []
        while (found := self._next(steps, quiet, run)) is not None:  # one pass per boundary: a few per minute
            out += found
        if self.in_gap:  # the next segment cannot start before this: forget what lies before it
            self.segment_start = max(self.segment_start, self.steps - self.lead)
        return out

    @property
    def resume_floor(self) -> int | None:
        """In a gap, the earliest sample the next segment can start at (audio before it can go)."""
        return self.segment_start * SAMPLES_PER_STEP if self.in_gap else None

    def _next(self, steps: np.ndarray, quiet: np.ndarray, run: np.ndarray) -> list[tuple[int, bool]] | None:
        """The next boundaries among ``steps`` (a segment's end, or the end of a gap), or None."""
        lo = max(0, self.segment_start - int(steps[0]))
        if self.in_gap:
            loud = np.flatnonzero(~quiet[lo:])
            if not loud.size:
                return None
            start = max(self.segment_start, int(steps[lo + loud[0]]) - self.lead)
            self.segment_start, self.in_gap = start, False
            return [(start * SAMPLES_PER_STEP, True)]
        age = steps[lo:] + 1 - self.segment_start  # [m] steps in the segment once this one is in
        paused = (age >= self.low) & (run[lo:] >= self.pause)  # [m]
        ok = paused | ((age >= self.soft) & quiet[lo:]) | (age >= self.most)  # [m]
        hits = np.flatnonzero(ok)
        if not hits.size:
            return None
        cut = int(steps[lo + hits[0]]) + 1
        self.segment_start, self.in_gap = cut, bool(paused[hits[0]])
        end = (cut * SAMPLES_PER_STEP, False)
        return [end] if self.in_gap else [end, (cut * SAMPLES_PER_STEP, True)]

    def _quiet(self, steps: np.ndarray) -> np.ndarray:
        """Whether each of the stream's next whole ``steps`` [n, 1280] is quiet: [n] bool.

        Quiet by energy: below -60 dBFS, or below the floor (the quietest step of the 30 s ending
        at it, digital silence counted as -80 dB) plus the margin, or plus half the window's range
        if that is less. Only the first holds in a window whose range is under 6 dB: a steady sound
        at speech level is not a pause. Quiet too, whatever its energy: a step the voice-activity
        detector hears no speech in (below ``speech_threshold``), such as a steady hum with nobody
        speaking, which energy alone never finds quiet.
        """
        new = self.energy.of(steps)  # [n] dB
        top, low = self.window.push(new)  # [n], [n]: each step's window holds the step itself
        floor = np.maximum(low, SILENT_DB + 20.0)  # [n]
        span = top - floor  # [n]
        quiet = (new < QUIET_DB) | ((new < floor + np.minimum(self.margin, span / 2)) & (span >= 6.0))
        if self.speech is not None:
            quiet |= self.speech.of(steps) < self.threshold
        return quiet


def spans(samples: np.ndarray, limits: tuple[int, int, int], segmenting: Segmenting = DEFAULT_SEGMENTING) -> list[tuple[int, int]]:
    """The segments [start, end) of a whole signal [N] in samples, as a live stream would cut it."""
    bounds = PauseCutter(limits, segmenting).feed(samples)
    starts = [b for b, opens in bounds if opens]
    ends = [b for b, opens in bounds if not opens]
    if len(ends) < len(starts):
        ends.append(samples.shape[0])
    return [(a, b) for a, b in zip(starts, ends, strict=True) if b > a]


def join(parts: Sequence[Transcript], offsets: Sequence[float], duration: float) -> Transcript:
    """One transcript from segments' transcripts, each shifted to its offset (seconds)."""
    words = [Word(w.text, w.start + off, w.end + off) for part, off in zip(parts, offsets, strict=True) for w in part.words]
    return Transcript(words, duration)


def transcribe_segmented(
    model: RealtimeRecognizer,
    tokenizer: Tokenizer,
    waves: Sequence[torch.Tensor | np.ndarray],
    delay: int,
    segmenting: Segmenting | None = DEFAULT_SEGMENTING,
    batch_size: int = 8,
    chunk_steps: int = FILE_CHUNK_STEPS,
    boost: bool = True,
) -> list[Transcript]:
    """:func:`transcribe_batch` for signals of any length: each is cut where a live stream would
    cut it, and all segments of all signals run side by side (``segmenting=None``: one stream each).
    ``boost``: quiet input is raised as a live stream raises it (asr/level.py)."""
    if boost:
        waves = [raise_quiet(w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, np.float32)) for w in waves]
    if segmenting is None:
        return transcribe_batch(model, tokenizer, waves, delay, batch_size=batch_size, chunk_steps=chunk_steps)
    limits = segmenting.limits(model, delay)
    if limits is None:
        return transcribe_batch(model, tokenizer, waves, delay, batch_size=batch_size, chunk_steps=chunk_steps)
    pieces: list[torch.Tensor | np.ndarray] = []
    where: list[tuple[int, list[float]]] = []  # (first piece, offsets in seconds) per signal
    for wave in waves:
        samples = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
        cut = spans(samples, limits, segmenting)
        where.append((len(pieces), [a / ASR_SAMPLE_RATE for a, _ in cut]))
        pieces += [wave[a:b] for a, b in cut]
    done = transcribe_batch(model, tokenizer, pieces, delay, batch_size=batch_size, chunk_steps=chunk_steps)
    return [
        join(done[first : first + len(offsets)], offsets, wave.shape[0] / ASR_SAMPLE_RATE)
        for wave, (first, offsets) in zip(waves, where, strict=True)
    ]


class SegmentedStream:
    """One live stream over a :class:`StreamingSession` slot, cut at pauses (module doc).

    At a segment's end it is flushed at once (its last words come out), the audio of the pause is
    held until speech resumes (then dropped but for the lead), and the slot restarts with a fresh
    state for the next segment. Events carry the stream's clock. In a one-stream session the flush
    and the new segment's left pad cost compute, not latency: their steps run as soon as they are due.
    """

    def __init__(
        self,
        model: RealtimeRecognizer,
        tokenizer: Tokenizer,
        delay: int,
        segmenting: Segmenting | None = DEFAULT_SEGMENTING,
        device: str | torch.device = "cpu",
        chunk_steps: int = FILE_CHUNK_STEPS,
        boost: bool = True,
    ) -> None:
        self.session = StreamingSession(model, tokenizer, 1, device=device, chunk_steps=chunk_steps)
        self.boost = QuietBoost() if boost else None  # quiet input raised (asr/level.py)
        self.delay = delay
        limits = segmenting.limits(model, delay) if segmenting is not None else None
        self.cutter = PauseCutter(limits, segmenting) if limits is not None else None
        self.queue = SampleFifo(8 * SAMPLES_PER_STEP)  # audio not yet given to the session nor dropped
        self.bounds: deque[tuple[int, bool]] = deque()  # boundaries not yet reached
        self.pushed = 0  # samples pushed by the caller
        self.given = 0  # stream samples given to the session or skipped
        self.offset = 0  # stream sample where the current segment starts
        self.words: list[Word] = []  # words of the finished segments, on the stream's clock
        self.taken = 0  # decoder steps of the finished segments
        self.running = self.cutter is None  # a segment is open in the session (False in a skipped pause, and before speech)
        self.closing = False
        self.done = False
        if self.running:  # not cut: one segment, the whole stream
            self.session.start(0, delay)

    def close(self) -> None:
        self.session.close()

    def push(self, samples: np.ndarray) -> list[Event]:
        """Add mono float samples; returns the events of every step they completed."""
        samples = np.asarray(samples, np.float32)  # [N]; queued as a copy: a caller may reuse its buffer while a pause is held
        if samples.shape[0] == 0:  # a reader's last, empty read: queued, it would keep finish() from flushing
            return []
        self.pushed += samples.shape[0]
        self._queue(self.boost.feed(samples) if self.boost is not None else samples)
        return self._run()

    def finish(self) -> list[Event]:
        """End of audio: flush the last segment; the last event is the whole stream's ``final``."""
        if self.boost is not None and not self.closing:
            self._queue(self.boost.flush())  # the last partial step
        self.closing = True
        return self._run()

    def _queue(self, samples: np.ndarray) -> None:
        """Audio for the session and the cutter (the boost holds a partial step back: it may be empty)."""
        if samples.shape[0] == 0:
            return
        self.queue.append(samples)
        if self.cutter is not None:
            self.bounds.extend(self.cutter.feed(samples))

    def _take(self, upto: int) -> np.ndarray:
        """Queued stream audio up to sample ``upto`` (or all of it), removed from the queue: a
        view, valid until the next push."""
        n = max(0, min(len(self.queue), upto - self.given))
        self.given += n
        return self.queue.pop(n)

    def _feed(self) -> list[Event]:
        """Move the queued audio along to the next boundary: into the open segment, or out of a
        skipped pause; start and end segments there. Returns the stream's final event if it ended."""
        while not self.done:
            slot = self.session.slots[0]
            if self.running and slot.finishing:
                return []  # the segment's flush is still running
            nxt = self.bounds[0] if self.bounds else None
            upto = nxt[0] if nxt is not None else self.pushed
            if self.running:
                head = self._take(upto)
                if head.shape[0]:
                    self.session.push(0, head)
                if nxt is not None and self.given == nxt[0] and not nxt[1]:
                    self.bounds.popleft()
                    self.session.finish(0)  # its "final" event ends the segment (_run)
                    return []
                if self.closing and not self.queue:
                    self.session.finish(0)
                return []
            if nxt is not None and nxt[1]:  # speech again: the next segment starts here
                self._take(nxt[0])
                self.bounds.popleft()
                self.offset, self.running = nxt[0], True
                self.session.start(0, self.delay)
                continue
            floor = self.cutter.resume_floor if self.cutter is not None else None
            if floor is not None:
                self._take(floor)  # pause audio that no segment will hear
            if self.closing:
                return self._final()
            return []
        return []

    def _final(self) -> list[Event]:
        self.done = True
        whole = self.transcript
        return [Event("final", 0, whole.text, 0.0, whole.duration)]

    def _run(self) -> list[Event]:
        events: list[Event] = []
        events += self._feed()
        while not self.done and (ready := self.session.steps_ready()):
            shift = self.offset / ASR_SAMPLE_RATE
            for e in self.session.step(min(ready, self.session.chunk_steps)):
                if e.kind != "final":
                    events.append(Event(e.kind, e.stream, e.text, e.start + shift, e.end + shift))
                    continue
                self.words += [Word(w.text, w.start + shift, w.end + shift) for w in self.session.transcript(0).words]
                self.taken += self.session.steps_host[0]
                self.running = False
                if self.bounds and self.bounds[0][1]:  # a soft or hard cut: the next segment starts here
                    self._take(self.bounds[0][0])
                    self.offset = self.bounds.popleft()[0]
                    self.running = True
                    self.session.start(0, self.delay)
                elif self.closing and not self.queue:
                    events += self._final()
            events += self._feed()
        return events

    @property
    def transcript(self) -> Transcript:
        """The words so far (finished segments and the open one) on the stream's clock."""
        shift = self.offset / ASR_SAMPLE_RATE
        current = [Word(w.text, w.start + shift, w.end + shift) for w in self.session.transcript(0).words] if self.running else []
        return Transcript(self.words + current, self.pushed / ASR_SAMPLE_RATE)

    @property
    def steps(self) -> int:
        """Decoder steps taken in all segments (the left pads and flushes included)."""
        return self.taken + (self.session.steps_host[0] if self.running else 0)
