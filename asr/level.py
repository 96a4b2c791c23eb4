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
  above its quietest, steps of no signal (:data:`SILENT_DB`: digital silence) left out. Steady
  noise (a fan, a microphone's hiss) has little contrast between 80 ms steps and is left as it is,
  so silence is not turned into loud noise for the model to read; a sound card's first zeros are
  no noise floor to measure contrast against.

Once a stream's loudest step so far is at the training level, its input passes bit for bit (a gain
of exactly 1); before that, the rising start of its first word can be raised by a few dB (on the
held-out clips, docs/asr.md "Input level"). A rising gain moves linearly across a step from the
previous step's value; a falling one (a louder step) applies at once.
"""

from __future__ import annotations

import numpy as np

from voxkit.asr.features import LOOKAHEAD, SAMPLES_PER_STEP

WINDOW_STEPS = 375  # 30 s of steps, as the pause cutter's floor: the level outlives a speaker's pauses
BLOCK_STEPS = 4096
TARGET_DB = -22.0  # loudest-step energy (dBFS) that raised input is brought to: the quiet edge of training speech
MAX_BOOST_DB = 40.0
MIN_SPAN_DB = 20.0
SILENT_DB = -90.0  # a step this quiet holds no signal (digital silence, a 16-bit file's last bit): it is left out of the level

_RAMP = (np.arange(1, SAMPLES_PER_STEP + 1, dtype=np.float64) / SAMPLES_PER_STEP)[None]  # [1, 1280]: 1/1280 .. 1


def step_energy(steps: np.ndarray) -> np.ndarray:
    """dB energy of each row of ``steps`` [n, w] -> [n] (floored at -100 dB: digital silence)."""
    return 10.0 * np.log10(np.maximum(np.mean(steps.astype(np.float64) ** 2, axis=1), 1e-10))


class QuietBoost:
    """The gain rule of the module doc for one stream: :meth:`feed` audio as it arrives, get the
    raised audio of its whole steps back; :meth:`flush` at the end gives the rest.

    Its steps end ``LOOKAHEAD`` samples after the recogniser's step grid (the first is that long):
    a recogniser step needs those samples past its end for its last mel frame, so the audio a
    step needs is released as soon as it has all arrived, and the boost adds no latency. Holds
    the last window's step energies and a partial step, nothing that grows with the stream.
    """

    def __init__(self) -> None:
        self.partial = np.zeros(0, np.float32)  # samples of a step not yet whole
        self.first = True  # the short first step (LOOKAHEAD samples) is still to come
        self.history = np.zeros(0)  # dB of up to WINDOW_STEPS - 1 steps before the next one (NaN: silent)
        self.gain = 1.0  # the last step's gain, where the next step's ramp starts

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Add mono float samples; returns the raised samples of every step they completed."""
        data = np.concatenate([self.partial, np.asarray(samples, np.float32)])
        out = []
        if self.first:
            if data.shape[0] < LOOKAHEAD:
                self.partial = data
                return np.zeros(0, np.float32)
            out.append(self._raise(data[None, :LOOKAHEAD]))  # [40]
            data, self.first = data[LOOKAHEAD:], False
        whole = data.shape[0] // SAMPLES_PER_STEP * SAMPLES_PER_STEP
        self.partial = data[whole:]
        steps = data[:whole].reshape(-1, SAMPLES_PER_STEP)  # [n, 1280]
        # A long file in blocks: each block's windows are [block, W], not [n, W] (an hour is 45k steps).
        out += [self._raise(steps[i : i + BLOCK_STEPS]) for i in range(0, steps.shape[0], BLOCK_STEPS)]
        return np.concatenate(out) if len(out) > 1 else out[0] if out else np.zeros(0, np.float32)

    def _raise(self, steps: np.ndarray) -> np.ndarray:
        """Steps [n, w] raised, flattened to [n * w]; advances the window and the gain."""
        n, width = steps.shape
        if not n:
            return np.zeros(0, np.float32)
        energy = step_energy(steps)  # [n]
        known = np.concatenate([self.history, np.where(energy > SILENT_DB, energy, np.nan)])  # [h + n]
        pad = np.concatenate([np.full(WINDOW_STEPS - 1 - self.history.shape[0], np.nan), known])  # [W - 1 + n]
        windows = np.lib.stride_tricks.sliding_window_view(pad, WINDOW_STEPS)  # [n, W]: each step's window
        heard = ~np.isnan(windows).all(axis=1)  # [n]: some step of the window holds signal
        with np.errstate(invalid="ignore"):
            top = np.nanmax(np.where(heard[:, None], windows, 0.0), axis=1)  # [n]
            floor = np.nanmin(np.where(heard[:, None], windows, 0.0), axis=1)  # [n]
        contrast = heard & (top - floor >= MIN_SPAN_DB)  # [n]
        wanted = np.where(contrast, np.clip(TARGET_DB - top, 0.0, MAX_BOOST_DB), 0.0)  # [n] dB
        gain = 10.0 ** (wanted / 20.0)  # [n]
        self.history = known[-(WINDOW_STEPS - 1) :]
        # A rising gain ramps up across the step from the last step's value (no click); a falling one
        # (a louder step) applies at once, so the step that set the level cannot end up over the target.
        start = np.minimum(np.concatenate([[self.gain], gain[:-1]]), gain)  # [n]
        self.gain = float(gain[-1])
        if not wanted.any() and start[0] == 1.0:
            return steps.reshape(-1)  # the training level or above: untouched
        ramp = _RAMP if width == SAMPLES_PER_STEP else (np.arange(1, width + 1, dtype=np.float64) / width)[None]  # [1, w]
        ramps = start[:, None] + (gain - start)[:, None] * ramp  # [n, w]
        return (steps * ramps).astype(np.float32).reshape(-1)  # [n * w]

    def flush(self) -> np.ndarray:
        """The end of the stream: the last partial step at the last step's gain, or less where its
        own energy would take it over the target."""
        tail, self.partial = self.partial, np.zeros(0, np.float32)
        if not tail.shape[0] or self.gain == 1.0:
            return tail
        allowed = 10.0 ** (max(0.0, TARGET_DB - float(step_energy(tail[None])[0])) / 20.0)
        return (tail * min(self.gain, allowed)).astype(np.float32)


def raise_quiet(samples: np.ndarray) -> np.ndarray:
    """A whole signal [N] raised as a live stream of it would be (:class:`QuietBoost`)."""
    boost = QuietBoost()
    head = boost.feed(samples)
    tail = boost.flush()
    return np.concatenate([head, tail]) if tail.shape[0] else head
