"""Channel simulations for training audio: rooms, coloured noise, telephone band, lossy codecs, pitch.

Why these: the corpus is clean synthetic speech, while users speak in rooms, over phones and through
compressed streams. Each function is a pure transform of a mono waveform ``[T]``; the random draws
(which room, which SNR) happen in :class:`voxkit.data.augment.Augment` from an explicit
``torch.Generator``, so an item's augmentation depends only on (seed, epoch, index).

Every transform keeps the length and the timing of the input (word times stay valid) except
:func:`change_speed`, whose output is ``T / factor`` long (word times scale by ``1 / factor``).
Nothing is downloaded or cached on disk: impulse responses are simulated (pyroomacoustics, the
``augment`` extra), noise is shaped white noise, codecs are simple in-process quantisers.
"""

from __future__ import annotations

import math

import torch

from voxkit.errors import VoxkitError

TELEPHONE_RATE = 8000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
NOISE_COLOURS = ("white", "pink", "brown")
CODECS = ("mulaw", "pcm", "spectral")
# image-source order cap: enough reflections that the noise tail starts at a realistic level
# (docs/training.md, "Augmentation"), few enough that a room simulates in milliseconds
DEFAULT_MAX_ORDER = 17


def fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` [T'] cropped or zero-padded at the end to ``n`` samples (resampling rounds lengths)."""
    if x.numel() >= n:
        return x[:n]
    return torch.nn.functional.pad(x, (0, n - x.numel()))


# ------------------------------------------------------------------------------------- speed / pitch


def speed_rate(sample_rate: int, factor: float) -> int:
    """The rate that ``factor`` maps ``sample_rate`` to, rounded to 100 Hz so resampling kernels stay small."""
    return int(round(sample_rate * factor / 100)) * 100


def change_speed(wav: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """Speed perturbation (pitch moves with it, Kaldi-style) by resampling; [T] -> [T / factor].

    Word times scale by 1/factor; :class:`voxkit.data.augment.Augment` returns the factor so callers can rescale them.
    """
    if abs(factor - 1.0) < 1e-6:
        return wav
    import torchaudio.functional as AF

    # Pretend the audio is at sr*factor and bring it back to sr: fewer samples when factor > 1.
    return AF.resample(wav, speed_rate(sample_rate, factor), sample_rate)


def pitch_shift(wav: torch.Tensor, sample_rate: int, semitones: float, n_fft: int = 512) -> torch.Tensor:
    """Pitch moved by ``semitones`` at the same tempo; [T] -> [T].

    A phase-vocoder time stretch by the pitch factor followed by the speed change that undoes it.
    The factor is rounded like :func:`change_speed`'s (to 100 Hz of rate, ~0.1 semitone), which keeps
    the resampling kernel small: torchaudio's own ``pitch_shift`` resamples by the exact ratio and
    costs seconds per utterance.
    """
    rate = speed_rate(sample_rate, 2 ** (semitones / 12))
    factor = rate / sample_rate
    if abs(factor - 1.0) < 1e-6:
        return wav
    import torchaudio.functional as AF

    n, hop = wav.numel(), n_fft // 4
    window = torch.hann_window(n_fft, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft, hop, window=window, return_complex=True)  # [F, frames]
    advance = torch.linspace(0, math.pi * hop, spec.shape[0], dtype=wav.dtype)[:, None]  # [F, 1]
    stretched = AF.phase_vocoder(spec, 1.0 / factor, advance)  # [F, frames * factor]
    longer = torch.istft(stretched, n_fft, hop, window=window, length=int(round(n * factor)))  # [T * factor]
    return fit_length(change_speed(longer, factor, sample_rate), n)


# ------------------------------------------------------------------------------------------- noise


def coloured_noise(n: int, colour: str, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit-RMS noise [n] with a 1/f^a power spectrum: white (a=0), pink (a=1) or brown (a=2).

    White Gaussian noise shaped in the frequency domain: no noise recordings are needed.
    """
    if colour not in NOISE_COLOURS:
        raise ValueError(f"noise colour must be one of {', '.join(NOISE_COLOURS)}, got {colour!r}")
    if colour == "white":
        white = torch.randn(n, generator=generator, dtype=dtype)  # [n]
    else:
        size = 1 << max(n - 1, 1).bit_length()  # shaped at a power of two: FFTs of odd lengths are several times slower
        spec = torch.fft.rfft(torch.randn(size, generator=generator, dtype=dtype))  # [size // 2 + 1]
        f = torch.arange(spec.numel(), dtype=dtype).clamp_min(1.0)  # bin 0 (DC) weighted like bin 1
        white = torch.fft.irfft(spec / f.pow(NOISE_COLOURS.index(colour) / 2), n=size)[:n]  # [n]
        white = white - white.mean()
    return white / white.pow(2).mean().sqrt().clamp_min(1e-12)


def add_noise(wav: torch.Tensor, snr_db: float, generator: torch.Generator | None = None, colour: str = "white") -> torch.Tensor:
    """Noise of ``colour`` at ``snr_db`` relative to the signal's RMS; [T] -> [T]."""
    noise = coloured_noise(wav.numel(), colour, generator, wav.dtype).reshape(wav.shape)  # [T]
    sig = wav.pow(2).mean().clamp_min(1e-10)
    return wav + noise * (sig / (10 ** (snr_db / 10))).sqrt()


# -------------------------------------------------------------------------------------------- rooms


def require_pyroomacoustics():  # type: ignore[no-untyped-def]
    """The pyroomacoustics module, or a one-line error naming the extra that installs it."""
    try:
        import pyroomacoustics
    except ImportError:
        raise VoxkitError("simulated rooms need pyroomacoustics: pip install pyroomacoustics (or set augment.p_room = 0)") from None
    return pyroomacoustics


def room_impulse_response(
    generator: torch.Generator,
    sample_rate: int,
    rt60: tuple[float, float] = (0.2, 0.8),
    size_m: tuple[float, float] = (3.0, 10.0),
    max_order: int = DEFAULT_MAX_ORDER,
) -> tuple[torch.Tensor, int]:
    """A random shoebox room's impulse response [L] and the sample index of its direct path.

    Floor sides are drawn from ``size_m``, the height from 2.4-4 m, the reverberation time from
    ``rt60`` (wall absorption by Sabine's formula), source and microphone anywhere at least 0.5 m
    from the walls and from each other.
    """
    pra = require_pyroomacoustics()

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    dims = [uniform(*size_m), uniform(*size_m), uniform(2.4, 4.0)]
    target = uniform(*rt60)
    try:
        absorption, order = pra.inverse_sabine(target, dims)
    except ValueError:  # too short for so large a room: the most absorbing walls
        absorption, order = 0.99, 1
    margin = 0.5
    src = [uniform(margin, d - margin) for d in dims]
    for _ in range(8):  # a microphone at least 0.5 m from the talker
        mic = [uniform(margin, d - margin) for d in dims]
        if math.dist(src, mic) >= 0.5:
            break
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(float(absorption)), max_order=max(1, min(order, max_order)))
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    rir = torch.as_tensor(room.rir[0][0], dtype=torch.float32)  # [L]
    # pyroomacoustics centres each arrival in a fractional-delay filter of frac_delay_length taps
    direct = int(round(math.dist(src, mic) / room.c * sample_rate)) + pra.constants.get("frac_delay_length") // 2
    direct = min(direct, rir.numel() - 1)
    return _late_tail(rir, direct, target, sample_rate, generator), direct


def _late_tail(rir: torch.Tensor, direct: int, rt60: float, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """``rir`` [L] extended to the room's reverberation time [rt60 * rate] by exponentially decaying noise.

    The image sources stop at ``max_order`` reflections, a tenth of a second or so; the diffuse tail
    that follows (60 dB down at ``rt60``) is what makes a room sound reverberant, and noise shaped by
    the decay is the usual cheap stand-in. It starts at the level of the last simulated reflections
    and cross-fades over the last quarter of them.
    """
    length = int(rt60 * sample_rate)
    cross = max(direct + 1, rir.numel() * 3 // 4)
    if length <= rir.numel() or cross >= rir.numel():
        return rir
    level = rir[max(direct + 1, cross - sample_rate // 50) : cross].pow(2).mean().sqrt()  # the last 20 ms before the fade
    t = torch.arange(length - cross, dtype=rir.dtype) / sample_rate  # [length - cross] seconds after the fade starts
    tail = level * torch.exp(-6.908 * t / rt60) * torch.randn(length - cross, generator=generator, dtype=rir.dtype)  # 6.908 = ln(1000)
    fade = torch.linspace(0.0, 1.0, rir.numel() - cross, dtype=rir.dtype)  # [L - cross]
    out = torch.nn.functional.pad(rir, (0, length - rir.numel()))  # [length]
    out[cross : rir.numel()] *= 1.0 - fade
    tail[: fade.numel()] *= fade
    out[cross:] += tail
    return out


def reverberate(wav: torch.Tensor, rir: torch.Tensor, direct: int) -> torch.Tensor:
    """``wav`` [T] heard in a room: convolved with ``rir`` [L], shifted back by the direct-path delay
    (so word times stay valid) and brought back to the input's RMS; [T] -> [T]."""
    n = wav.numel()
    size = 1 << (n + rir.numel() - 1).bit_length()  # a power of two: FFTs of odd lengths are several times slower
    wet = torch.fft.irfft(torch.fft.rfft(wav, size) * torch.fft.rfft(rir.to(wav.dtype), size), size)  # [size]
    wet = fit_length(wet[direct : direct + n], n)  # [T]
    gain = wav.pow(2).mean().sqrt() / wet.pow(2).mean().sqrt().clamp_min(1e-10)
    return wet * gain


# ---------------------------------------------------------------------------------- telephone / codecs


def band_pass(wav: torch.Tensor, sample_rate: int, low_hz: float, high_hz: float) -> torch.Tensor:
    """Zero every frequency outside [low_hz, high_hz] (FFT mask over the whole signal); [T] -> [T]."""
    spec = torch.fft.rfft(wav)  # [T // 2 + 1]
    freqs = torch.fft.rfftfreq(wav.numel(), 1.0 / sample_rate)  # [T // 2 + 1]
    return torch.fft.irfft(spec * ((freqs >= low_hz) & (freqs <= high_hz)), n=wav.numel())


def mu_law(wav: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Through a ``bits``-bit mu-law quantiser and back (G.711 at 8 bits); [T] -> [T]."""
    import torchaudio.functional as AF

    levels = 2**bits
    return AF.mu_law_decoding(AF.mu_law_encoding(wav.clamp(-1.0, 1.0), levels), levels).to(wav.dtype)


def telephone(wav: torch.Tensor, sample_rate: int, companding: bool = True) -> torch.Tensor:
    """A narrow-band phone line: 8 kHz, 300-3400 Hz, optionally 8-bit mu-law; [T] -> [T] at ``sample_rate``."""
    import torchaudio.functional as AF

    narrow = AF.resample(wav, sample_rate, TELEPHONE_RATE)  # [T / 2] at 16 kHz input
    narrow = band_pass(narrow, TELEPHONE_RATE, *TELEPHONE_BAND_HZ)
    if companding:
        narrow = mu_law(narrow)
    return fit_length(AF.resample(narrow, TELEPHONE_RATE, sample_rate), wav.numel())


def lossy_codec(wav: torch.Tensor, sample_rate: int, kind: str, bits: int = 8, cutoff_hz: float = 6000.0,
                db_step: float = 3.0) -> torch.Tensor:
    """A cheap in-process lossy codec; [T] -> [T].

    * ``mulaw``: ``bits``-bit mu-law (the companded PCM of phone networks and VoIP);
    * ``pcm``: ``bits``-bit linear PCM (quantisation noise that follows the signal);
    * ``spectral``: what perceptual codecs at low bit rates do audibly, without their cost: the band
      above ``cutoff_hz`` is dropped and STFT magnitudes are quantised to ``db_step`` dB steps.
    """
    if kind == "mulaw":
        return mu_law(wav, bits)
    if kind == "pcm":
        scale = 2 ** (bits - 1) - 1
        return torch.round(wav.clamp(-1.0, 1.0) * scale) / scale
    if kind == "spectral":
        n_fft = 512
        window = torch.hann_window(n_fft, dtype=wav.dtype)
        spec = torch.stft(wav, n_fft, n_fft // 4, window=window, return_complex=True)  # [F, frames]
        freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate)[:, None]  # [F, 1]
        db = 20 * torch.log10(spec.abs().clamp_min(1e-7))  # [F, frames]
        mag = 10 ** (torch.round(db / db_step) * db_step / 20) * (freqs <= cutoff_hz)  # [F, frames]
        spec = torch.polar(mag, spec.angle())  # [F, frames]
        return torch.istft(spec, n_fft, n_fft // 4, window=window, length=wav.numel())
    raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {kind!r}")
