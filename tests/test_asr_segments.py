"""Long audio cut at pauses (asr/segments.py): where the cuts fall, and what the bundled model writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import voxkit
from voxkit.asr.segments import PauseCutter, SegmentedStream, Segmenting, spans, transcribe_segmented
from voxkit.audio.io import load_audio

SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"
STEP = 1280  # samples per 80 ms step
LIMITS = (25, 100, 150)  # min 2 s, soft 8 s, most 12 s (in steps)


def _signal(pattern: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """(seconds, dB level) pieces; -inf is digital silence, other levels white noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for seconds, level in pattern:
        n = int(seconds * 16000)
        parts.append(np.zeros(n, np.float32) if level == -np.inf else (rng.standard_normal(n) * 10 ** (level / 20)).astype(np.float32))
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def asr() -> voxkit.Transcriber:
    return voxkit.Transcriber()  # the bundled model at 480 ms, loaded once


def test_a_pause_ends_a_segment_and_the_next_starts_just_before_speech() -> None:
    x = _signal([(3.0, -20), (2.0, -np.inf), (3.0, -20)])
    # Step 37 holds the last speech (3 s = 37.5 steps), 38-41 are the four quiet steps that make
    # the pause; speech resumes inside step 62, and the next segment starts two steps before it.
    assert spans(x, LIMITS) == [(0, 42 * STEP), (60 * STEP, x.shape[0])]


def test_no_cut_before_min_seconds_and_a_hard_cut_at_the_limit() -> None:
    short = _signal([(1.0, -20), (0.5, -np.inf), (1.0, -20)])  # the pause comes before 2 s of segment
    assert spans(short, LIMITS) == [(0, short.shape[0])]
    talk = _signal([(30.0, -20)])  # no quiet step at all
    assert [b - a for a, b in spans(talk, LIMITS)][:2] == [150 * STEP, 150 * STEP]


def test_quiet_is_relative_to_the_noise_floor() -> None:
    # Speech at -20 dB over a -45 dB noise floor: the floor is not silence, but it is a pause.
    x = _signal([(3.0, -20), (1.0, -45), (3.0, -20)])
    cuts = spans(x, LIMITS)
    assert len(cuts) == 2 and 3.0 <= cuts[0][1] / 16000 <= 3.5 and 3.5 <= cuts[1][0] / 16000 <= 4.0


def test_a_dc_offset_moves_no_cut(asr: voxkit.Transcriber) -> None:
    """A constant offset (a microphone's, a sound card's) is no sound: 0.01 made every pause at
    least -40 dB, the floor rose to it and clean speech was cut inside words ("June onelevent")."""
    x = _signal([(3.0, -20), (2.0, -np.inf), (3.0, -20)])
    speech = load_audio(SAMPLES / "en.flac", 16000).numpy().reshape(-1)  # [T]
    for offset in (0.01, 0.05, -0.1):
        assert spans(x + np.float32(offset), LIMITS) == spans(x, LIMITS)
        assert spans(speech + np.float32(offset), LIMITS) == spans(speech, LIMITS) == [(0, speech.shape[0])]
        assert asr.transcribe(speech + np.float32(offset)).text == asr.transcribe(speech).text


def test_silence_of_any_length_is_skipped() -> None:
    x = _signal([(3.0, -20), (600.0, -np.inf), (3.0, -20)])  # ten minutes of silence
    assert [(a / 16000, b / 16000) for a, b in spans(x, LIMITS)] == [(0.0, 3.36), (602.8, 606.0)]


def test_the_cuts_do_not_depend_on_how_the_audio_arrives() -> None:
    pieces = [(2.5, -20), (0.4, -60), (6.0, -25), (0.2, -np.inf), (14.0, -20), (3.0, -np.inf), (4.0, -30)]
    x = _signal(pieces * 3, seed=3)
    whole = PauseCutter(LIMITS).feed(x)
    rng = np.random.default_rng(1)
    cutter, got, i = PauseCutter(LIMITS), [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 30000))
        got += cutter.feed(x[i : i + n])
        i += n
    assert got == whole and len(whole) > 10


def test_the_limit_leaves_room_for_the_flush_in_the_window(asr: voxkit.Transcriber) -> None:
    model = asr.bundle.model
    low, soft, most = Segmenting().limits(model, 30)  # the longest delay
    window_steps = model.args.encoder.max_window // model.args.downsample_factor
    assert model.args.n_left_pad_tokens + most + 30 + 1 + model.args.right_pad_tokens <= window_steps
    assert low < soft < most


def test_a_long_stream_reads_like_its_pieces_alone(asr: voxkit.Transcriber) -> None:
    """The sample five times over 75 s (pauses of 1 s and 30 s): every repetition is transcribed
    as the sample alone. Handed whole, the model loses it once its 15 s window slides."""
    wav = load_audio(SAMPLES / "en.flac", 16000)
    alone = asr.transcribe(wav).text
    pause = torch.zeros(16000)
    stream = torch.cat([wav, pause, wav, pause, wav, pause, wav, torch.zeros(16000 * 30), wav])  # [N]
    result = asr.transcribe(stream)
    assert result.text == " ".join([alone] * 5)
    assert all(0 <= w.start < w.end <= result.duration for w in result.words)
    end4 = 4 * wav.shape[0] / 16000 + 3  # the fourth repetition ends; 30 s of silence follow
    assert all(not end4 + 0.5 < w.start < end4 + 29.5 for w in result.words)  # nothing written in the silence
    whole = voxkit.Transcriber(segment=False).transcribe(stream).text
    n = len(alone.split())
    assert whole != result.text and whole.split()[:n] == alone.split()  # right until the window slides


def test_a_live_stream_gives_the_words_of_the_file(asr: voxkit.Transcriber) -> None:
    wav = load_audio(SAMPLES / "en.flac", 16000).numpy()
    stream = np.concatenate([wav, np.zeros(8000, np.float32), wav, np.zeros(40000, np.float32), wav[: 16000 * 3]])
    offline = transcribe_segmented(asr.bundle.model, asr.bundle.tokenizer, [torch.from_numpy(stream)], asr.delay)[0]
    live = SegmentedStream(asr.bundle.model, asr.bundle.tokenizer, asr.delay)
    rng = np.random.default_rng(0)
    events, i = [], 0
    while i < stream.shape[0]:
        n = int(rng.integers(200, 6000))
        events += live.push(stream[i : i + n])
        i += n
    events += live.finish()
    live.close()
    assert [(w.text, w.start, w.end) for w in live.transcript.words] == [(w.text, w.start, w.end) for w in offline.words]
    assert [e.text for e in events if e.kind == "word"] == [w.text for w in offline.words]
    assert [e.kind for e in events].count("final") == 1 and events[-1].kind == "final"
    assert events[-1].text == offline.text and events[-1].end == pytest.approx(stream.shape[0] / 16000)


def test_a_stream_that_ends_in_a_pause_ends_cleanly(asr: voxkit.Transcriber) -> None:
    wav = load_audio(SAMPLES / "en.flac", 16000)
    stream = asr.stream()
    events = stream.push(torch.cat([wav, torch.zeros(16000 * 5)]))
    events += stream.finish()
    assert [e.kind for e in events].count("final") == 1
    assert stream.transcript.text == asr.transcribe(wav).text
    assert stream.transcript.duration == pytest.approx(wav.shape[0] / 16000 + 5)
