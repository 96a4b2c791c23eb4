"""StreamResampler: chunk-by-chunk resampling equal to one-shot, with one buffer for the stream."""

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from voxkit.audio.io import resample
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


# every length, every chunking: the streamed length is the one-shot length ceil(N * target / orig)
LENGTH_CASES = [(48_000, 16_000), (48_000, 24_000), (44_100, 24_000), (22_050, 24_000), (11_025, 24_000),
                (16_000, 24_000), (44_100, 16_000), (8_000, 16_000), (44_101, 16_000), (22_254, 24_000)]


def _streamed_lengths(r: StreamResampler, x: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(input length, streamed output length had the stream ended there) after each chunk of ``sizes``:
    flush() keeps the state, so one stream gives the lengths of all its prefixes."""
    ends = np.cumsum(sizes)  # [K]
    lengths, pushed, start = np.zeros(len(ends), np.int64), 0, 0
    for i, end in enumerate(ends):
        pushed += r.push(x[start:end]).size
        lengths[i], start = pushed + r.flush().size, end
    return ends, lengths


@pytest.mark.parametrize(("orig", "target"), LENGTH_CASES)
def test_streamed_length_is_the_one_shot_length_for_every_length(orig: int, target: int) -> None:
    """flush() rounded the tail's length half to even (1920.5 -> 1920), torchaudio takes the
    ceiling: a stream of 3840k + 1 samples at 48 kHz came out one sample short (a codec stream one
    frame short). For the usual rates the length depends on the input length modulo a period (at
    most 441 samples), so one-sample chunks up to 1200 samples reach every case; random chunkings
    then cover longer streams."""
    x = _signal(orig, 0.5)  # [N]
    rng = np.random.default_rng(orig + target)
    for most, upto in ((1, 1200), (37, len(x)), (1001, len(x))):
        sizes = rng.integers(1, most + 1, size=upto)  # [K]
        sizes = sizes[: np.searchsorted(np.cumsum(sizes), upto) + 1]
        sizes[-1] -= sizes.sum() - upto
        ends, lengths = _streamed_lengths(StreamResampler(orig, target), x, sizes)
        np.testing.assert_array_equal(lengths, -(-ends * target // orig))  # [K] ceil, in integers
    for n in (1, 2, 3, 3840 + 1, orig // 100 + 1, len(x) - 1):  # the integer ceiling is the one-shot length
        assert resample(torch.from_numpy(x[:n]), orig, target).shape[0] == -(-n * target // orig)


@pytest.mark.parametrize(("orig", "target"), [(48_000, 16_000), (48_000, 24_000), (22_050, 24_000), (44_101, 24_000)])
def test_streamed_samples_equal_one_shot_at_many_lengths(orig: int, target: int) -> None:
    x = _signal(orig, 0.5)  # [N]
    rng = np.random.default_rng(1)
    for n in [*rng.integers(1, len(x), size=5), 3840 * 2 + 1, len(x)]:
        n = int(n)
        reference = resample(torch.from_numpy(x[:n]), orig, target).numpy()  # [n']
        for chunk in (1237, 4800):
            r = StreamResampler(orig, target)
            y = np.concatenate([r.push(x[i : min(i + chunk, n)]) for i in range(0, n, chunk)] + [r.flush()])  # [n']
            assert len(y) == len(reference), (n, chunk)
            np.testing.assert_allclose(y, reference, atol=1e-6)


def test_a_codec_stream_at_48k_keeps_its_last_frame() -> None:
    """96001 samples at 48 kHz are 48000.5 at 24 kHz: the one-shot resampler keeps the half sample
    (48001), and so a codec's last 80 ms frame; the stream dropped it."""
    x = _signal(48_000, 2.1)[:96_001]  # [96001]
    r = StreamResampler(48_000, 24_000)
    y = np.concatenate([r.push(x[i : i + 4800]) for i in range(0, len(x), 4800)] + [r.flush()])  # [48001]
    assert len(y) == AF.resample(torch.from_numpy(x), 48_000, 24_000).shape[0] == 48_001


# rates that share no large factor with the target, and high rates whose filter reaches past CONTEXT
ODD_CASES = [(44_101, 16_000, 4410), (44_101, 24_000, 441), (22_254, 24_000, 1000), (16_000, 8_001, 1600),
             (7_919, 24_000, 333), (384_000, 16_000, 38_400), (768_000, 24_000, 7_680)]


@pytest.mark.parametrize(("orig", "target", "chunk"), ODD_CASES)
def test_odd_rates_stream_equal_one_shot(orig: int, target: int, chunk: int) -> None:
    x = _signal(orig, 1.5)  # [N]
    r = StreamResampler(orig, target)
    y = np.concatenate([r.push(x[i : i + chunk]) for i in range(0, len(x), chunk)] + [r.flush()])  # [N']
    reference = resample(torch.from_numpy(x), orig, target).numpy()  # [N']
    assert len(y) == len(reference) == -(-len(x) * target // orig)
    np.testing.assert_allclose(y, reference, atol=1e-6)
    if orig in (22_254, 384_000, 768_000):  # torchaudio's own kernel is affordable here
        np.testing.assert_allclose(y, AF.resample(torch.from_numpy(x), orig, target).numpy(), atol=1e-6)


def test_an_odd_rate_streams_without_waiting_a_period() -> None:
    """At 44101 Hz a period (the input rate over the rates' gcd) is a whole second: block by block
    the first words of a live stream would wait for it. Every output whose filter has its inputs
    comes out at once, lagging by the filter's width."""
    r = StreamResampler(44_101, 16_000)
    x = _signal(44_101, 0.1)  # [4410] one sound-card block
    first = r.push(x)
    lag = r.ctx  # input samples the filter reads ahead
    assert lag < 100 and first.size >= (x.size - lag) * 16_000 // 44_101 - 1
    assert len(r.pending) <= 2 * lag + 44_101 // 16_000 + 1  # only what later outputs still read is kept
