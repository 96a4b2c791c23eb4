"""Quiet input raised to the training level (asr/level.py): causal, chunking-free, and a no-op at normal level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import voxkit
from voxkit.asr.features import SAMPLES_PER_STEP
from voxkit.asr.level import BLOCK_STEPS, MAX_BOOST_DB, TARGET_DB, QuietBoost, raise_quiet
from voxkit.asr.segments import step_energies
from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.io import load_audio

SAMPLE = Path(voxkit.__file__).parent / "assets" / "samples" / "en.flac"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(SAMPLE, ASR_SAMPLE_RATE).numpy()


@pytest.fixture(scope="module")
def transcriber() -> voxkit.Transcriber:
    return voxkit.Transcriber()


def test_speech_at_the_training_level_passes_bit_for_bit(speech: np.ndarray) -> None:
    assert step_energies(speech).max() > TARGET_DB  # the bundled sample is at the training level
    assert np.array_equal(raise_quiet(speech), speech)
    assert np.array_equal(raise_quiet(speech * 2), speech * 2)  # louder is never lowered


def test_quiet_speech_is_raised_to_the_target_and_never_over_it(speech: np.ndarray) -> None:
    room = np.zeros(ASR_SAMPLE_RATE, np.float32)  # a second before the first word (the sample starts at its loudest)
    quiet = (np.concatenate([room, speech]) * 10 ** (-35 / 20)).astype(np.float32)  # [N]
    raised = raise_quiet(quiet)
    assert raised.shape == quiet.shape
    energy = step_energies(raised)
    assert energy.max() == pytest.approx(TARGET_DB, abs=0.01)  # the loudest step lands on the target
    assert (energy <= TARGET_DB + 1e-6).all()
    # once the loudest step has been heard the gain holds: the rest is the original, raised evenly
    loudest = int(np.argmax(step_energies(quiet)))
    tail = slice((loudest + 1) * SAMPLES_PER_STEP, quiet.shape[0] // SAMPLES_PER_STEP * SAMPLES_PER_STEP)
    ratio = raised[tail][np.abs(quiet[tail]) > 1e-4] / quiet[tail][np.abs(quiet[tail]) > 1e-4]
    assert ratio == pytest.approx(np.full_like(ratio, ratio[0]), rel=1e-5)
    assert 20 * np.log10(ratio[0]) < MAX_BOOST_DB + 1e-6


def test_the_same_samples_whatever_the_chunking(speech: np.ndarray) -> None:
    quiet = (speech * 0.003).astype(np.float32)
    whole = raise_quiet(quiet)
    rng = np.random.default_rng(0)
    boost, parts, at = QuietBoost(), [], 0
    while at < quiet.shape[0]:
        n = int(rng.integers(1, 5000))
        parts.append(boost.feed(quiet[at : at + n]))
        at += n
    parts.append(boost.flush())
    assert np.array_equal(np.concatenate(parts), whole)


def test_a_long_file_in_blocks_equals_the_stream(speech: np.ndarray) -> None:
    # more steps than one block: the file path splits its windows; a live stream sees them one chunk at a time
    reps = BLOCK_STEPS * SAMPLES_PER_STEP // speech.shape[0] + 2
    pause = np.zeros(ASR_SAMPLE_RATE // 2, np.float32)
    long = np.tile(np.concatenate([speech, pause]), reps)[: (BLOCK_STEPS + 300) * SAMPLES_PER_STEP + 77] * 0.01  # [N]
    boost = QuietBoost()
    live = np.concatenate([boost.feed(long[i : i + 16000]) for i in range(0, long.shape[0], 16000)] + [boost.flush()])
    assert np.array_equal(raise_quiet(long), live)


@pytest.mark.parametrize("kind", ["digital silence", "white noise", "hum"])
def test_steady_sound_without_speech_is_left_as_it_is(kind: str) -> None:
    rng = np.random.default_rng(1)
    n = 20 * ASR_SAMPLE_RATE
    signal = {"digital silence": np.zeros(n), "white noise": 1e-3 * rng.standard_normal(n),
              "hum": 3e-3 * np.sin(2 * np.pi * 50 * np.arange(n) / ASR_SAMPLE_RATE)}[kind].astype(np.float32)
    assert np.array_equal(raise_quiet(signal), signal)


def test_a_quiet_recording_is_heard_and_live_equals_file(transcriber: voxkit.Transcriber, speech: np.ndarray) -> None:
    normal = transcriber.transcribe(speech).text
    quiet = (speech * 10 ** (-40 / 20)).astype(np.float32)  # a microphone at low gain
    plain = voxkit.Transcriber(boost=False)
    assert plain.transcribe(quiet).text != normal  # what the model makes of it unraised
    # two seconds of room before the speech: the level is known from the first word on
    lead = np.concatenate([np.zeros(2 * ASR_SAMPLE_RATE, np.float32), quiet])
    heard = transcriber.transcribe(lead)
    stream = transcriber.stream()
    events = []
    for at in range(0, lead.shape[0], 1234):
        events += stream.push(lead[at : at + 1234])
    events += stream.finish()
    assert [e.text for e in events if e.kind == "final"] == [heard.text]
    assert heard.text.split()[:4] == normal.split()[:4]


def test_transcribe_cli_raises_quiet_input_unless_told_not_to(tmp_path: Path, speech: np.ndarray, capsys) -> None:  # noqa: ANN001
    import soundfile as sf

    from voxkit.cli.main import main

    path = tmp_path / "quiet.wav"
    recording = np.concatenate([np.zeros(ASR_SAMPLE_RATE, np.float32), speech])  # a second of room, then speech
    sf.write(path, recording * 10 ** (-40 / 20), ASR_SAMPLE_RATE, subtype="FLOAT")
    assert main(["transcribe", str(path)]) == 0
    raised = capsys.readouterr().out
    assert main(["transcribe", str(path), "--no-boost"]) == 0
    plain = capsys.readouterr().out
    assert raised.split()[:2] == ["Order", "number"] and raised != plain


def test_eval_asr_scales_clips_and_says_so(tmp_path: Path, speech: np.ndarray, capsys) -> None:  # noqa: ANN001
    import json

    import soundfile as sf

    from voxkit.cli.main import main

    sf.write(tmp_path / "a.wav", speech, ASR_SAMPLE_RATE)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "order number", "language": "en"}) + "\n")
    out = tmp_path / "r.json"
    assert main(["eval", "asr", str(manifest), "--delays", "480", "--gain", "-40", "--no-boost", "--quiet", "--json", str(out)]) == 0
    assert "scaled by -40 dB, quiet input not raised" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["gain_db"] == -40 and record["quiet_input_raised"] is False
    assert main(["eval", "asr", str(manifest), "--gain", "nan"]) == 2
    assert "--gain takes dB" in capsys.readouterr().err
