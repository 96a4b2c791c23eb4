"""Resampling by the exact ratio at any pair of rates: torchaudio's filter, at bounded cost.

Why a module of its own: torchaudio builds a kernel row per output phase over a whole period of
the input, so a rate that shares no large factor with the target (44101 Hz, an odd rate a device
or an editor wrote) costs gigabytes and seconds per call; the polyphase path here keeps only the
taps that can be non-zero. The file loaders (:mod:`voxkit.audio.io`) and the live streams'
resampler (:mod:`voxkit.audio.stream`) both go through it.
"""

from __future__ import annotations

import math

import torch

LOWPASS_WIDTH, ROLLOFF = 6, 0.99
"""torchaudio's resampling filter (its defaults): zero crossings of the windowed sinc on each side,
and the cutoff as a share of the lower rate's Nyquist frequency."""

DENSE_KERNEL_LIMIT = 2**20
"""Most entries torchaudio's kernel may have for :func:`resample` and the stream's resampler to
use it; a ratio whose kernel is larger goes to :class:`PolyphaseResampler`. Every pair of the
usual rates (8 to 192 kHz) stays below it (the largest, 11.025 <-> 32 kHz, has 0.58 M); an input at
44101 Hz to 24 kHz would need a thousand times the limit."""


def dense_kernel_size(orig_sr: int, sample_rate: int) -> int:
    """Entries of the kernel ``torchaudio.functional.resample`` builds for these rates.

    Why it matters: torchaudio divides both rates by their gcd (``q`` in, ``p`` out) and gives each
    of the ``p`` output phases a row as long as ``q`` plus the filter, so kernel memory and the
    multiply-adds of every output sample grow with the rates' coprime parts: tiny for rates that
    share a large factor, gigabytes and seconds for a rate that shares none with the target.
    """
    g = math.gcd(orig_sr, sample_rate)
    q, p = orig_sr // g, sample_rate // g
    width = math.ceil(LOWPASS_WIDTH * q / (min(q, p) * ROLLOFF))  # as torchaudio rounds it
    return p * (q + 2 * width)


def resample(wav: torch.Tensor, orig_sr: int, sample_rate: int) -> torch.Tensor:
    """Resample along the last axis (band-limited sinc; identity when the rates match).

    The usual rates go to ``torchaudio.functional.resample``; a ratio whose torchaudio kernel would
    exceed :data:`DENSE_KERNEL_LIMIT` (an input rate sharing no large factor with the target) goes
    to :class:`PolyphaseResampler`, the same filter at bounded cost. Both resample by the exact
    ratio and give ``ceil(T * sample_rate / orig_sr)`` samples: times and lengths stay on the
    input's clock at every rate.
    """
    if orig_sr == sample_rate:
        return wav
    if dense_kernel_size(orig_sr, sample_rate) > DENSE_KERNEL_LIMIT:
        return PolyphaseResampler(orig_sr, sample_rate, dtype=wav.dtype, device=wav.device)(wav)
    import torchaudio.functional as AF

    return AF.resample(wav, orig_sr, sample_rate)


class PolyphaseResampler:
    """torchaudio's sinc resampler (Hann window, :data:`LOWPASS_WIDTH` zero crossings,
    :data:`ROLLOFF`) keeping only the taps of each output phase that can be non-zero.

    Why: torchaudio's kernel row for an output phase spans a whole period of ``q`` input samples
    plus the filter, of which only the ``2 * width + 1`` around that phase's instant are non-zero;
    at 44101 -> 24000 Hz (``q`` = 44101, ``p`` = 24000 phases) that is 4 GB of kernel and 44 000
    multiply-adds per output sample. Here the kernel is ``[p, 2 * width + 1]`` with torchaudio's
    values (the same operations in the same dtype), and output ``n`` reads the inputs from
    ``n * q // p - width`` on: a few MB and ``2 * width + 1`` multiply-adds per output at any
    ratio. The ratio is exact (no rate is rounded), so the result is torchaudio's up to float
    rounding (~1e-7), with its length, and times stay on the input's clock. A whole signal goes
    through sparse matrix products (:meth:`__call__`), a stream's runs of outputs through their
    gathered taps (:meth:`outputs`); both work in pieces of at most :data:`BLOCK` samples, so
    memory does not grow with the signal.
    """

    BLOCK = 2**22
    """Most input samples (or gathered taps) one piece of work holds: 16 MB of float32."""

    def __init__(self, orig_sr: int, sample_rate: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> None:
        if not dtype.is_floating_point:
            raise TypeError(f"resampling needs floating-point samples, got {dtype}")
        g = math.gcd(orig_sr, sample_rate)
        self.q, self.p = orig_sr // g, sample_rate // g  # input samples per period, output phases
        base = min(self.q, self.p) * ROLLOFF
        self.width = math.ceil(LOWPASS_WIDTH * self.q / base)  # input samples the filter reaches on each side
        self.taps = 2 * self.width + 1
        phase = torch.arange(self.p, device=device)  # [p]
        column = (phase * self.q // self.p)[:, None] + torch.arange(self.taps, device=device)  # [p, taps] columns of torchaudio's row
        t = (-phase).to(dtype)[:, None] / self.p + (column - self.width).to(dtype) / self.q  # [p, taps] input periods from the output
        t *= base
        t = t.clamp_(-LOWPASS_WIDTH, LOWPASS_WIDTH)
        window = torch.cos(t * math.pi / LOWPASS_WIDTH / 2) ** 2  # [p, taps]
        t *= math.pi
        kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)  # [p, taps]
        kernel *= window * (base / self.q)
        self.kernel = kernel  # [p, taps]
        self._first = column[:, 0]  # [p] each phase's first tap within its period

    def length(self, samples: int) -> int:
        """Output samples for ``samples`` input samples (torchaudio's: the ceiling)."""
        return -(-samples * self.p // self.q)

    def first_tap(self, n: int) -> int:
        """Where output ``n``'s taps start, in input samples counted with ``width`` zeros in front."""
        return n * self.q // self.p

    def outputs(self, padded: torch.Tensor, start: int, stop: int, offset: int = 0) -> torch.Tensor:
        """Outputs ``start`` to ``stop`` (excluded), [B, stop - start], from ``padded`` [B, L]: the
        input with ``width`` zeros in front, from its sample ``offset`` on; it must hold every tap
        of those outputs (up to ``first_tap(stop - 1) + taps``).

        Work goes in pieces of whole periods or of phases within one period, so that the phases'
        kernel rows and first taps are views of the tables (no per-output index arithmetic), and
        each piece gathers at most :data:`BLOCK` samples.
        """
        windows = padded.unfold(-1, self.taps, 1)  # [B, L - taps + 1, taps] a view
        out = padded.new_empty(padded.shape[0], stop - start)  # [B, M]
        budget = max(1, self.BLOCK // (self.taps * padded.shape[0]))  # outputs per piece
        n = start
        while n < stop:
            period, phase = divmod(n, self.p)
            if phase == 0 and stop - n >= self.p and self.p <= budget:  # whole periods
                periods, end = min((stop - n) // self.p, budget // self.p), self.p
            else:  # phases of one period
                periods, end = 1, min(self.p, phase + stop - n, phase + budget)
            rows = torch.arange(period, period + periods, device=padded.device)[:, None] * self.q - offset  # [K, 1]
            x = windows[:, rows + self._first[phase:end]]  # [B, K, J, taps]
            x *= self.kernel[phase:end]  # [J, taps] each phase's row
            done = n - start
            n += periods * (end - phase)
            out[:, done : n - start] = x.sum(dim=-1).flatten(1)  # [B, K * J]
        return out

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        """A whole signal [..., T] -> [..., ceil(T * p / q)].

        Why a sparse product and not :meth:`outputs`: a period's outputs are the product of the
        ``[p, q + 2 * width]`` matrix of the phases' rows (torchaudio's kernel, its zeros left out)
        and the period's inputs, so whole periods cost one ``torch.sparse.mm`` per :data:`BLOCK`
        inputs instead of several element-wise ops per piece. Each op waits for its threads, which
        on busy shared cores costs milliseconds: an hour at 44101 Hz takes 2-4 s this way on two
        such cores, and over a minute in gathered pieces.
        """
        samples = wav.shape[-1]
        total = self.length(samples)
        if not total:
            return wav.new_zeros(*wav.shape[:-1], 0)  # [..., 0]
        periods, span = -(-total // self.p), self.q + 2 * self.width  # span: the inputs one period's outputs read
        flat = wav.reshape(-1, samples)  # [B, T]
        padded = torch.nn.functional.pad(flat, (self.width, periods * self.q + self.width - samples))  # [B, K * q + 2 * width]
        windows = padded.unfold(-1, span, self.q)  # [B, K, span] a view
        matrix = self._matrix(span, flat.device)  # [p, span] sparse
        out = flat.new_empty(flat.shape[0], periods, self.p)  # [B, K, p]
        step = max(1, self.BLOCK // (span * flat.shape[0]))  # periods per product
        for k in range(0, periods, step):
            block = windows[:, k : k + step]  # [B, k', span]
            product = torch.sparse.mm(matrix, block.reshape(-1, span).T)  # [p, B * k']
            out[:, k : k + step] = product.T.reshape(block.shape[0], block.shape[1], self.p)  # [B, k', p]
        return out.reshape(flat.shape[0], -1)[:, :total].reshape(*wav.shape[:-1], total)  # [..., T']

    def _matrix(self, span: int, device: torch.device) -> torch.Tensor:
        """The phases' rows as a sparse ``[p, span]`` matrix: row ``j`` holds ``kernel[j]`` from
        column ``first_tap(j)`` on."""
        rows = torch.arange(self.p, device=device).repeat_interleave(self.taps)  # [p * taps]
        columns = (self._first[:, None] + torch.arange(self.taps, device=device)).reshape(-1)  # [p * taps]
        return torch.sparse_coo_tensor(torch.stack([rows, columns]), self.kernel.reshape(-1), (self.p, span),
                                       is_coalesced=True, check_invariants=True)  # row-major and unique: coalesced
