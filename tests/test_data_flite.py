"""Flite renderings with word timings (voxkit.data.flite) and scripts/flite_corpus.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxkit.data.flite import FliteVoice, _matches, parse_segments, render_flite, split_words
from voxkit.data.text import token_spans

ROOT = Path(__file__).resolve().parents[1]


def test_segments_are_split_into_words_by_their_phones() -> None:
    segs = parse_segments("pau:0.2 dh:0.25 ax:0.3 k:0.4 ae:0.5 t:0.6 pau:0.8 r:0.9 ae:1.0 n:1.1 pau:1.3")
    assert segs[0] == ("pau", 0.2) and segs[-1] == ("pau", 1.3)
    # pauses belong to no word: "ran" starts where the pause before it ends
    assert split_words(segs, [["dh", "ax"], ["k", "ae", "t"], ["r", "ae", "n"]]) == [(0.2, 0.3), (0.3, 0.6), (0.8, 1.1)]
    assert split_words(segs, [["dh", "ax"], ["k", "ae", "t"], ["r", "ae"]]) is None  # a count that disagrees


def test_printed_words_must_spell_the_written_ones() -> None:
    assert _matches(["They'll", "pay", "fifty-one"], ["they", "'ll", "pay", "fifty", "one"])
    assert not _matches(["In", "1990"], ["in", "nineteen", "ninety"])
    assert not _matches(["a", "b"], ["a", "b", "c"])


@pytest.mark.parametrize("voice", [FliteVoice("slt"), FliteVoice("awb", 120.0, 1.1), FliteVoice("kal16", 100.0, 0.9)])
def test_rendered_words_are_timed_in_order_inside_the_audio(voice: FliteVoice) -> None:
    text = "They'll pay fifty-one dollars, she said, and the weather was warm."
    rendered = render_flite(text, voice)
    assert rendered is not None
    wav, words = rendered
    assert wav.dtype == np.float32 and wav.ndim == 1 and 0 < np.abs(wav).max() <= 1.0
    assert [w["word"] for w in words] == [w for _, _, w in token_spans(text)]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["end"] > w["start"] for w in words)
    assert words[-1]["end"] <= wav.size / 16000
    # a word's audio is louder than the pause at the comma after "dollars"
    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(wav[int(a * 16000) : int(b * 16000)] ** 2)))

    dollars, she = words[3], words[4]
    assert she["start"] - dollars["end"] > 0.05 and rms(dollars["end"], she["start"]) < 0.3 * rms(dollars["start"], dollars["end"])


def test_pitch_and_rate_change_the_voice_and_digits_are_rejected() -> None:
    low = render_flite("The cat sat on the mat.", FliteVoice("slt", 140.0))
    high = render_flite("The cat sat on the mat.", FliteVoice("slt", 220.0))
    slow = render_flite("The cat sat on the mat.", FliteVoice("slt", 140.0, 1.2))
    assert low is not None and high is not None and slow is not None
    assert not np.array_equal(low[0], high[0]) and slow[0].size > low[0].size * 1.1
    assert FliteVoice("slt", 140.0, 1.2).speaker == "flite:slt:f140:s1.20"
    assert render_flite("It was 1990.", FliteVoice("slt")) is None  # Flite reads digits as words the text does not have
    # Flite splits a curly quote's bytes in its output: rejected, not a UnicodeDecodeError
    assert render_flite("He said, \u201cI am your son.\u201d", FliteVoice("slt")) is None


def test_corpus_script_renders_a_split_with_the_voices_given(tmp_path: Path) -> None:
    rows = [{"audio": "x.wav", "text": t, "language": lang, "duration": 2.0}
            for t, lang in [("The cat sat on the mat.", "en"), ("Der Hund schläft.", "de"), ("She sold sea shells.", "en")]]
    source = tmp_path / "source.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "corpus"
    script = ROOT / "scripts" / "flite_corpus.py"
    cmd = [sys.executable, str(script), str(source), str(out), "--split", "dev", "--voices", "rms", "--workers", "1"]
    subprocess.run(cmd, check=True, capture_output=True)
    made = [json.loads(line) for line in (out / "dev.jsonl").read_text().splitlines()]
    assert sorted(r["text"] for r in made) == ["She sold sea shells.", "The cat sat on the mat."]  # English only
    for r in made:
        assert r["speaker"].startswith("flite:rms:") and r["language"] == "en"
        wav, rate = sf.read(out / r["audio"])
        assert rate == 16000 and abs(wav.size / rate - r["duration"]) < 1e-3 and r["words"][-1]["end"] <= r["duration"]
    bad = subprocess.run([*cmd[:-4], "--voices", "kal", "--workers", "1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown voice" in bad.stderr and "Traceback" not in bad.stderr
