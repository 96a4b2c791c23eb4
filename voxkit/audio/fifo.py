"""A first-in first-out queue of float32 samples backed by one array for the whole stream.

Why: live audio arrives in chunks every 80-100 ms for hours and is read back in fixed blocks (a
recogniser step, a resampler block). Joining the leftover and each new chunk into a fresh array
allocates on every chunk; here the samples stay in one array that is compacted in place when its
end is reached and grows only when more samples are pending than ever before.
"""

from __future__ import annotations

import numpy as np


class SampleFifo:
    """Samples appended at the back and read (as views) from the front."""

    def __init__(self, capacity: int = 0) -> None:
        self._data = np.zeros(max(capacity, 1), np.float32)
        self._start = 0  # first pending sample
        self._end = 0  # one past the last pending sample

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, samples: np.ndarray) -> None:
        """Copy ``samples`` (any float or integer dtype, cast to float32) to the back."""
        n = samples.shape[0]
        if self._end + n > self._data.shape[0]:
            pending = self._end - self._start
            if pending + n > self._data.shape[0]:  # more pending than ever before: grow
                grown = np.zeros(max(pending + n, 2 * self._data.shape[0]), np.float32)
                grown[:pending] = self._data[self._start : self._end]
                self._data = grown
            else:  # compact: the pending samples move to the front
                self._data[:pending] = self._data[self._start : self._end]
            self._start, self._end = 0, pending
        self._data[self._end : self._end + n] = samples
        self._end += n

    def peek(self, n: int) -> np.ndarray:
        """The first ``n`` pending samples (a view, valid until the next append)."""
        if n > len(self):
            raise ValueError(f"{n} samples asked, {len(self)} pending")
        return self._data[self._start : self._start + n]

    def pop(self, n: int) -> np.ndarray:
        """Remove the first ``n`` pending samples and return them (a view, valid until the next append)."""
        out = self.peek(n)
        self._start += n
        return out
