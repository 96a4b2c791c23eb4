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
from voxkit.asr.step_levels import ENERGY_FLOOR, StepEnergy, StepSplitter, StepWindow

WINDOW_STEPS = 375  # 30 s of steps, as the pause cutter's floor: the level outlives a speaker's pauses
BLOCK_STEPS = 256  # steps raised together: a file's buffers stay this size, not the file's
REUSED_STEPS = 16  # a push of up to this many steps is handed back in a buffer kept for the stream
TARGET_DB = -22.0  # loudest-step energy (dBFS) that raised input is brought to: the quiet edge of training speech
MAX_BOOST_DB = 40.0
MIN_SPAN_DB = 20.0
SILENT_DB = -90.0  # a step this quiet holds no signal (digital silence, a 16-bit file's last bit): it is left out of the level

_RAMP = (np.arange(1, SAMPLES_PER_STEP + 1, dtype=np.float64) / SAMPLES_PER_STEP)[None]  # [1, 1280]: 1/1280 .. 1
_FIRST_RAMP = (np.arange(1, LOOKAHEAD + 1, dtype=np.float64) / LOOKAHEAD)[None]  # [1, 40]


class QuietBoost:
    """The gain rule of the module doc for one stream: :meth:`feed` audio as it arrives, get the
    raised audio of its whole steps back; :meth:`flush` at the end gives the rest.

    Its steps end ``LOOKAHEAD`` samples after the recogniser's step grid (the first is that long):
    a recogniser step needs those samples past its end for its last mel frame, so the audio a
    step needs is released as soon as it has all arrived, and the boost adds no latency. Holds
    the last window's step energies, a partial step and buffers for a push's steps, nothing that
    grows with the stream; a live push allocates no buffer (asr/step_levels.py).
    """

    def __init__(self) -> None:
        self.steps = StepSplitter(SAMPLES_PER_STEP, BLOCK_STEPS, first=LOOKAHEAD)
        self.energy = StepEnergy()
        self.window = StepWindow(WINDOW_STEPS)  # dB of the steps heard (NaN: silent)
        self.gain = 1.0  # the last step's gain, where the next step's ramp starts
        self.out = np.zeros(REUSED_STEPS * SAMPLES_PER_STEP + LOOKAHEAD, np.float32)  # a live push's raised samples
        self.ramps = np.zeros(SAMPLES_PER_STEP)  # float64 scratch: a block's gains, sample by sample
        self.wide = np.zeros(SAMPLES_PER_STEP)  # float64 scratch: the block's samples (a mixed-dtype product would buffer)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Add mono float samples; returns the raised samples of every step they completed.

        The result of a short push (up to :data:`REUSED_STEPS` steps) lives in a buffer that the
        next :meth:`feed` overwrites: use or copy it before then."""
        samples = np.asarray(samples, np.float32)  # [N]
        total = self.steps.completes(samples.shape[0])
        out = self.out[:total] if total <= self.out.shape[0] else np.empty(total, np.float32)  # [total]
        at = 0
        for steps in self.steps.split(samples):  # [k, w] views; a long file in blocks of BLOCK_STEPS
            size = steps.size
            self._raise(steps, out[at : at + size], _FIRST_RAMP if steps.shape[1] == LOOKAHEAD else _RAMP)
            at += size
        return out

    def _raise(self, steps: np.ndarray, out: np.ndarray, ramp: np.ndarray) -> None:
        """Steps [n, w] raised into ``out`` [n * w]; advances the window and the gain."""
        n, width = steps.shape
        energy = self.energy.of(steps)  # [n]
        energy[energy <= SILENT_DB] = np.nan  # a silent step is left out of the level
        top, low = self.window.push(energy)  # [n], [n]: NaN where the window heard nothing
        contrast = top - low >= MIN_SPAN_DB  # [n] (False where NaN)
        wanted = np.where(contrast, np.clip(TARGET_DB - top, 0.0, MAX_BOOST_DB), 0.0)  # [n] dB
        gain = 10.0 ** (wanted / 20.0)  # [n]
        # A rising gain ramps up across the step from the last step's value (no click); a falling one
        # (a louder step) applies at once, so the step that set the level cannot end up over the target.
        start = np.minimum(np.concatenate([[self.gain], gain[:-1]]), gain)  # [n]
        self.gain = float(gain[-1])
        flat = steps.reshape(-1)  # [n * w]
        if not wanted.any() and start[0] == 1.0:
            out[...] = flat  # the training level or above: untouched
            return
        if self.ramps.shape[0] < n * width:
            self.ramps, self.wide = np.zeros(n * width), np.zeros(n * width)
        ramps = self.ramps[: n * width].reshape(n, width)  # [n, w]
        wide = self.wide[: n * width].reshape(n, width)  # [n, w]
        np.multiply((gain - start)[:, None], ramp, out=ramps)
        ramps += start[:, None]
        wide[...] = steps
        ramps *= wide
        out.reshape(n, width)[...] = ramps

    def flush(self) -> np.ndarray:
        """The end of the stream: the last partial step at the last step's gain, or less where its
        own energy would take it over the target."""
        tail = self.steps.rest()  # [< 1280]
        if not tail.shape[0] or self.gain == 1.0:
            return tail
        # its mean square as it will sound, offset included (step_energy leaves a DC offset out)
        level = 10.0 * np.log10(max(float(np.mean(np.square(tail, dtype=np.float64))), ENERGY_FLOOR))
        allowed = 10.0 ** (max(0.0, TARGET_DB - level) / 20.0)
        return (tail * min(self.gain, allowed)).astype(np.float32)


def raise_quiet(samples: np.ndarray) -> np.ndarray:
    """A whole signal [N] raised as a live stream of it would be (:class:`QuietBoost`)."""
    boost = QuietBoost()
    head = boost.feed(samples)
    tail = boost.flush()
    return np.concatenate([head, tail]) if tail.shape[0] else head  # the boost is gone: its buffer is the caller's
