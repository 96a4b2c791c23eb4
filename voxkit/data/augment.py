"""Waveform augmentation and loudness normalisation for training data (deterministic by generator).

Why these and not reverb: the synthetic corpus is clean and level-varied; noise, gain and speed
perturbation are the cheap augmentations that make a small recogniser robust to real microphones.
Reverb needs impulse responses we cannot download here, so it is deliberately left out.
Every random draw comes from an explicit ``torch.Generator`` so a (seed, epoch, index) triple always
yields the same augmented waveform, in any worker process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def rms_normalize(wav: torch.Tensor, target_dbfs: float = -23.0, eps: float = 1e-8, peak: float = 0.99) -> torch.Tensor:
    """Scale [..., T] to ``target_dbfs`` RMS (a simple loudness proxy), never clipping beyond ``peak``."""
    rms = wav.pow(2).mean(dim=-1, keepdim=True).sqrt()  # [..., 1]
    gain = (10 ** (target_dbfs / 20)) / rms.clamp_min(eps)  # [..., 1]
    max_gain = peak / wav.abs().amax(dim=-1, keepdim=True).clamp_min(eps)  # [..., 1]
    return wav * torch.minimum(gain, max_gain)


def add_noise(wav: torch.Tensor, snr_db: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """White Gaussian noise at ``snr_db`` relative to the signal's RMS; [T] -> [T]."""
    noise = torch.randn(wav.shape, generator=generator, dtype=wav.dtype)  # [T]
    sig = wav.pow(2).mean().clamp_min(1e-10)
    scale = (sig / (10 ** (snr_db / 10))).sqrt()
    return wav + noise * scale


def change_speed(wav: torch.Tensor, factor: float, sample_rate: int) -> torch.Tensor:
    """Speed perturbation (pitch moves with it, Kaldi-style) by resampling; [T] -> [T / factor].

    Word times scale by 1/factor; :class:`Augment` returns the factor so callers can rescale them.
    """
    if abs(factor - 1.0) < 1e-6:
        return wav
    import torchaudio.functional as AF

    # Pretend the audio is at sr*factor and bring it back to sr: fewer samples when factor > 1.
    orig = int(round(sample_rate * factor / 100)) * 100
    return AF.resample(wav, orig, sample_rate)


@dataclass
class Augment:
    """Random chain: speed (prob ``p_speed``), gain in dB, additive noise at a random SNR."""

    p_speed: float = 0.5
    speeds: tuple[float, ...] = (0.9, 1.1)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (10.0, 40.0)

    def __call__(self, wav: torch.Tensor, sample_rate: int, generator: torch.Generator) -> tuple[torch.Tensor, float]:
        """Returns (augmented [T'], speed factor applied)."""

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        factor = 1.0
        if float(torch.rand((), generator=generator)) < self.p_speed:
            factor = self.speeds[int(torch.randint(len(self.speeds), (), generator=generator))]
            wav = change_speed(wav, factor, sample_rate)
        wav = wav * 10 ** (uniform(*self.gain_db) / 20)
        if float(torch.rand((), generator=generator)) < self.p_noise:
            wav = add_noise(wav, uniform(*self.snr_db), generator)
        return wav.clamp(-1.0, 1.0), factor
