"""StreamResampler: chunk-by-chunk resampling equal to one-shot, with one buffer for the stream."""

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from voxkit.audio.stream import StreamResampler


def _signal(rate: int, seconds: float) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(rate * seconds))).astype(np.float32)  # [N]


CASES = [(44_100, 16_000, 4410), (48_000, 16_000, 960), (16_000, 24_000, 1920), (8_000, 16_000, 333)]  # (from, to, chunk)


@pytest.mark.parametrize(("orig", "target", "chunk"), CASES)
def test_chunks_equal_one_shot(orig: int, target: int, chunk: int) -> None:
    x = _signal(orig, 3.0)  # [N]
    r = StreamResampler(orig, target)
    pieces = [r.push(x[i : i + chunk]) for i in range(0, len(x), chunk)] + [r.flush()]
    y = np.concatenate(pieces)  # [N * target / orig]
    reference = AF.resample(torch.from_numpy(x), orig, target).numpy()  # [N * target / orig]
    assert len(y) == len(reference)
    np.testing.assert_allclose(y, reference, atol=1e-6)


def test_buffer_is_kept_between_equal_chunks() -> None:
    """A live source pushes a chunk every 80-100 ms for hours: after the first chunk the buffer is
    reused, not reallocated, and it does not grow."""
    x = _signal(44_100, 2.0)  # [N]
    r = StreamResampler(44_100)
    r.push(x[:4410])
    buffer = r.pending._data
    for i in range(4410, len(x), 4410):
        r.push(x[i : i + 4410])
        assert r.pending._data is buffer


def test_one_large_chunk_grows_the_buffer_once() -> None:
    x = _signal(48_000, 1.0)  # [N]
    r = StreamResampler(48_000)
    y = np.concatenate([r.push(x), r.flush()])  # [N / 3]
    reference = AF.resample(torch.from_numpy(x), 48_000, 16_000).numpy()  # [N / 3]
    np.testing.assert_allclose(y, reference, atol=1e-6)


def test_flush_twice_and_empty_pushes() -> None:
    r = StreamResampler(44_100)
    assert r.push(np.zeros(0, np.float32)).size == 0
    assert r.flush().size == 0
    r.push(_signal(44_100, 0.01))
    first = r.flush()
    np.testing.assert_array_equal(first, r.flush())


def test_same_rate_passes_through() -> None:
    x = _signal(16_000, 0.1)  # [N]
    r = StreamResampler(16_000)
    assert r.push(x) is x
    assert r.flush().size == 0
