"""Quiet input raised to the level a recogniser was trained at, causally, step by step.

Why: voxkit's recognisers learn from speech normalised to one loudness (the data kit's
``rms_normalize``, then a few dB of gain augmentation), and their log-mel front end has a fixed
floor, so a quiet microphone or a file recorded far below full scale reaches the model as speech
it has never heard (docs/asr.md, "Input level"). A model trained on recordings of every loudness
would not need this; corpora rendered by speech engines all come at one.

The rule reads only audio already heard, per 80 ms step (the recogniser's step), so a live stream
and a whole file are raised alike whatever the chunking:

- the stream's level is its loudest step of the last :data:`WINDOW_STEPS` (the current step
  included, so no step is raised above the target);
- if that level is under :data:`TARGET_DB`, the step is raised to it, by at most
  :data:`MAX_BOOST_DB`;
- only where the window holds speech-like contrast: its loudest step at least :data:`MIN_SPAN_DB`
  above its quietest. Steady noise (a fan, a microphone's hiss) has little contrast between 80 ms
  steps and is left as it is, so silence is not turned into loud noise for the model to read.

Input at the training level or above is passed through bit for bit (a gain of exactly 1). A rising
gain moves linearly across a step from the previous step's value, so a change of level makes no
click; a falling one applies at once.
"""

from __future__ import annotations

import numpy as np

from voxkit.asr.features import SAMPLES_PER_STEP

WINDOW_STEPS = 375  # 30 s of steps, as the pause cutter's floor: the level outlives a speaker's pauses
BLOCK_STEPS = 4096
TARGET_DB = -22.0  # loudest-step energy (dBFS) that raised input is brought to: the quiet edge of training speech
MAX_BOOST_DB = 40.0
MIN_SPAN_DB = 15.0
FLOOR_DB = -80.0  # digital silence counts as this much for the contrast test

_RAMP = (np.arange(1, SAMPLES_PER_STEP + 1, dtype=np.float64) / SAMPLES_PER_STEP)[None]  # [1, 1280]: 1/1280 .. 1


class QuietBoost:
    """The gain rule of the module doc for one stream: :meth:`feed` audio as it arrives, get the
    raised audio of its whole steps back; :meth:`flush` at the end gives the last partial step.

    Holds the last window's step energies and a partial step, nothing that grows with the stream.
    Holding a partial step back delays nothing: the recogniser takes whole steps only.
    """

    def __init__(self) -> None:
        self.partial = np.zeros(0, np.float32)  # samples of a step not yet whole
        self.history = np.zeros(0)  # dB of up to WINDOW_STEPS - 1 steps before the next one
        self.gain = 1.0  # the last step's gain, where the next step's ramp starts

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Add mono float samples; returns the raised samples of every step they completed."""
        data = np.concatenate([self.partial, np.asarray(samples, np.float32)])
        whole = data.shape[0] // SAMPLES_PER_STEP * SAMPLES_PER_STEP
        self.partial = data[whole:]
        steps = data[:whole].reshape(-1, SAMPLES_PER_STEP)  # [n, 1280]
        if steps.shape[0] <= BLOCK_STEPS:
            return self._raise(steps)
        # A long file in blocks: each block's windows are [block, W], not [n, W] (an hour is 45k steps).
        return np.concatenate([self._raise(steps[i : i + BLOCK_STEPS]) for i in range(0, steps.shape[0], BLOCK_STEPS)])

    def _raise(self, steps: np.ndarray) -> np.ndarray:
        """Whole steps [n, 1280] raised, flattened to [n * 1280]; advances the window and the gain."""
        n = steps.shape[0]
        if not n:
            return np.zeros(0, np.float32)
        energy = 10.0 * np.log10(np.maximum(np.mean(steps.astype(np.float64) ** 2, axis=1), 1e-10))  # [n]
        known = np.concatenate([self.history, energy])  # [h + n]
        pad = np.concatenate([np.full(WINDOW_STEPS - 1 - self.history.shape[0], np.nan), known])  # [W - 1 + n]
        windows = np.lib.stride_tricks.sliding_window_view(pad, WINDOW_STEPS)  # [n, W]: each step's window
        top = np.nanmax(windows, axis=1)  # [n]
        floor = np.maximum(np.nanmin(windows, axis=1), FLOOR_DB)  # [n]
        wanted = np.where(top - floor >= MIN_SPAN_DB, np.clip(TARGET_DB - top, 0.0, MAX_BOOST_DB), 0.0)  # [n] dB
        gain = 10.0 ** (wanted / 20.0)  # [n]
        self.history = known[-(WINDOW_STEPS - 1) :]
        # A rising gain ramps up across the step from the last step's value (no click); a falling one
        # (a louder step) applies at once, so the step that set the level cannot end up over the target.
        start = np.minimum(np.concatenate([[self.gain], gain[:-1]]), gain)  # [n]
        self.gain = float(gain[-1])
        if not wanted.any() and start[0] == 1.0:
            return steps.reshape(-1)  # the training level or above: untouched
        ramps = start[:, None] + (gain - start)[:, None] * _RAMP  # [n, 1280]
        return (steps * ramps).astype(np.float32).reshape(-1)  # [n * 1280]

    def flush(self) -> np.ndarray:
        """The end of the stream: the last partial step at the last step's gain."""
        out = (self.partial * self.gain).astype(np.float32)
        self.partial = np.zeros(0, np.float32)
        return out


def raise_quiet(samples: np.ndarray) -> np.ndarray:
    """A whole signal [N] raised as a live stream of it would be (:class:`QuietBoost`)."""
    boost = QuietBoost()
    head = boost.feed(samples)
    tail = boost.flush()
    return np.concatenate([head, tail]) if tail.shape[0] else head
