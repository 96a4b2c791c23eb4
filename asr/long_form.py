"""Long-form evaluation: held-out utterances joined into one stream of many minutes.

Why: a live session runs for hours, far past the encoder's and the decoder's attention windows,
while every utterance of a test split is a few seconds long. Joining utterances (with pauses of
silence between them) into ONE stream and scoring each minute against the same utterances
transcribed alone shows whether quality holds once the caches have wrapped many times: a minute
much worse than its "alone" figure is the stream's fault, not the utterances'.

Each recognised word is given to the utterance whose slot of the stream (from its start to the
next utterance's start) holds the word's start time; a minute's WER sums the errors of the
utterances that start in it. The process's resident memory is sampled after every minute of audio
pushed, so a cache that grows with the stream shows up as a rising column.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import torch

from voxkit.asr.evaluate import utterance_errors
from voxkit.audio.constants import ASR_SAMPLE_RATE

PAUSE_SECONDS = (0.3, 2.0)  # silence between joined utterances, drawn uniformly


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

    @property
    def stream_wer(self) -> float:
        return 100.0 * self.stream_errors / max(1, self.reference_words)

    @property
    def alone_wer(self) -> float:
        return 100.0 * self.alone_errors / max(1, self.reference_words)


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
    """Each (word, start seconds) goes to the last utterance that starts at or before it (the
    first one for words before any); returns the words given to each placement, in order."""
    starts = np.array([p.start for p in placements])  # [U]
    out: list[list[str]] = [[] for _ in placements]
    for text, start in words:
        slot = max(0, int(np.searchsorted(starts, start + 1e-6, side="right")) - 1)
        out[slot].append(text)
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
) -> list[MinuteRow]:
    """WER per minute of one joined stream beside the same utterances transcribed alone."""
    from tqdm import tqdm

    from voxkit.asr.session import FILE_CHUNK_STEPS, StreamingSession, transcribe_batch

    stream, placements = join_utterances(waves, texts, minutes, seed)
    used = sorted({p.index for p in placements})
    alone_text = dict(zip(used, (t.text for t in transcribe_batch(model, tokenizer, [waves[i] for i in used], delay)), strict=True))

    device = next(model.parameters()).device
    session = StreamingSession(model, tokenizer, 1, device=device, chunk_steps=FILE_CHUNK_STEPS)
    session.start(0, delay)
    words: list[tuple[str, float]] = []
    minute = 60 * ASR_SAMPLE_RATE
    rss: list[float] = []
    try:
        for start in tqdm(range(0, stream.numel(), minute), desc="long-form stream (minutes)", disable=not progress):
            session.push(0, stream[start : start + minute])
            while ready := session.steps_ready():
                words += [(e.text, e.start) for e in session.step(min(ready, FILE_CHUNK_STEPS)) if e.kind == "word"]
            rss.append(resident_mb())
        session.finish(0)
        while session.active:
            words += [(e.text, e.start) for e in session.step(min(session.steps_ready(), FILE_CHUNK_STEPS)) if e.kind == "word"]
    finally:
        session.close()

    heard = assign_words(words, placements)
    rows: dict[int, MinuteRow] = {}
    for placement, hyp in zip(placements, heard, strict=True):
        m = int(placement.start // 60)
        row = rows.setdefault(m, MinuteRow(m, 0, 0, 0, 0, rss[min(m, len(rss) - 1)]))
        stream_errors, n = utterance_errors(placement.text, " ".join(hyp))
        alone_errors, _ = utterance_errors(placement.text, alone_text[placement.index])
        row.utterances += 1
        row.reference_words += n
        row.stream_errors += stream_errors
        row.alone_errors += alone_errors
    return [rows[m] for m in sorted(rows)]


def format_long_form(rows: Sequence[MinuteRow], delay_ms: int) -> str:
    """A markdown table: one line per minute, then the worst ratio of stream to alone."""
    lines = [
        f"Long-form stream at {delay_ms} ms: WER per minute (%), the same utterances alone beside it",
        "",
        "| minute | utterances | words | stream WER | alone WER | ratio | resident MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r.stream_wer / r.alone_wer if r.alone_wer else float("inf") if r.stream_wer else 1.0
        lines.append(
            f"| {r.minute + 1} | {r.utterances} | {r.reference_words} | {r.stream_wer:.1f} | {r.alone_wer:.1f} "
            f"| {ratio:.2f} | {r.rss_mb:.0f} |"
        )
    worst = max(rows, key=lambda r: r.stream_wer - r.alone_wer, default=None)
    if worst is not None:
        lines += ["", f"worst minute: {worst.minute + 1} ({worst.stream_wer:.1f} % in the stream, {worst.alone_wer:.1f} % alone)"]
    return "\n".join(lines)
