"""``voxkit eval tts``: references are other clips of the same speaker, the WER and similarity
columns sit between the manifest's own yardsticks, and the command line gives a table (or a
one-line error) as a user sees them.

Most tests use tones in place of speech: each clip is a harmonic tone whose pitch names the clip,
a fake recogniser "hears" the text of the nearest pitch and a fake speaker encoder maps the pitch
to its speaker, so every expected number is known exactly. One test runs Resemblyzer on espeak-ng
speech when the tts-eval extra is installed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_helpers import one_line_error, run_cli
from voxkit.asr import peer as asr_peer
from voxkit.data.manifest import read_manifest, write_manifest
from voxkit.errors import AudioError, VoxkitError
from voxkit.tts import evaluate as tts_eval
from voxkit.tts.evaluate import POSITION_GOAL, choose_references, evaluate_tts, format_table
from voxkit.tts.speaker_embedding import ResemblyzerEmbedder, load_embedder

RATE = 16000
SPEAKERS = {"ann": (150.0, "x"), "bob": (300.0, "x"), "cy": (450.0, "y")}  # base pitch, engine
TEXTS = ["The cat sat on the mat.", "A bird flew over the house.", "Rain fell all night long."]


def tone(pitch: float, seconds: float, rate: int = RATE) -> np.ndarray:
    """A harmonic tone at ``pitch`` Hz with a slow swell, float32 [N]."""
    t = np.arange(int(seconds * rate)) / rate  # [N]
    wave = sum(np.sin(2 * np.pi * pitch * h * t) / h for h in range(1, 4))  # [N]
    return (0.3 * wave / np.abs(wave).max() * np.sin(np.pi * t / seconds)).astype(np.float32)


def pitch_of(wave: np.ndarray, rate: int) -> float | None:
    """The strongest frequency of a clip, or None when nothing stands out (noise, silence)."""
    spectrum = np.abs(np.fft.rfft(wave))  # [F]
    if wave.size < rate // 10 or spectrum.max() < 20 * np.median(spectrum) + 1e-9:
        return None
    return float(np.fft.rfftfreq(wave.size, 1 / rate)[spectrum.argmax()])


CLIPS = {(name, k): base + 20.0 * k for name, (base, _) in SPEAKERS.items() for k in range(3)}  # pitch of each clip


def nearest_clip(wave: np.ndarray, rate: int) -> tuple[str, int] | None:
    pitch = pitch_of(wave, rate)
    if pitch is None:
        return None
    clip = min(CLIPS, key=lambda c: abs(CLIPS[c] - pitch))
    return clip if abs(CLIPS[clip] - pitch) < 5 else None


class PitchRecogniser:
    """Hears the text of the clip with the nearest pitch (nothing in noise)."""

    name = "pitch"

    def transcribe(self, wave: torch.Tensor) -> str:
        assert wave.dtype == torch.float32 and wave.ndim == 1
        clip = nearest_clip(wave.numpy(), RATE)
        return "" if clip is None else TEXTS[clip[1]].upper().rstrip(".")  # case and punctuation: the normaliser's job


class PitchEmbedder:
    """One dimension per speaker (1) and one per clip (0.5): cosine 1 same clip, 0.8 same speaker, 0 otherwise."""

    name = "pitch"

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        clip = nearest_clip(audio, RATE)
        if clip is None:
            return None
        e = np.zeros(len(SPEAKERS) + len(CLIPS), dtype=np.float32)
        e[list(SPEAKERS).index(clip[0])] = 1.0
        e[len(SPEAKERS) + list(CLIPS).index(clip)] = 0.5
        return e


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Three speakers (ann, bob: engine x; cy: engine y) with three sentences each, one lone speaker, one row without a speaker."""
    rows = []
    for (name, k), pitch in CLIPS.items():
        path = tmp_path / f"{name}{k}.wav"
        sf.write(path, tone(pitch, 1.5 + 0.5 * k), RATE)
        rows.append({"audio": str(path), "text": TEXTS[k], "speaker": name, "engine": SPEAKERS[name][1], "language": "en"})
    sf.write(tmp_path / "solo.wav", tone(700.0, 1.5), RATE)
    rows.append({"audio": str(tmp_path / "solo.wav"), "text": TEXTS[0], "speaker": "solo", "engine": "x"})
    rows.append({"audio": str(tmp_path / "ann0.wav"), "text": "No speaker here."})
    path = tmp_path / "test.jsonl"
    write_manifest(path, rows)
    return path


def rows_of(manifest: Path) -> list[dict]:
    return read_manifest(manifest, required=("audio", "text"))


def oracle(text: str, reference: np.ndarray, rate: int, language: str | None, reference_text: str | None) -> tuple[np.ndarray, int]:
    """The sentence in the reference's voice, exactly as the manifest has it, at 24 kHz (a perfect cloner)."""
    speaker = nearest_clip(reference, rate)
    assert speaker is not None
    return tone(CLIPS[(speaker[0], TEXTS.index(text))], 1.5 + 0.5 * TEXTS.index(text), 24000), 24000


def test_references_are_other_clips_of_the_same_speaker(manifest: Path) -> None:
    rows = rows_of(manifest)
    pairs, notes = choose_references(rows, seed=0)
    assert [i for i, _ in pairs] == list(range(9))  # the lone speaker and the unnamed row are left out
    for i, j in pairs:
        assert i != j and rows[i]["speaker"] == rows[j]["speaker"] and rows[i]["text"] != rows[j]["text"]
    assert notes == ["skipped 1 row(s) without a speaker field (a reference must be another clip of the same speaker)",
                     "skipped 1 row(s) of 1 speaker(s) with no other clip to use as the reference"]
    assert choose_references(rows, seed=0) == (pairs, notes)  # repeatable
    # 3-30 s clips first: ann2 (2.5 s) and a 3.5 s clip of bob's
    rows[2]["duration"], rows[4]["duration"] = 3.5, 3.5
    again, _ = choose_references(rows, seed=5)
    assert dict(again)[0] == 2 and dict(again)[3] == 4 and dict(again)[5] == 4


def test_a_perfect_cloner_scores_like_the_manifest(manifest: Path) -> None:
    result = evaluate_tts(rows_of(manifest), oracle, PitchRecogniser(), PitchEmbedder(), progress=False)
    table = {(s.model, s.engine): s for s in result.summaries}
    assert list(table) == [("model", "x"), ("model", "y"), ("model", "all")]
    overall = table["model", "all"]
    assert overall.rows == 9 and overall.wer == 0.0 and overall.reference_wer == 0.0
    assert overall.similarity == pytest.approx(0.8) and overall.ceiling == pytest.approx(0.8) and overall.floor == pytest.approx(0.0)
    assert overall.position == pytest.approx(1.0) and overall.meets_wer and overall.meets_similarity
    assert table["model", "y"].floor is None and table["model", "y"].position is None  # one speaker: no floor
    text = format_table(result)
    assert "| model | all | 9 | 0.0 | 0.0 | 0.800 | 0.000 | 0.800 | 1.00 |" in text
    assert ("Goals for model: WER <= 15 %: 0.0 %, met; similarity closer to the ceiling than to the floor (position > 0.5): 1.00, met"
            in text)
    assert "y: one speaker only, so no floor (it needs two different speakers)" in text
    assert "skipped 1 row(s) of 1 speaker(s) with no other clip to use as the reference" in text
    rows = result.to_json()["rows"]
    json.dumps(result.to_json())
    assert {r["model"] for r in rows} == {"manifest", "model"} and len(rows) == 18
    assert all(r["reference"] != r["audio"] for r in rows)


def test_copying_the_reference_wrong_voices_and_noise_each_fail_their_goal(manifest: Path) -> None:
    def copy(text: str, reference: np.ndarray, rate: int, *_: object) -> tuple[np.ndarray, int]:
        return reference, rate  # the voice, but the reference's words

    def other_voice(text: str, reference: np.ndarray, rate: int, *_: object) -> tuple[np.ndarray, int]:
        speaker = nearest_clip(reference, rate)[0]  # type: ignore[index]
        other = "bob" if speaker == "ann" else "ann"
        return tone(CLIPS[(other, TEXTS.index(text))], 2.0), RATE  # the words, in someone else's voice

    def noise(*_: object) -> tuple[np.ndarray, int]:
        return np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.1, RATE

    result = evaluate_tts(rows_of(manifest), {"copy": copy, "other": other_voice, "noise": noise}, PitchRecogniser(), PitchEmbedder(),
                          progress=False)
    table = {s.model: s for s in result.summaries if s.engine == "all"}
    assert table["copy"].wer > 90 and table["copy"].similarity == pytest.approx(1.0) and table["copy"].position > 1
    assert table["copy"].meets_wer is False and table["copy"].meets_similarity is True
    assert table["other"].wer == 0.0 and table["other"].similarity == pytest.approx(0.0) and table["other"].position == pytest.approx(0.0)
    assert table["other"].meets_similarity is False
    assert table["noise"].wer == 100.0 and table["noise"].similarity is None and table["noise"].similarity_missing == 9
    text = format_table(result)
    assert ("Goals for noise: WER <= 15 %: 100.0 %, NOT met; similarity closer to the ceiling than to the floor (position > 0.5): -, "
            "not measured") in text
    assert "noise (all): 9 of 9 outputs had no voiced audio to embed; its similarity is the mean over the rest" in text
    assert POSITION_GOAL == 0.5


def test_the_synthesiser_gets_text_reference_language_and_optionally_the_reference_transcript(manifest: Path) -> None:
    rows = rows_of(manifest)
    calls = []

    def spy(text: str, reference: np.ndarray, rate: int, language: str | None, reference_text: str | None) -> tuple[np.ndarray, int]:
        calls.append((text, nearest_clip(reference, rate), rate, language, reference_text))
        return oracle(text, reference, rate, language, reference_text)

    for with_text in (False, True):
        calls.clear()
        result = evaluate_tts(rows, spy, None, None, limit=2, reference_text=with_text, progress=False)
        pairs, _ = choose_references(rows)
        assert len(calls) == 2 and result.summaries[0].wer is None and result.summaries[0].similarity is None
        for (text, clip, rate, language, reference_text), (i, j) in zip(calls, pairs, strict=False):
            assert text == rows[i]["text"] and clip == (rows[j]["speaker"], TEXTS.index(rows[j]["text"])) and rate == RATE
            assert language == "en" and reference_text == (rows[j]["text"] if with_text else None)


def test_unusable_output_and_synthesis_errors_name_the_row(manifest: Path) -> None:
    rows = rows_of(manifest)
    for out, error, message in (((np.zeros(100, np.float32), 0), VoxkitError, "returned an invalid sample rate 0"),
                                ((np.full(100, np.nan, np.float32), RATE), AudioError, "returned unusable audio for")):
        with pytest.raises(error, match=message):
            evaluate_tts(rows, lambda *_, o=out: o, None, None, progress=False)

    def refuses(*_: object) -> tuple[np.ndarray, int]:
        raise VoxkitError("the reference is silent")

    with pytest.raises(VoxkitError, match=r"^model on .*ann0.wav \(reference .*ann\d.wav\): the reference is silent$"):
        evaluate_tts(rows, refuses, None, None, progress=False)
    empty = evaluate_tts(rows, lambda *_: (np.zeros(0, np.float32), RATE), PitchRecogniser(), None, limit=3, progress=False)
    assert [s.wer for s in empty.summaries] == [100.0]  # silence is scored: every word missed
    lonely = [{"audio": r["audio"], "text": r["text"], "speaker": str(i)} for i, r in enumerate(rows)]
    with pytest.raises(VoxkitError, match="no rows to evaluate: skipped 11 row"):
        evaluate_tts(lonely, oracle, None, None, progress=False)


def test_digits_from_the_recogniser_get_a_note(manifest: Path) -> None:
    class Digits(PitchRecogniser):
        def transcribe(self, wave: torch.Tensor) -> str:
            text = super().transcribe(wave)
            return text.replace("A BIRD", "1 BIRD")

    result = evaluate_tts(rows_of(manifest), oracle, Digits(), None, progress=False)
    assert result.notes[-1] == ("the recogniser wrote digits for 3 of 9 rows' manifest audio, whose texts spell numbers out (scored as "
                                "word errors); without those rows, WER: model 0.0 %, manifest audio 0.0 %")


# ----------------------------------------------------------------------------- Resemblyzer on speech


@pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None, reason="needs the tts-eval extra (resemblyzer)")
def test_resemblyzer_tells_espeak_voices_apart(tmp_path: Path) -> None:
    from voxkit.data.espeak import Voice
    from voxkit.data.synth import render

    voices = {"low": Voice("en-us", "m3", pitch=20), "high": Voice("en-us", "f2", pitch=80)}
    sentences = ["The old man walked slowly to the market in the morning.", "She opened the window and looked at the garden.",
                 "Nobody knew where the little boat had gone after the storm."]
    rows = []
    for name, voice in voices.items():
        for k, sentence in enumerate(sentences):
            wave = render(sentence, voice)[0][RATE]  # type: ignore[index]
            sf.write(tmp_path / f"{name}{k}.wav", wave, RATE)
            rows.append({"audio": str(tmp_path / f"{name}{k}.wav"), "text": sentence, "speaker": name})
    by_text = {(r["speaker"], r["text"]): r["audio"] for r in rows}
    embedder = load_embedder()
    assert isinstance(embedder, ResemblyzerEmbedder)
    assert embedder.embed(np.zeros(RATE, np.float32)) is None

    def clone(voice_of: str) -> tts_eval.Synthesize:
        def synthesize(text: str, reference: np.ndarray, rate: int, *_: object) -> tuple[np.ndarray, int]:
            own = next(s for s in voices for t in sentences if _same(reference, by_text[(s, t)]))  # the reference's voice
            target = own if voice_of == "same" else next(v for v in voices if v != own)
            return sf.read(by_text[(target, text)], dtype="float32")[0], RATE
        return synthesize

    result = evaluate_tts(rows, {"same": clone("same"), "other": clone("other")}, None, embedder, progress=False)
    same, other = result.summaries
    assert same.ceiling - same.floor > 0.1  # two espeak voices far apart in pitch and timbre
    assert same.position == pytest.approx(1.0) and same.meets_similarity
    assert other.position < POSITION_GOAL and other.meets_similarity is False


def _same(reference: np.ndarray, path: str) -> bool:
    clip = sf.read(path, dtype="float32")[0]
    return clip.size == reference.size and np.allclose(clip, reference, atol=1e-4)


def test_a_missing_resemblyzer_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # import fails as if not installed
    with pytest.raises(VoxkitError, match=r"^speaker similarity needs the tts-eval extra \(resemblyzer is missing\): "
                                          r"pip install 'voxkit\[tts-eval\]'$"):
        load_embedder()


# ----------------------------------------------------------------------------- command line


def test_cli_mistakes_are_one_line_errors(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for args, message in (([str(tmp_path / "nope.jsonl")], "manifest not found"),
                          ([str(manifest), "--limit", "0"], "--limit takes a number of rows of at least 1"),
                          ([str(manifest), "--steps", "0"], "--steps must be at least 1"),
                          ([str(manifest), "--json", str(tmp_path)], "is a folder; give a file name"),
                          ([str(manifest), "--model", str(tmp_path / "none"), "--recogniser", "none"], "no such folder")):
        code, _, err = run_cli(["eval", "tts", *args], capsys)
        assert code == 2 and message in one_line_error(err), err
    lonely = tmp_path / "lonely.jsonl"
    write_manifest(lonely, [{"audio": r["audio"], "text": r["text"], "speaker": str(i)} for i, r in enumerate(rows_of(manifest))])
    code, _, err = run_cli(["eval", "tts", str(lonely)], capsys)
    assert code == 2 and "no rows to evaluate in" in one_line_error(err) and "with no other clip" in err

    def not_installed(threads: int) -> asr_peer.Peer:
        raise VoxkitError("--peer whisper-tiny.en needs the peer extra (faster_whisper is missing): pip install 'voxkit[peer]'")

    monkeypatch.setitem(asr_peer.PEERS, "whisper-tiny.en", not_installed)
    code, _, err = run_cli(["eval", "tts", str(manifest)], capsys)
    assert code == 2 and one_line_error(err).endswith("error: --recogniser whisper-tiny.en needs the peer extra (faster_whisper is "
                                                      "missing): pip install 'voxkit[peer]'")


def test_cli_evaluates_a_tiny_model_and_writes_json(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tts_helpers import tiny_tts_folder

    folder = tiny_tts_folder(tmp_path / "tiny")
    monkeypatch.setattr("voxkit.tts.speaker_embedding.load_embedder", lambda name="resemblyzer": PitchEmbedder())
    out = tmp_path / "scores.json"
    code, text, err = run_cli(["eval", "tts", str(manifest), "--model", str(folder), "--limit", "2", "--steps", "2",
                               "--recogniser", "none", "--json", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert text.startswith(f"Voice cloning on {manifest} (2 rows; each voice cloned from another clip of its speaker; "
                           "similarity by pitch; 2 steps, CFG 1.2, seed 0)")
    assert "| tiny | x | 2 | - | - |" in text  # random weights speak noise: no pitch to embed
    saved = json.loads(out.read_text())
    assert saved["models"] == {"tiny": str(folder)} and saved["steps"] == 2 and len(saved["rows"]) == 4
    assert saved["summaries"][0]["similarity_missing"] == 2
