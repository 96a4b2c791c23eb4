"""SampleFifo: the queue under the live resampler and the recogniser's stream slots."""

import numpy as np
import pytest

from voxkit.audio.fifo import SampleFifo


def test_random_appends_and_pops_keep_order() -> None:
    rng = np.random.default_rng(0)
    fifo, reference = SampleFifo(16), np.zeros(0, np.float32)
    for _ in range(500):
        chunk = rng.standard_normal(int(rng.integers(0, 40))).astype(np.float32)  # [n]
        fifo.append(chunk)
        reference = np.concatenate([reference, chunk])
        n = int(rng.integers(0, len(fifo) + 1))
        np.testing.assert_array_equal(fifo.peek(len(fifo)), reference)
        np.testing.assert_array_equal(fifo.pop(n), reference[:n])
        reference = reference[n:]
        assert len(fifo) == len(reference)


def test_steady_stream_reuses_its_array() -> None:
    fifo = SampleFifo(4 * 1280)
    data = fifo._data
    for _ in range(1000):  # a live stream: 80 ms in, 80 ms out
        fifo.append(np.ones(1280, np.float32))
        fifo.pop(1280)
    assert fifo._data is data


def test_integer_samples_are_cast_and_overreads_refused() -> None:
    fifo = SampleFifo()
    fifo.append(np.array([1, 2, 3], np.int16))
    assert fifo.pop(3).dtype == np.float32
    with pytest.raises(ValueError, match="pending"):
        fifo.peek(1)
