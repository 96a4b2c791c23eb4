"""Word times stay inside the audio: the bundled model's transcripts, their events and their captions."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

import voxkit
from voxkit.asr.transcript import Transcript, Word, render
from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.io import load_audio

SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"
# Clips that end inside speech, cut mid-word: the bundled model writes their last words during the
# end-of-stream flush, at steps past the end of the audio (seconds of each sample).
CUTS = {"en": [7.7, None], "fr": [1.37, 2.48, 3.59], "es": [4.7, None]}
CUE = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    out = {}
    for lang, cuts in CUTS.items():
        wav = load_audio(SAMPLES / f"{lang}.flac", ASR_SAMPLE_RATE).numpy()
        for cut in cuts:
            out[f"{lang}@{cut or 'end'}"] = wav if cut is None else wav[: int(cut * ASR_SAMPLE_RATE)]
    return out


def _cue_seconds(text: str) -> list[tuple[float, float]]:
    def sec(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [(sec(*m.groups()[:4]), sec(*m.groups()[4:])) for m in CUE.finditer(text)]


def _check_words(name: str, words: list[Word], duration: float) -> None:
    assert words, name
    for w in words:
        assert 0.0 <= w.start < w.end <= duration, (name, w, duration)
    for before, after in pairwise(words):
        assert before.end <= after.start, (name, before, after)


def test_word_times_of_clips_cut_mid_word_stay_inside_the_audio(transcriber: voxkit.Transcriber, clips: dict[str, np.ndarray]) -> None:
    results = transcriber.transcribe_many(list(clips.values()))
    for (name, wav), result in zip(clips.items(), results, strict=True):
        assert result.duration == pytest.approx(wav.shape[0] / ASR_SAMPLE_RATE)
        _check_words(name, result.words, result.duration)
        data = json.loads(render(result, "json"))
        assert all(w["start"] < w["end"] <= data["duration"] for w in data["words"]), name
        for fmt in ("srt", "vtt"):
            for words in (False, True):
                cues = _cue_seconds(render(result, fmt, word_timestamps=words))
                assert cues and all(start < end for start, end in cues), (name, fmt)
                assert cues[-1][1] <= result.duration, (name, fmt, cues[-1], result.duration)


def test_stream_reports_each_word_once_with_the_transcript_times(transcriber: voxkit.Transcriber, clips: dict[str, np.ndarray]) -> None:
    for name in ("fr@2.48", "es@4.7"):
        stream = transcriber.stream()
        wav = clips[name]
        events = []
        for start in range(0, wav.shape[0], 3000):
            events += stream.push(wav[start : start + 3000])
        events += stream.finish()
        words = stream.transcript.words
        _check_words(name, words, stream.transcript.duration)
        assert [(e.text, e.start, e.end) for e in events if e.kind == "word"] == [(w.text, w.start, w.end) for w in words]
        assert [e.kind for e in events].count("final") == 1 and events[-1].kind == "final"
        assert events[-1].text == stream.transcript.text
        assert all(0.0 <= e.start <= stream.transcript.duration for e in events if e.kind == "delta")


def test_cue_times_are_cut_to_the_millisecond_not_rounded_past_the_end() -> None:
    # 15275 samples: 0.9546875 s. Rounded, the last cue would end at ,955, after the audio.
    transcript = Transcript([Word("raining", 0.32, 0.7946875), Word("again", 0.7946875, 0.9546875)], 0.9546875)
    srt = render(transcript, "srt", word_timestamps=True)
    assert "00:00:00,794 --> 00:00:00,954\nagain" in srt
    assert _cue_seconds(render(transcript, "vtt"))[-1] == (0.32, 0.954)
    assert "00:00:01,102" in render(Transcript([Word("a", 1.0, 1.1019999999999999)], 1.2), "srt")  # 1101.99999... ms


def test_cues_of_a_hand_made_transcript_end_with_its_audio() -> None:
    transcript = Transcript([Word("a", 0.0, 0.5), Word("b", 0.5, 1.4)], 1.0)
    for fmt in ("srt", "vtt"):
        assert _cue_seconds(render(transcript, fmt, word_timestamps=True))[-1] == (0.5, 1.0)
        assert _cue_seconds(render(transcript, fmt))[-1] == (0.0, 1.0)


def test_a_caption_ends_at_a_pause() -> None:
    """The bundled model writes no punctuation: a caption spanned a 3 s silence and joined the
    sentences on both sides of it."""
    words = [Word("shipped", 0.0, 0.5), Word("on", 0.5, 0.7), Word("eleventh", 0.7, 1.2),  # then 1.5 s of silence
             Word("order", 2.7, 3.0), Word("number", 3.0, 3.4), Word("seven", 4.3, 4.6)]  # a 0.9 s hesitation
    transcript = Transcript(words=words, duration=5.0)
    assert [(s["start"], s["end"], s["text"]) for s in transcript.segments()] == [
        (0.0, 1.2, "shipped on eleventh"), (2.7, 4.6, "order number seven")]
    assert _cue_seconds(render(transcript, "srt")) == [(0.0, 1.2), (2.7, 4.6)]
    assert len(transcript.segments(max_gap=0.5)) == 3
