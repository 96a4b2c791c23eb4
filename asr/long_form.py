"""Long-form evaluation: held-out utterances joined into one stream of many minutes.

Why: a live session runs for hours, far past the encoder's and the decoder's attention windows,
while every utterance of a test split is a few seconds long. Joining utterances (with pauses of
silence between them) into ONE stream and scoring each minute against the same utterances
transcribed alone shows whether quality holds once the caches have wrapped many times: a minute
much worse than its "alone" figure is the stream's fault, not the utterances'.

Each recognised word is given to the utterance nearest its start time (the boundary is the middle
of the pause between two utterances); a minute's WER sums the errors of the
utterances that start in it. The process's resident memory is sampled after every minute of audio
pushed, so a cache that grows with the stream shows up as a rising column.

A minute holds about a hundred words, so its WER swings by several points whatever the stream
does. Two yardsticks come with the table: the same utterances transcribed alone a second time,
each behind 20 ms more leading silence (no stream at all; how often a minute of that run is 1.2x
the first says what "1.2x alone" can mean for one minute), and the stream's change against alone
with a paired-bootstrap interval, over the whole stream and per ten minutes.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from voxkit.asr.evaluate import FLOOR_SEED, utterance_errors, with_floor
from voxkit.asr.segments import DEFAULT_SEGMENTING, Segmenting
from voxkit.audio.constants import ASR_SAMPLE_RATE

PAUSE_SECONDS = (0.3, 2.0)  # silence between joined utterances, drawn uniformly
SHIFT_SAMPLES = 320  # leading silence of the second alone run: a quarter of a step moves every step's audio
BLOCK_MINUTES = 10  # minutes per row of the blocks table


@dataclasses.dataclass
class Placement:
    """Where one utterance sits in the joined stream."""

    index: int  # into the utterances given
    start: float  # seconds
    end: float
    text: str


@dataclasses.dataclass
class MinuteRow:
    minute: int
    utterances: int
    reference_words: int
    stream_errors: int
    alone_errors: int
    rss_mb: float
    shifted_errors: int = 0  # the utterances alone again, each behind SHIFT_SAMPLES of silence

    @property
    def stream_wer(self) -> float:
        return 100.0 * self.stream_errors / max(1, self.reference_words)

    @property
    def alone_wer(self) -> float:
        return 100.0 * self.alone_errors / max(1, self.reference_words)

    @property
    def shifted_wer(self) -> float:
        return 100.0 * self.shifted_errors / max(1, self.reference_words)


@dataclasses.dataclass
class LongFormResult:
    """Per-minute rows, and per joined utterance (in stream order) what the intervals resample."""

    minutes: list[MinuteRow]
    minute_of: list[int]  # the minute each utterance starts in
    words: list[int]  # reference words
    stream_errors: list[int]
    alone_errors: list[int]
    stream_seconds: float = 0.0  # the joined stream's length, pauses included
    used: list[int] = dataclasses.field(default_factory=list)  # each joined utterance's index into the utterances given
    heard_seconds: float | None = None  # Ctrl-C during the stream: the seconds it had heard (None: all of it)

    def summary(self) -> dict[str, float | int]:
        """The totals the verdict lines print: WERs over all minutes, the stream's change against
        alone with its 95 % interval, and how many minutes pass 1.2x alone (in the stream, and
        in the second alone run)."""
        from voxkit.asr.evaluate import paired_change

        rows = self.minutes
        words = sum(r.reference_words for r in rows)
        stream, alone = sum(r.stream_errors for r in rows), sum(r.alone_errors for r in rows)
        change, low, high = (paired_change(self.alone_errors, self.stream_errors, self.words, groups=self.groups())
                             if words else (0.0, 0.0, 0.0))
        return {"words": words, "stream_wer": 100 * stream / max(1, words), "alone_wer": 100 * alone / max(1, words),
                "change": change, "low": low, "high": high,
                "minutes_above": sum(r.stream_errors > 1.2 * r.alone_errors for r in rows),
                "yardstick_minutes_above": sum(r.shifted_errors > 1.2 * r.alone_errors for r in rows)}

    def groups(self, rows: Sequence[int] | None = None) -> list[int] | None:
        """Each joined utterance's source (its index into the utterances given), for the
        intervals to resample a cycled utterance's repeats together; None when not recorded."""
        if len(self.used) != len(self.words):
            return None
        return list(self.used) if rows is None else [self.used[i] for i in rows]

    def repeats(self) -> bool:
        """Whether some utterance was joined more than once (a manifest shorter than the stream)."""
        return len(set(self.used)) < len(self.used)

    def describe(self, given: int) -> str:
        """"N utterances (K of its ``given``, each up to R times) joined into one stream of M minutes":
        the stream holds whole utterances, the first always, so it can be longer than asked, and a
        manifest shorter than the request is cycled."""
        most = max(Counter(self.used).values(), default=0)
        repeats = f", each up to {most} times" if most > 1 else ""
        return (f"{len(self.used)} utterances ({len(set(self.used))} of its {given}{repeats}) joined into one stream of "
                f"{self.stream_seconds / 60:.2f} minutes")

    def to_json(self, delay_ms: int) -> dict[str, object]:
        """The numbers of :func:`format_long_form`, unrounded: one record per minute, then the totals."""
        minutes = [{**dataclasses.asdict(r), "minute": r.minute + 1, "stream_wer": r.stream_wer, "alone_wer": r.alone_wer,
                    "shifted_wer": r.shifted_wer} for r in self.minutes]
        heard = None if self.heard_seconds is None else self.heard_seconds / 60
        return {"delay_ms": delay_ms, "stream_minutes": self.stream_seconds / 60, "joined_utterances": len(self.minute_of),
                "distinct_utterances": len(set(self.used)), "interrupted_after_minutes": heard, "minutes": minutes,
                **self.summary()}


def join_utterances(
    waves: Sequence[torch.Tensor], texts: Sequence[str], minutes: float, seed: int = 0
) -> tuple[torch.Tensor, list[Placement]]:
    """Concatenate utterances (cycling through them if needed) with random pauses up to ``minutes``.

    Returns the stream [N] at 16 kHz and each utterance's placement, in order.
    """
    if not waves:
        raise ValueError("no utterances to join")
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * ASR_SAMPLE_RATE)
    pieces: list[torch.Tensor] = []
    placements: list[Placement] = []
    cursor = 0
    i = 0
    while cursor < total:
        k = i % len(waves)
        pause = torch.zeros(int(rng.uniform(*PAUSE_SECONDS) * ASR_SAMPLE_RATE))  # [P]
        wav = waves[k]
        if cursor + pause.numel() + wav.numel() > total and placements:
            break
        pieces += [pause, wav]
        start = cursor + pause.numel()
        placements.append(Placement(k, start / ASR_SAMPLE_RATE, (start + wav.numel()) / ASR_SAMPLE_RATE, texts[k]))
        cursor = start + wav.numel()
        i += 1
    return torch.cat(pieces), placements


def assign_words(words: Sequence[tuple[str, float]], placements: Sequence[Placement]) -> list[list[str]]:
    """Each (word, start seconds) goes to the utterance nearest to it: the boundary between two
    utterances is the middle of the pause between them. Returns the words of each placement.

    Why the middle: a word's time is that of its marker step (80 ms resolution), and the first
    word of an utterance is often marked a step before the utterance's first sample; a boundary at
    the utterance's start would give that word to the one before.
    """
    bounds = np.array([(a.end + b.start) / 2 for a, b in zip(placements, placements[1:], strict=False)])  # [U - 1]
    out: list[list[str]] = [[] for _ in placements]
    for text, start in words:
        out[int(np.searchsorted(bounds, start, side="right"))].append(text)
    return out


def resident_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def evaluate_long_form(
    model: torch.nn.Module,
    tokenizer: object,
    waves: Sequence[torch.Tensor],
    texts: Sequence[str],
    minutes: float,
    delay: int,
    seed: int = 0,
    progress: bool = True,
    segmenting: Segmenting | None = DEFAULT_SEGMENTING,
    batch_size: int = 8,
    boost: bool = True,
    floor_dbfs: float | None = None,
    floor_colour: str = "white",
) -> LongFormResult:
    """WER per minute of one joined stream beside the same utterances transcribed alone, both
    the way a user gets them (cut at pauses unless ``segmenting`` is None: asr/segments.py), and
    alone again behind :data:`SHIFT_SAMPLES` of silence (module doc). ``batch_size``: streams of
    the two alone runs decoded in lock-step (the same transcripts whatever the size). ``boost``:
    quiet input raised as a user's stream raises it (asr/level.py). ``floor_dbfs``: noise at this
    level through the whole stream, its pauses included, and through each utterance alone (the
    ``waves`` given are without it), as a microphone's noise floor would be; ``floor_colour``: white,
    pink (a room's hum) or brown."""
    from tqdm import tqdm

    from voxkit.asr.segments import SegmentedStream

    stream, placements = join_utterances(waves, texts, minutes, seed)
    used = sorted({p.index for p in placements})
    lead = torch.zeros(SHIFT_SAMPLES)  # [S]
    alone_waves, shifted_waves = [waves[i] for i in used], [torch.cat([lead, waves[i]]) for i in used]
    if floor_dbfs is not None:
        stream = with_floor(stream, floor_dbfs, FLOOR_SEED - 1, floor_colour)
        alone_waves = [with_floor(w, floor_dbfs, FLOOR_SEED + i, floor_colour) for i, w in zip(used, alone_waves, strict=True)]
        shifted_waves = [with_floor(w, floor_dbfs, FLOOR_SEED + i, floor_colour) for i, w in zip(used, shifted_waves, strict=True)]
    alone = _alone(model, tokenizer, alone_waves, delay, segmenting, batch_size, "utterances alone", progress, boost)
    alone_text = dict(zip(used, (t.text for t in alone), strict=True))
    shifted = _alone(model, tokenizer, shifted_waves, delay, segmenting, batch_size,
                     "alone again, 20 ms later", progress, boost)
    shifted_text = dict(zip(used, (t.text for t in shifted), strict=True))

    device = next(model.parameters()).device
    live = SegmentedStream(model, tokenizer, delay, segmenting, device=device, boost=boost)
    minute = 60 * ASR_SAMPLE_RATE
    rss: list[float] = []
    pushed, interrupted = 0, False
    try:
        for start in tqdm(range(0, stream.numel(), minute), desc="long-form stream (minutes)", disable=not progress):
            live.push(stream[start : start + minute].numpy())
            pushed = min(start + minute, stream.numel())
            rss.append(resident_mb())
    except KeyboardInterrupt:
        # the minutes heard are a result: score the utterances that ended in them (an hour's run is long)
        if not rss:
            raise
        interrupted = True
    try:
        live.finish()
    finally:
        live.close()
    if interrupted:
        placements = [p for p in placements if p.end * ASR_SAMPLE_RATE <= pushed]
    words = [(w.text, w.start) for w in live.transcript.words]

    heard = assign_words(words, placements)
    rows: dict[int, MinuteRow] = {}
    result = LongFormResult([], [], [], [], [], heard_seconds=pushed / ASR_SAMPLE_RATE if interrupted else None)
    for placement, hyp in zip(placements, heard, strict=True):
        m = int(placement.start // 60)
        row = rows.setdefault(m, MinuteRow(m, 0, 0, 0, 0, rss[min(m, len(rss) - 1)]))
        stream_errors, n = utterance_errors(placement.text, " ".join(hyp))
        alone_errors, _ = utterance_errors(placement.text, alone_text[placement.index])
        shifted_errors, _ = utterance_errors(placement.text, shifted_text[placement.index])
        row.utterances += 1
        row.reference_words += n
        row.stream_errors += stream_errors
        row.alone_errors += alone_errors
        row.shifted_errors += shifted_errors
        result.minute_of.append(m)
        result.words.append(n)
        result.stream_errors.append(stream_errors)
        result.alone_errors.append(alone_errors)
    result.minutes = [rows[m] for m in sorted(rows)]
    result.stream_seconds = stream.numel() / ASR_SAMPLE_RATE
    result.used = [p.index for p in placements]
    return result


def _alone(
    model: torch.nn.Module, tokenizer: object, waves: Sequence[torch.Tensor], delay: int, segmenting: Segmenting | None,
    batch_size: int, desc: str, progress: bool, boost: bool = True,
) -> list:
    """The utterances transcribed one stream each, in parts of a few batches so that a progress
    bar moves: an hour's stream holds hundreds of utterances, minutes of work before the stream's
    own bar starts."""
    from tqdm import tqdm

    from voxkit.asr.segments import transcribe_segmented

    out = []
    with tqdm(total=len(waves), desc=desc, disable=not progress) as bar:
        for start in range(0, len(waves), batch_size * 4):
            part = waves[start : start + batch_size * 4]
            out += transcribe_segmented(model, tokenizer, part, delay, segmenting, batch_size=batch_size, boost=boost)
            bar.update(len(part))
    return out


def format_long_form(result: LongFormResult, delay_ms: int) -> str:
    """Markdown: one line per minute, the verdict lines, then (for 20 minutes or more) a table of
    ten-minute blocks with the stream's change against alone and its 95 % interval."""
    rows = result.minutes
    lines = [
        f"Long-form stream at {delay_ms} ms: WER per minute (%), the same utterances alone beside it",
        "",
        "| minute | utterances | words | stream WER | alone WER | ratio | alone again, 20 ms later | resident MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.minute + 1} | {r.utterances} | {r.reference_words} | {r.stream_wer:.1f} | {r.alone_wer:.1f} "
            f"| {_ratio(r.stream_errors, r.alone_errors)} | {r.shifted_wer:.1f} | {r.rss_mb:.0f} |"
        )
    total = result.summary()
    if total["words"]:
        lines += [
            "",
            f"all minutes: {total['stream_wer']:.1f} % in the stream, {total['alone_wer']:.1f} % alone "
            f"({total['words']} words); {total['minutes_above']} of {len(rows)} minutes above 1.2x alone",
            f"stream - alone: {total['change']:+.2f} points (95 % interval {total['low']:+.2f} to {total['high']:+.2f}, "
            f"paired bootstrap over {'distinct utterances, repeats resampled together' if result.repeats() else 'utterances'})",
            f"yardstick: the utterances alone again, each behind 20 ms more silence, put {total['yardstick_minutes_above']} of "
            f"{len(rows)} minutes above 1.2x the first alone run (no stream involved: a minute's own noise)",
        ]
    worst = max(rows, key=lambda r: r.stream_wer - r.alone_wer, default=None)
    if worst is not None:
        lines += ["", f"worst minute: {worst.minute + 1} ({worst.stream_wer:.1f} % in the stream, {worst.alone_wer:.1f} % alone)"]
    if len(rows) >= 2 * BLOCK_MINUTES:
        lines += ["", *_blocks(result)]
    return "\n".join(lines)


def _ratio(stream_errors: int, alone_errors: int) -> str:
    if alone_errors:
        return f"{stream_errors / alone_errors:.2f}"
    return "inf" if stream_errors else "1.00"


def _blocks(result: LongFormResult) -> list[str]:
    """Ten-minute blocks: enough words (about a thousand) that the interval says something."""
    from voxkit.asr.evaluate import paired_change

    lines = [
        f"By blocks of {BLOCK_MINUTES} minutes (95 % paired-bootstrap interval of the change"
        f"{'; an utterance heard more than once is resampled with its repeats' if result.repeats() else ''}):",
        "",
        "| minutes | utterances | words | stream WER | alone WER | stream - alone |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    last = max(result.minute_of)
    for first in range(0, last + 1, BLOCK_MINUTES):
        idx = [i for i, m in enumerate(result.minute_of) if first <= m < first + BLOCK_MINUTES]
        words = [result.words[i] for i in idx]
        alone = [result.alone_errors[i] for i in idx]
        stream = [result.stream_errors[i] for i in idx]
        n = max(1, sum(words))
        change, low, high = paired_change(alone, stream, words, groups=result.groups(idx))
        lines.append(
            f"| {first + 1}–{min(first + BLOCK_MINUTES, last + 1)} | {len(idx)} | {sum(words)} | {100 * sum(stream) / n:.1f} "
            f"| {100 * sum(alone) / n:.1f} | {change:+.1f} [{low:+.1f}, {high:+.1f}] |"
        )
    return lines
