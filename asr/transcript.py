"""Transcripts: words with times, and the txt / srt / vtt / json renderings whisper users expect."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from voxkit.errors import OptionError

FORMATS = ("txt", "srt", "vtt", "json")


@dataclasses.dataclass
class Word:
    """One recognised word and its span in the audio."""

    text: str
    start: float  # seconds from the start of the audio
    end: float


@dataclasses.dataclass
class Transcript:
    """What a recogniser heard: its words in order, with times, and the audio's length.
    :meth:`to_json` is the whisper-style dict (text, segments, words) of JSON types."""

    words: list[Word]
    duration: float  # seconds of audio

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words if w.text)

    def segments(self, max_seconds: float = 8.0, max_words: int = 14, max_gap: float = 1.0) -> list[dict[str, Any]]:
        """Caption-sized groups of words, cut after sentence punctuation, when too long, or at a
        pause: a word that starts more than ``max_gap`` seconds after the last one ended opens a
        new group. Why the pause: a model that writes no punctuation (the bundled one) otherwise
        gave one caption that spanned a silence and joined the sentences on both sides of it."""
        segments: list[dict[str, Any]] = []
        current: list[Word] = []
        for w in self.words:
            if current and w.start - current[-1].end > max_gap:
                segments.append(_segment(current))
                current = []
            current.append(w)
            long = current[-1].end - current[0].start >= max_seconds or len(current) >= max_words
            if w.text.endswith((".", "!", "?", "。", "…")) or long:
                segments.append(_segment(current))
                current = []
        if current:
            segments.append(_segment(current))
        return segments

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "duration": round(self.duration, 3),
            "segments": self.segments(),
            "words": [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)} for w in self.words],
        }


def _segment(words: list[Word]) -> dict[str, Any]:
    return {"start": round(words[0].start, 3), "end": round(words[-1].end, 3), "text": " ".join(w.text for w in words)}


def _timestamp(seconds: float, sep: str) -> str:
    """``HH:MM:SS,mmm``, cut (not rounded) to the millisecond: a cue that ends with the audio must
    not end after it, and rounding 0.9546875 s up to ,955 would."""
    ms = math.floor(max(0.0, seconds) * 1000 + 1e-6)  # the 1e-6 keeps 1.102 (1101.99999...) at ,102
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render(transcript: Transcript, fmt: str, word_timestamps: bool = False) -> str:
    """Render as ``txt``, ``srt``, ``vtt`` or ``json`` (one word per cue with ``word_timestamps``)."""
    if fmt == "txt":
        return transcript.text + "\n"
    if fmt == "json":
        return json.dumps(transcript.to_json(), ensure_ascii=False) + "\n"
    cues = (
        [{"start": w.start, "end": w.end, "text": w.text} for w in transcript.words]
        if word_timestamps
        else transcript.segments()
    )
    # A recogniser's words lie inside the audio (asr/session.py fits them); a transcript built by
    # hand or by another tool may not, and a player shows a cue past the end over nothing.
    cues = [{**c, "start": min(c["start"], transcript.duration), "end": min(c["end"], transcript.duration)} for c in cues]
    if fmt == "srt":
        blocks = [f"{i}\n{_timestamp(c['start'], ',')} --> {_timestamp(c['end'], ',')}\n{c['text']}\n" for i, c in enumerate(cues, 1)]
        return "\n".join(blocks)
    if fmt == "vtt":
        blocks = [f"{_timestamp(c['start'], '.')} --> {_timestamp(c['end'], '.')}\n{c['text']}\n" for c in cues]
        return "WEBVTT\n\n" + "\n".join(blocks)
    raise OptionError(f"unknown format {fmt!r}: render() writes one of {', '.join(FORMATS)}")
