"""Step energies and their 30 s window in buffers kept for the stream (asr/step_levels.py), and the
quiet-input boost and pause cutter that read them: the same values whatever the pushes, and a live
push that copies no audio and builds no window."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

from voxkit.asr.features import LOOKAHEAD, SAMPLES_PER_STEP
from voxkit.asr.level import QuietBoost
from voxkit.asr.segments import PauseCutter
from voxkit.asr.step_levels import StepEnergy, StepSplitter, StepWindow, step_energy
from voxkit.audio.constants import ASR_SAMPLE_RATE

WIDTH = 375


def _pushes(total: int, seed: int, most: int) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes, left = [], total
    while left > 0:
        sizes.append(min(left, int(rng.integers(1, most + 1))))
        left -= sizes[-1]
    return sizes


@pytest.mark.parametrize("most", [1, 3, 700])  # a live stream's single steps, a few, a file's blocks past the room
def test_window_extremes_equal_a_full_sliding_window(most: int) -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal(3000)  # [3000]
    values[rng.random(3000) < 0.2] = np.nan  # steps left out (silence)
    values[1000:1400] = np.nan  # windows with nothing in them
    values[1400] = 0.5
    padded = np.concatenate([np.full(WIDTH - 1, np.nan), values])
    windows = np.lib.stride_tricks.sliding_window_view(padded, WIDTH)  # [3000, WIDTH]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        top, low = np.nanmax(windows, axis=1), np.nanmin(windows, axis=1)  # [3000]
    window, tops, lows, at = StepWindow(WIDTH), [], [], 0
    for n in _pushes(3000, 1, most):
        t, lo = window.push(values[at : at + n])
        tops.append(t.copy())
        lows.append(lo.copy())
        at += n
    assert np.array_equal(np.concatenate(tops), top, equal_nan=True)
    assert np.array_equal(np.concatenate(lows), low, equal_nan=True)
    assert np.isnan(top[1000 + WIDTH - 1 : 1400]).all() and top[1400] == 0.5  # an empty window is NaN


def test_step_energy_is_the_float64_variance_in_db() -> None:
    steps = (np.random.default_rng(2).standard_normal((40, SAMPLES_PER_STEP)) * np.logspace(-6, 0, 40)[:, None]).astype(np.float32)
    steps[3] = 0.0
    wide = steps.astype(np.float64)  # [40, w]
    reference = 10.0 * np.log10(np.maximum(np.mean((wide - wide.mean(axis=1, keepdims=True)) ** 2, axis=1), 1e-10))  # [40]
    np.testing.assert_allclose(step_energy(steps), reference, rtol=0, atol=1e-9)
    meter = StepEnergy()
    assert np.array_equal(np.concatenate([meter.of(steps[i : i + 7]).copy() for i in range(0, 40, 7)]), step_energy(steps))
    assert step_energy(steps)[3] == -100.0


def test_a_dc_offset_is_no_energy() -> None:
    """A microphone's constant offset is no sound: 0.01 lifted every pause to -40 dB (the cutter's
    floor, the boost's level); a step of it alone is digital silence."""
    steps = (np.random.default_rng(5).standard_normal((20, SAMPLES_PER_STEP)) * np.logspace(-4, -1, 20)[:, None]).astype(np.float32)
    for offset in (0.01, 0.05, -0.2):
        np.testing.assert_allclose(step_energy(steps + np.float32(offset)), step_energy(steps), atol=1e-3)
        assert step_energy(np.full((2, SAMPLES_PER_STEP), offset, np.float32)).tolist() == [-100.0, -100.0]


def test_the_splitter_gives_every_sample_once_in_steps() -> None:
    samples = np.arange(20_000, dtype=np.float32)  # [20000]
    splitter, seen, first_width = StepSplitter(SAMPLES_PER_STEP, 4, first=LOOKAHEAD), [], None
    for n in _pushes(samples.shape[0], 3, 6000):
        at = sum(x.size for x in seen) + splitter.held
        done = splitter.completes(n)
        got = [steps.copy() for steps in splitter.split(samples[at : at + n])]
        assert sum(g.size for g in got) == done
        assert all(g.shape[0] <= 4 for g in got)
        first_width = first_width or got[0].shape[1] if got else first_width
        seen += got
    assert first_width == LOOKAHEAD
    out = np.concatenate([g.reshape(-1) for g in seen] + [splitter.rest()])
    assert np.array_equal(out, samples)
    assert splitter.held == 0


def _live(kind: str) -> tuple[object, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 45 * ASR_SAMPLE_RATE
    speechy = np.repeat(rng.random(n // 8000) > 0.4, 8000)  # [n]: half-second bursts and gaps
    audio = (0.001 * rng.standard_normal(n) * (0.05 + speechy)).astype(np.float32)  # quiet: the boost raises it
    return (QuietBoost() if kind == "boost" else PauseCutter((25, 150, 180))), audio


@pytest.mark.parametrize("kind", ["boost", "cutter"])
def test_a_live_push_copies_no_audio_and_keeps_its_buffers(kind: str) -> None:
    """An 80 ms push of an hour-long stream: its working memory stays under one step of float32
    samples (before, each push joined the window's history and the new step, and copied the step
    to float64: 24-84 kB), and the arrays it works in are the same ones push after push."""
    meter, audio = _live(kind)
    start = 35 * ASR_SAMPLE_RATE
    meter.feed(audio[:start])  # the window is full; the buffers have had their first grow
    for i in range(5):
        meter.feed(audio[start + i * SAMPLES_PER_STEP : start + (i + 1) * SAMPLES_PER_STEP])
    held = (meter.window.values, meter.energy.squares) + ((meter.out, meter.ramps) if kind == "boost" else ())
    gains, at = [], start + 5 * SAMPLES_PER_STEP
    tracemalloc.start()
    try:
        for i in range(60):  # 80 ms pushes and 100 ms ones (a sound card's block)
            size = SAMPLES_PER_STEP if i % 2 else 1600
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            meter.feed(audio[at : at + size])
            assert tracemalloc.get_traced_memory()[1] - before < SAMPLES_PER_STEP * 4
            gains.append(getattr(meter, "gain", 2.0))
            at += size
    finally:
        tracemalloc.stop()
    assert min(gains) > 1.0  # the boost raised every step: its ramps were built
    assert at <= audio.shape[0]
    now = (meter.window.values, meter.energy.squares) + ((meter.out, meter.ramps) if kind == "boost" else ())
    assert all(a is b for a, b in zip(held, now, strict=True))
