"""Evaluation of audio-chat models: transcription WER next to Whisper tiny.en, and instruction accuracy.

Why both: a chat model that answers "how many words?" right but cannot write what it hears has
learnt the questions, not the audio; a model that transcribes but ignores the question has learnt
one task. The WER is the chat model's transcription request (``lang:en[TRANSCRIBE]``) on each
clip, scored with the recogniser's normaliser beside Whisper tiny.en's own figure on the same
clips (the peer separates "the clips are hard" from "the model is weak"). Instruction accuracy is
the exact match of the normalised answer, per kind, on held-out instruction examples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from voxkit.asr.evaluate import normalize_text, word_error_rate


@dataclasses.dataclass
class KindScore:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / max(1, self.total)


def transcripts(chat: Any, waves: Sequence[torch.Tensor], *, language: str | None = "en", progress: bool = True) -> list[str]:
    """The chat model's transcription of every clip ([T] at 16 kHz), one request per clip."""
    from tqdm import tqdm

    return [chat.transcribe(w, language=language) for w in tqdm(waves, desc="chat transcribe", disable=not progress)]


def transcription_wer(rows: Sequence[dict[str, Any]], hypotheses: Sequence[str]) -> float:
    """Corpus WER in percent of ``hypotheses`` against the rows' texts."""
    return 100.0 * word_error_rate([r["text"] for r in rows], hypotheses)


def answers_match(answer: str, reply: str) -> bool:
    """Exact match after the recogniser's normalisation (case, punctuation, spacing)."""
    return normalize_text(answer) == normalize_text(reply)


def instruction_accuracy(
    chat: Any, examples: Sequence[Any], *, max_new_tokens: int = 64, progress: bool = True
) -> tuple[dict[str, KindScore], list[str]]:
    """Per-kind exact-match accuracy of the chat model's replies on instruction examples (greedy).

    Transcription examples are left to :func:`transcription_wer` (an exact match of a whole
    sentence says little); every other kind has one short right answer.
    """
    from tqdm import tqdm

    scores: dict[str, KindScore] = {}
    replies: list[str] = []
    for example in tqdm(examples, desc="instructions", disable=not progress):
        if example.kind == "transcribe":
            continue
        reply = chat.generate(example.messages, max_new_tokens=max_new_tokens)
        replies.append(reply)
        score = scores.setdefault(example.kind, KindScore())
        score.total += 1
        score.correct += answers_match(example.answer, reply)
    return dict(sorted(scores.items())), replies


def format_wer_table(table: dict[str, dict[str, tuple[int, float]]]) -> str:
    """``{manifest: {column: (clips, WER %)}}`` as a markdown table, one row per manifest.

    A column that scored fewer clips than the row's first (an English-only peer on a manifest of
    several languages) says over how many, so that its figure is not read as the others'; "-": none.
    """
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    lines = ["| clips | n | " + " | ".join(f"{c} WER %" for c in columns) + " |", "|---|---|" + "---|" * len(columns)]
    for name, row in table.items():
        n = next(iter(row.values()))[0] if row else 0
        lines.append(f"| {name} | {n} | " + " | ".join(_wer_cell(row.get(c), n) for c in columns) + " |")
    return "\n".join(lines)


def _wer_cell(scored: tuple[int, float] | None, n: int) -> str:
    if scored is None:
        return "-"
    count, wer = scored
    return f"{wer:.1f}" + (f" ({count} of {n} clips)" if count != n else "")


def format_accuracy_table(scores: dict[str, dict[str, KindScore]]) -> str:
    """``{model: {kind: score}}`` as a markdown table, one row per kind; a one-line note when no kind
    was scored (only ``transcribe`` examples, which :func:`instruction_accuracy` leaves to the WER),
    since a header without rows reads as a table that failed to fill."""
    models = list(scores)
    kinds = sorted({k for s in scores.values() for k in s})
    if not kinds:
        return ("No instruction accuracy: every example is a transcribe request, which exact match does not score "
                "(transcription is measured by the WER table above, on the manifests).")
    lines = ["| kind | " + " | ".join(f"{m} accuracy %" for m in models) + " |", "|---|" + "---|" * len(models)]
    for kind in kinds:
        cells = []
        for m in models:
            s = scores[m].get(kind)
            cells.append(f"{s.accuracy:.1f} ({s.correct}/{s.total})" if s else "-")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
