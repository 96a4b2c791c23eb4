"""The voice-activity detector of the pause cutter (asr/vad.py): Silero VAD's network and weights,
run per stream on voxkit's own arrays."""

from __future__ import annotations

import importlib.util
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import voxkit
from voxkit.asr.vad import CHUNK, CONTEXT, SpeechState, silero_net, weights_path
from voxkit.audio.io import load_audio
from voxkit.data.channel import coloured_noise
from voxkit.errors import VoxkitError

SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"
STEP = 1280


@pytest.fixture(scope="module")
def speech_and_hum() -> np.ndarray:
    """The English sample, then 3 s of a pink hum at -40 dBFS: [N] float32, a whole number of steps."""
    wav = load_audio(SAMPLES / "en.flac", 16000)
    hum = coloured_noise(16000 * 3, "pink", torch.Generator().manual_seed(0)) * 10 ** (-40 / 20)
    x = torch.cat([wav, hum]).numpy()
    return x[: x.shape[0] // (2 * STEP) * (2 * STEP)]


def test_the_network_is_the_packages_model(speech_and_hum: np.ndarray) -> None:
    """Per 32 ms chunk, the probabilities of the package's own TorchScript model, fed chunk by chunk
    as its documentation streams it (its state kept inside it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        package_model = torch.jit.load(str(weights_path()), map_location="cpu").eval()
    package_model.reset_states()
    x = torch.from_numpy(speech_and_hum)
    theirs = np.array([package_model(x[i : i + CHUNK], 16000).item() for i in range(0, x.numel(), CHUNK)])  # [chunks]
    ours = SpeechState(STEP).of(speech_and_hum.reshape(-1, STEP))  # [steps]: the largest chunk ending in each step
    ends = (np.arange(theirs.shape[0]) + 1) * CHUNK
    expected = np.array([theirs[(ends - 1) // STEP == s].max() for s in range(ours.shape[0])])
    assert np.abs(ours - expected).max() < 1e-5
    speech_steps = int(load_audio(SAMPLES / "en.flac", 16000).numel() // STEP)
    assert (ours[:speech_steps] > 0.5).mean() > 0.8 and (ours[speech_steps + 5 :] < 0.2).all()  # speech, then a hum


def test_a_stream_gets_the_same_values_however_it_is_pushed(speech_and_hum: np.ndarray) -> None:
    steps = speech_and_hum.reshape(-1, STEP)
    whole = SpeechState(STEP).of(steps).copy()
    rng = np.random.default_rng(3)
    for most in (1, 2, 3, 40, 100):  # steps per push: a live stream's, a few, and more than a block of BLOCK_STEPS
        state, got, i = SpeechState(STEP), [], 0
        while i < steps.shape[0]:
            k = int(rng.integers(1, most + 1)) if most > 3 else most
            got.append(state.of(steps[i : i + k]).copy())
            i += k
        assert np.abs(np.concatenate(got) - whole).max() < 1e-13  # float64: no cut can depend on the batching


def test_two_streams_share_the_network_and_keep_their_own_state(speech_and_hum: np.ndarray) -> None:
    steps = speech_and_hum.reshape(-1, STEP)
    alone = SpeechState(STEP).of(steps[:40]).copy()
    a, b = SpeechState(STEP), SpeechState(STEP)
    assert a.net is b.net is silero_net()  # loaded once per process
    got = []
    for i in range(40):  # interleaved with a stream of another signal
        got.append(a.of(steps[i : i + 1])[0])
        b.of(steps[-(i + 1) :][:1])
    assert np.abs(np.array(got) - alone).max() < 1e-12


def test_a_live_push_allocates_no_buffers(speech_and_hum: np.ndarray) -> None:
    steps = speech_and_hum.reshape(-1, STEP)
    state = SpeechState(STEP)
    state.of(steps[:20])
    state.of(steps[20:21])
    held = (state.buffer, state.work.frames, state.work.gates)
    tracemalloc.start()
    try:
        for i in range(21, 60):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            state.of(steps[i : i + 1])
            # the views' own headers and a few index scalars: less than one chunk's window of samples
            assert tracemalloc.get_traced_memory()[1] - before < (CONTEXT + CHUNK) * 8
    finally:
        tracemalloc.stop()
    assert all(x is y for x, y in zip(held, (state.buffer, state.work.frames, state.work.gates), strict=True))


def test_a_step_must_hold_a_chunk_end() -> None:
    with pytest.raises(ValueError, match="at least 512 samples"):
        SpeechState(256)


def test_streams_started_at_once_share_one_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import voxkit.asr.vad as vad

    monkeypatch.setattr(vad, "_LOADED", [])
    nets: list[object] = []
    threads = [threading.Thread(target=lambda: nets.append(vad.silero_net())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(nets) == 4 and all(n is nets[0] for n in nets)


def test_without_the_package_the_message_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "silero_vad" else real(name, *a))
    with pytest.raises(VoxkitError, match="needs the silero-vad package: pip install silero-vad"):
        weights_path()
