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
ENERGY = Segmenting(speech_threshold=None)  # energy alone: these signals' "speech" is white noise, which the detector rightly hears as none


def _signal(pattern: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """(seconds, dB level) pieces; -inf is digital silence, other levels white noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for seconds, level in pattern:
        n = int(seconds * 16000)
        parts.append(np.zeros(n, np.float32) if level == -np.inf else (rng.standard_normal(n) * 10 ** (level / 20)).astype(np.float32))
    return np.concatenate(parts)


def _pieces(x: np.ndarray, seed: int, low: int, high: int) -> list[np.ndarray]:
    """``x`` cut at random into consecutive pieces of ``low`` to ``high`` samples: how a live stream's audio arrives."""
    rng = np.random.default_rng(seed)
    cuts = [0]
    while cuts[-1] < x.shape[0]:
        cuts.append(cuts[-1] + int(rng.integers(low, high)))
    return [x[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


@pytest.fixture(scope="module")
def asr() -> voxkit.Transcriber:
    return voxkit.Transcriber()  # the bundled model at 480 ms, loaded once


def test_a_pause_ends_a_segment_and_the_next_starts_just_before_speech() -> None:
    x = _signal([(3.0, -20), (2.0, -np.inf), (3.0, -20)])
    # Step 37 holds the last speech (3 s = 37.5 steps), 38-41 are the four quiet steps that make
    # the pause; speech resumes inside step 62, and the next segment starts two steps before it.
    assert spans(x, LIMITS, ENERGY) == [(0, 42 * STEP), (60 * STEP, x.shape[0])]


def test_no_cut_before_min_seconds_and_a_hard_cut_at_the_limit() -> None:
    short = _signal([(1.0, -20), (0.5, -np.inf), (1.0, -20)])  # the pause comes before 2 s of segment
    assert spans(short, LIMITS, ENERGY) == [(0, short.shape[0])]
    talk = _signal([(30.0, -20)])  # no quiet step at all
    assert [b - a for a, b in spans(talk, LIMITS, ENERGY)][:2] == [150 * STEP, 150 * STEP]


def test_quiet_is_relative_to_the_noise_floor() -> None:
    # Speech at -20 dB over a -45 dB noise floor: the floor is not silence, but it is a pause.
    x = _signal([(3.0, -20), (1.0, -45), (3.0, -20)])
    cuts = spans(x, LIMITS, ENERGY)
    assert len(cuts) == 2 and 3.0 <= cuts[0][1] / 16000 <= 3.5 and 3.5 <= cuts[1][0] / 16000 <= 4.0


def test_a_dc_offset_moves_no_cut(asr: voxkit.Transcriber) -> None:
    """A constant offset (a microphone's, a sound card's) is no sound: 0.01 made every pause at
    least -40 dB, the floor rose to it and clean speech was cut inside words ("June onelevent")."""
    x = _signal([(3.0, -20), (2.0, -np.inf), (3.0, -20)])
    speech = load_audio(SAMPLES / "en.flac", 16000).numpy().reshape(-1)  # [T]
    for offset in (0.01, 0.05, -0.1):
        assert spans(x + np.float32(offset), LIMITS, ENERGY) == spans(x, LIMITS, ENERGY)
        assert spans(speech + np.float32(offset), LIMITS, ENERGY) == spans(speech, LIMITS, ENERGY) == [(0, speech.shape[0])]
        cuts = spans(speech + np.float32(offset), LIMITS)  # the default: energy and the speech detector
        assert len(cuts) == 1 and cuts[0][0] < 0.3 * 16000 and cuts[0][1] == speech.shape[0]
        assert asr.transcribe(speech + np.float32(offset)).text == asr.transcribe(speech).text


def test_silence_of_any_length_is_skipped() -> None:
    x = _signal([(3.0, -20), (600.0, -np.inf), (3.0, -20)])  # ten minutes of silence
    assert [(a / 16000, b / 16000) for a, b in spans(x, LIMITS, ENERGY)] == [(0.0, 3.36), (602.8, 606.0)]


def test_the_cuts_do_not_depend_on_how_the_audio_arrives() -> None:
    pieces = [(2.5, -20), (0.4, -60), (6.0, -25), (0.2, -np.inf), (14.0, -20), (3.0, -np.inf), (4.0, -30)]
    x = _signal(pieces * 3, seed=3)
    whole = PauseCutter(LIMITS, ENERGY).feed(x)
    cutter = PauseCutter(LIMITS, ENERGY)
    assert [b for piece in _pieces(x, 1, 1, 30000) for b in cutter.feed(piece)] == whole and len(whole) > 10


def test_with_the_speech_detector_the_cuts_do_not_depend_on_how_the_audio_arrives() -> None:
    speech = load_audio(SAMPLES / "en.flac", 16000).numpy()
    quiet = np.zeros(16000 * 2, np.float32)
    x = np.concatenate([quiet, speech, quiet[:6000], speech, quiet, speech[: 16000 * 3], quiet])
    x = x + _hum(x.shape[0] / 16000, "pink", -45.0, seed=5).numpy()
    whole = PauseCutter(LIMITS).feed(x)
    assert len(whole) >= 4
    for seed, most in enumerate((1500, 30000, 200000)):
        cutter = PauseCutter(LIMITS)
        assert [b for piece in _pieces(x, seed, 1, most) for b in cutter.feed(piece)] == whole


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
    events = [e for piece in _pieces(stream, 0, 200, 6000) for e in live.push(piece)] + live.finish()
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


def _hum(seconds: float, colour: str, dbfs: float, seed: int = 0) -> torch.Tensor:
    """[N] coloured noise at ``dbfs`` RMS: a fan, a room, a hum."""
    from voxkit.data.channel import coloured_noise

    return coloured_noise(int(seconds * 16000), colour, torch.Generator().manual_seed(seed)) * 10 ** (dbfs / 20)


def test_a_hum_with_nobody_speaking_is_not_heard(asr: voxkit.Transcriber) -> None:
    """A minute of a steady hum has no quiet step, so energy alone heard it as one long sound, cut
    only at the limit, and the model wrote words into it (docs/asr.md, "Noise without speech"). The
    speech detector hears no speech: nothing is heard, nothing written."""
    for colour, dbfs in (("pink", -40.0), ("brown", -30.0), ("pink", -25.0), ("white", -30.0)):
        hum = _hum(60.0, colour, dbfs)
        assert len(spans(hum.numpy(), LIMITS, ENERGY)) > 1  # energy alone: segments at the limit
        assert spans(hum.numpy(), LIMITS) == []
        result = asr.transcribe(hum)
        assert result.text == "" and result.duration == pytest.approx(60.0)
    live = asr.stream()
    hum = _hum(20.0, "pink", -40.0).numpy()
    events = [e for i in range(0, hum.shape[0], 1280) for e in live.push(hum[i : i + 1280])] + live.finish()
    assert [e.kind for e in events] == ["final"] and events[0].text == ""


def test_speech_over_a_hum_starts_just_before_the_speech(asr: voxkit.Transcriber) -> None:
    """4 s of a pink hum at -50 dBFS, the sample, 4 s more, the sample again. Energy alone started
    the stream at 0 and the model wrote the hum as words ("Putwertwots oder number ..."); with the
    speech detector each segment starts just before the speech."""
    wav = load_audio(SAMPLES / "en.flac", 16000)
    clean = asr.transcribe(wav).text.split()
    quiet = torch.zeros(16000 * 4)
    stream = torch.cat([quiet, wav, quiet, wav, quiet])
    stream = stream + _hum(stream.shape[0] / 16000, "pink", -50.0)
    limits = Segmenting().limits(asr.bundle.model, asr.delay)
    assert spans(stream.numpy(), limits, ENERGY)[0][0] == 0
    onsets = (4.0, 8.0 + wav.shape[0] / 16000)
    cuts = spans(stream.numpy(), limits)
    assert len(cuts) == 2 and all(t - 0.4 < a / 16000 <= t for (a, _), t in zip(cuts, onsets, strict=True))
    words = asr.transcribe(stream).words
    assert all(w.start > 3.6 for w in words)  # nothing written in the hum, times on the stream's clock
    n = len(clean)
    texts = [w.text for w in words]
    assert len(texts) == 2 * n and texts[1:n] == clean[1:] == texts[n + 1 :]  # the first word may take some hum ("Forder")


def test_a_live_stream_over_a_hum_gives_the_words_of_the_file(asr: voxkit.Transcriber) -> None:
    wav = load_audio(SAMPLES / "en.flac", 16000).numpy()
    quiet = np.zeros(16000 * 3, np.float32)
    stream = np.concatenate([quiet, wav, quiet[:8000], wav[: 16000 * 4], quiet])
    stream = stream + _hum(stream.shape[0] / 16000, "brown", -35.0, seed=2).numpy()
    offline = asr.transcribe(stream)
    live = asr.stream()
    events = [e for piece in _pieces(stream, 4, 100, 9000) for e in live.push(piece)] + live.finish()
    assert [(w.text, w.start, w.end) for w in live.transcript.words] == [(w.text, w.start, w.end) for w in offline.words]
    assert offline.text and events[-1].text == offline.text
