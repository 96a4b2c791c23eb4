"""Loudness per 80 ms step and its extremes over a sliding window, in buffers kept for the stream.

Why: the quiet-input boost (asr/level.py) and the pause cutter (asr/segments.py) both read each
step's energy against the loudest and quietest step of the last 30 s, once per step of a live
stream that may run for hours. Joining the window's history and each new step into fresh arrays,
and squaring a step's samples into a fresh float64 copy, allocated buffers the size of the window
and of the audio on every push; here they live in arrays that are reused, and grow only when a
push brings more steps than any before it (a whole file given at once).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

ENERGY_FLOOR = 1e-10  # mean square of digital silence: -100 dB


def step_energy(steps: np.ndarray) -> np.ndarray:
    """dB energy of each row of ``steps`` [n, w] about its own mean -> [n] (floored at -100 dB:
    digital silence).

    Why about the mean: a DC offset (a microphone or sound card that adds a constant) is no sound,
    but its square counted as one. An offset of 0.01 lifted every step, pauses included, to at
    least -40 dB: the cutter took that for the noise floor, found "pauses" inside words and cut
    clean speech into garbled pieces, and the boost took the offset for speech level. An 80 ms
    step's mean is below any speech frequency, so the speech itself keeps its energy.
    """
    return StepEnergy().of(steps).copy()


class StepEnergy:
    """:func:`step_energy` into reused buffers: the result is a view, valid until the next call."""

    def __init__(self) -> None:
        self.squares = np.zeros(0)  # float64 scratch for a push's samples (grows, never shrinks)
        self.energy = np.zeros(0)  # [capacity] the last call's dB values
        self.means = np.zeros(0)  # [capacity] each step's mean (its DC offset)

    def of(self, steps: np.ndarray) -> np.ndarray:
        """dB energy of each row of ``steps`` [n, w] -> view [n]. float64 as the mean square of
        float32 samples is exact there, so a step's value does not depend on how it was pushed."""
        n, width = steps.shape
        if self.squares.shape[0] < n * width:
            self.squares = np.zeros(n * width)
        if self.energy.shape[0] < n:
            self.energy = np.zeros(max(n, 2 * self.energy.shape[0]))
            self.means = np.zeros(self.energy.shape[0])
        squares = self.squares[: n * width].reshape(n, width)  # [n, w]
        squares[...] = steps
        means = self.means[:n]  # [n]
        np.add.reduce(squares, axis=1, out=means)  # np.mean's sum and division, without its Python layer
        means /= width
        np.square(squares, out=squares)
        out = self.energy[:n]  # [n]
        np.add.reduce(squares, axis=1, out=out)
        out /= width
        # about the step's own mean (a DC offset is no sound): mean square less the squared mean,
        # exact enough in float64 far below the floor even under a large offset
        np.square(means, out=means)
        out -= means
        np.maximum(out, ENERGY_FLOOR, out=out)
        np.log10(out, out=out)
        out *= 10.0
        return out


class StepWindow:
    """The loudest and quietest value of the last ``width`` steps (the new step included), at each
    new step. NaN values are left out (NaN also stands for the steps before the stream began); a
    window of NaN only gives NaN.

    Holds the last ``width - 1`` values and room for new ones in one array: each push writes its
    values behind them and reads every new step's window as a strided view; the history moves to
    the front once the room is used up, every few hundred steps of a live stream.
    """

    def __init__(self, width: int, room: int = 256) -> None:
        self.width = width
        self.values = np.full(2 * (width - 1) + room, np.nan)  # history, then room for new values
        self.end = width - 1  # one past the last value held
        self.top = np.zeros(room)  # [room] the last push's window maxima
        self.low = np.zeros(room)  # [room] ... and minima

    def push(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add ``values`` [n]; returns views (top [n], low [n]) valid until the next push."""
        n, keep = values.shape[0], self.width - 1
        room = self.values.shape[0] - 2 * keep
        if n > room:  # more steps at once than ever before: grow
            grown = np.full(2 * keep + max(n, 2 * room), np.nan)
            grown[:keep] = self.values[self.end - keep : self.end]
            self.values, self.end = grown, keep
            self.top, self.low = np.zeros(grown.shape[0] - 2 * keep), np.zeros(grown.shape[0] - 2 * keep)
        elif self.end + n > self.values.shape[0]:  # out of room: the history moves to the front
            self.values[:keep] = self.values[self.end - keep : self.end]  # no overlap: here end > 2 * keep
            self.end = keep
        self.values[self.end : self.end + n] = values
        span = self.values[self.end - keep : self.end + n]  # [width - 1 + n]
        self.end += n
        top, low = self.top[:n], self.low[:n]  # [n], [n]
        if n == 1:  # a live step: its window is the span itself (a strided view costs more than the reduce)
            top[0], low[0] = np.fmax.reduce(span), np.fmin.reduce(span)
            return top, low
        windows = np.lib.stride_tricks.sliding_window_view(span, self.width)  # [n, width]
        np.fmax.reduce(windows, axis=1, out=top)
        np.fmin.reduce(windows, axis=1, out=low)
        return top, low


class StepSplitter:
    """A stream's pushes cut into whole steps of ``width`` samples (the first one ``first`` wide),
    handed out as views in blocks of at most ``block`` steps; a partial step waits for the next push.

    Why views: a push's whole steps are read where the caller's array holds them, so a file given
    at once is neither copied nor turned into buffers the size of the file; only a step that
    straddles two pushes is put together, in a buffer kept for the stream.
    """

    def __init__(self, width: int, block: int, first: int | None = None) -> None:
        self.width, self.block = width, block
        self.next = width if first is None else first  # width of the next step
        self.partial = np.zeros(max(width, self.next), np.float32)  # a step's samples so far
        self.held = 0

    def completes(self, n: int) -> int:
        """Samples of the whole steps that ``n`` more samples complete."""
        have = self.held + n
        if have < self.next:
            return 0
        return self.next + (have - self.next) // self.width * self.width

    def split(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        """The whole steps completed by ``samples`` [N] (float32), as views [k, w] in order; each
        is valid until the next call. Iterate to the end: the partial step is kept after the last."""
        at = 0
        if self.held or self.next != self.width:
            take = min(self.next - self.held, samples.shape[0])
            self.partial[self.held : self.held + take] = samples[:take]
            self.held, at = self.held + take, take
            if self.held < self.next:
                return
            yield self.partial[None, : self.next]  # [1, w]
            self.held, self.next = 0, self.width
        n = (samples.shape[0] - at) // self.width
        for i in range(0, n, self.block):
            k = min(self.block, n - i)
            yield samples[at + i * self.width : at + (i + k) * self.width].reshape(k, self.width)  # [k, w]
        rest = samples[at + n * self.width :]  # [< w]
        self.partial[: rest.shape[0]] = rest
        self.held = rest.shape[0]

    def rest(self) -> np.ndarray:
        """The samples of the partial step (a copy), and the splitter emptied: the stream's end."""
        tail = self.partial[: self.held].copy()  # [held]
        self.held = 0
        return tail
