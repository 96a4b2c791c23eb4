"""One loaded model, many users: streams, file transcriptions and generations never share state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import voxkit
from voxkit.audio.io import load_audio
from voxkit.lm.generate import Generator

SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"
CHUNK = 1000  # samples per push: not a multiple of the 1280-sample step


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    return {name: load_audio(SAMPLES / f"{name}.flac", 16000).numpy()[: 16000 * 4] for name in ("en", "fr")}


def _events(events: list) -> list[tuple[str, str, float, float]]:
    return [(e.kind, e.text, round(e.start, 3), round(e.end, 3)) for e in events]


def _alone(transcriber: voxkit.Transcriber, wav: np.ndarray, delay_ms: int) -> tuple[list, list[int]]:
    stream = transcriber.stream(delay_ms=delay_ms)
    events = []
    for start in range(0, wav.shape[0], CHUNK):
        events += stream.push(wav[start : start + CHUNK])
    events += stream.finish()
    return _events(events), stream.session.steps_host


def _generation(transcriber: voxkit.Transcriber) -> Generator:
    return Generator(transcriber.bundle.model.decoder, num_delay_tokens=6.0)


PROMPT = [1, 33, 70, 71, 72]


def test_two_interleaved_streams_equal_each_alone(transcriber: voxkit.Transcriber, clips: dict[str, np.ndarray]) -> None:
    """Two live streams of ONE Transcriber, with different delays, pushed alternately."""
    _check_interleaved(transcriber, clips)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_two_interleaved_streams_on_cuda(clips: dict[str, np.ndarray]) -> None:
    _check_interleaved(voxkit.Transcriber(device="cuda"), clips)


def _check_interleaved(transcriber: voxkit.Transcriber, clips: dict[str, np.ndarray]) -> None:
    a, b = clips["en"], clips["fr"]
    alone_a, steps_a = _alone(transcriber, a, 480)
    alone_b, steps_b = _alone(transcriber, b, 960)
    assert any(kind == "word" for kind, *_ in alone_a)

    sa, sb = transcriber.stream(delay_ms=480), transcriber.stream(delay_ms=960)
    ev_a, ev_b = [], []
    for start in range(0, max(a.shape[0], b.shape[0]), CHUNK):
        if start < a.shape[0]:
            ev_a += sa.push(a[start : start + CHUNK])
        if start < b.shape[0]:
            ev_b += sb.push(b[start : start + CHUNK])
    ev_a += sa.finish()
    ev_b += sb.finish()
    assert _events(ev_a) == alone_a
    assert _events(ev_b) == alone_b
    assert (sa.session.steps_host, sb.session.steps_host) == (steps_a, steps_b)


def test_file_transcription_and_generation_inside_a_live_stream(
    transcriber: voxkit.Transcriber, clips: dict[str, np.ndarray]
) -> None:
    live, other = clips["en"], clips["fr"]
    alone_live, _ = _alone(transcriber, live, 480)
    alone_file = transcriber.transcribe(other).words
    alone_text = _generation(transcriber).generate([PROMPT], 12)

    stream = transcriber.stream(delay_ms=480)
    events = []
    half = live.shape[0] // 2 // CHUNK * CHUNK
    for start in range(0, half, CHUNK):
        events += stream.push(live[start : start + CHUNK])
    # In the middle of the live stream: a whole file, a generation, and a second generation that is
    # itself interleaved with the rest of the stream.
    assert transcriber.transcribe(other).words == alone_file
    assert _generation(transcriber).generate([PROMPT], 12) == alone_text
    tokens = _generation(transcriber).stream([PROMPT], 12)
    interleaved = []
    for start in range(half, live.shape[0], CHUNK):
        events += stream.push(live[start : start + CHUNK])
        step = next(tokens, None)
        if step is not None:
            interleaved.append(step[0])
    interleaved += [step[0] for step in tokens]
    events += stream.finish()
    assert _events(events) == alone_live
    assert [t for t in interleaved if t is not None] == alone_text[0]


def test_entering_one_state_twice_raises(transcriber: voxkit.Transcriber) -> None:
    model = transcriber.bundle.model
    state = model.init_state(1)
    with state, pytest.raises(RuntimeError, match="already streaming"):
        state.enter()
    state.enter()  # free again once the first user left
    state.exit()
    with model.decoder.streaming(2) as ring, pytest.raises(RuntimeError, match="already streaming"), ring:
        pass


def test_the_model_holds_no_stream_state(transcriber: voxkit.Transcriber, clips: dict[str, np.ndarray]) -> None:
    """A stream left open writes nothing into the model: its tensors are the same before and after."""
    model = transcriber.bundle.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = {id(m): dict(vars(m)) for m in model.modules()}
    stream = transcriber.stream()
    stream.push(clips["en"][:16000])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for m in model.modules():
        assert vars(m).keys() == attrs[id(m)].keys()  # no attribute added to any module
