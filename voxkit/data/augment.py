"""Training-data augmentation: the random chain over waveforms, SpecAugment over log-mels, loudness.

Why: the synthetic corpus is clean, level-matched speech from a few engines; users speak in rooms,
over phones, through codecs and noise. :class:`Augment` is the one configuration of every
augmentation (probabilities and ranges; a recipe's ``[tasks.asr.augment]`` table sets its fields)
and applies the waveform part of it; the transforms themselves live in :mod:`voxkit.data.channel`.
Every random draw comes from an explicit generator, so a (seed, epoch, index) triple always yields
the same augmented waveform, in any worker process.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from dataclasses import dataclass

import torch

from voxkit.audio.constants import ASR_SAMPLE_RATE, MEL_HOP
from voxkit.data.channel import (
    CODECS,
    DEFAULT_MAX_ORDER,
    NOISE_COLOURS,
    add_noise,
    change_speed,
    lossy_codec,
    pitch_shift,
    reverberate,
    room_impulse_response,
    telephone,
)

__all__ = ["Augment", "add_noise", "apply_spec_masks", "change_speed", "draw_spec_masks", "rms_normalize"]


def rms_normalize(wav: torch.Tensor, target_dbfs: float = -23.0, eps: float = 1e-8, peak: float = 0.99) -> torch.Tensor:
    """Scale [..., T] to ``target_dbfs`` RMS (a simple loudness proxy), never clipping beyond ``peak``."""
    rms = wav.pow(2).mean(dim=-1, keepdim=True).sqrt()  # [..., 1]
    gain = (10 ** (target_dbfs / 20)) / rms.clamp_min(eps)  # [..., 1]
    max_gain = peak / wav.abs().amax(dim=-1, keepdim=True).clamp_min(eps)  # [..., 1]
    return wav * torch.minimum(gain, max_gain)


def _range(name: str, value: tuple[float, ...], lo: float = float("-inf"), hi: float = float("inf")) -> tuple[float, float]:
    """A (low, high) pair from a recipe list, checked to be ordered and inside [lo, hi]."""
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not lo <= pair[0] <= pair[1] <= hi:
        bounds = f" within [{lo:g}, {hi:g}]" if math.isfinite(lo) or math.isfinite(hi) else ""
        raise ValueError(f"{name} must be [low, high] with low <= high{bounds}, got {list(value)}")
    return pair  # type: ignore[return-value]


@dataclass
class Augment:
    """Probabilities and ranges of every augmentation; calling it augments one waveform.

    The chain, in this order (each step with its own probability): speed (word times scale by
    1/factor), pitch at the same tempo, a simulated room, gain, noise of a random colour at a random
    SNR, then the channel: a telephone line or a lossy codec. SpecAugment's masks are drawn per batch
    by :func:`draw_spec_masks` and applied to the log-mel features by the task.
    """

    # speed perturbation (pitch moves with it); word times scale by 1 / factor
    p_speed: float = 0.5
    speeds: tuple[float, ...] = (0.9, 1.1)
    # pitch shift at the same tempo, semitones drawn uniformly
    p_pitch: float = 0.1
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    # a random shoebox room (needs pyroomacoustics); reflections up to room_max_order
    p_room: float = 0.3
    room_rt60: tuple[float, float] = (0.2, 0.8)
    room_size_m: tuple[float, float] = (3.0, 10.0)
    room_max_order: int = DEFAULT_MAX_ORDER
    room_bank: int = 256  # rooms per process, each simulated once and reused (0: a new room every time)
    # level change in dB
    gain_db: tuple[float, float] = (-6.0, 6.0)
    # additive noise: colour drawn uniformly from noise_colours
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 40.0)
    noise_colours: tuple[str, ...] = NOISE_COLOURS
    # narrow-band phone line (8 kHz, 300-3400 Hz), with 8-bit mu-law companding at p_telephone_mulaw
    p_telephone: float = 0.1
    p_telephone_mulaw: float = 0.5
    # a lossy codec (when no phone line): kind drawn from codecs, bits for mulaw/pcm, cutoff for spectral
    p_codec: float = 0.1
    codecs: tuple[str, ...] = CODECS
    codec_bits: tuple[int, int] = (6, 10)
    codec_cutoff_hz: tuple[float, float] = (3500.0, 7500.0)
    # SpecAugment on the training log-mels: masks per item
    p_specaugment: float = 0.8
    freq_masks: int = 2
    freq_mask_bins: int = 15  # widest frequency mask, mel bins
    time_masks_per_second: float = 0.2  # one mask per 5 s of audio (at least one)
    time_mask_frames: int = 20  # widest time mask, mel frames (10 ms each)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.startswith("p_") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be a probability in [0, 1], got {getattr(self, f.name)}")
        self.speeds = tuple(float(s) for s in self.speeds)
        if not self.speeds or min(self.speeds) <= 0:
            raise ValueError(f"speeds must be positive factors, got {list(self.speeds)}")
        self.pitch_semitones = _range("pitch_semitones", self.pitch_semitones, -12, 12)
        self.room_rt60 = _range("room_rt60", self.room_rt60, 0.05, 3.0)
        self.room_size_m = _range("room_size_m", self.room_size_m, 2.0, 50.0)
        self.gain_db = _range("gain_db", self.gain_db)
        self.snr_db = _range("snr_db", self.snr_db)
        lo, hi = _range("codec_bits", self.codec_bits, 2, 16)
        self.codec_bits = (int(lo), int(hi))
        self.codec_cutoff_hz = _range("codec_cutoff_hz", self.codec_cutoff_hz, 1000.0)
        for name, known in (("noise_colours", NOISE_COLOURS), ("codecs", CODECS)):
            chosen = tuple(getattr(self, name))
            if not chosen or any(c not in known for c in chosen):
                raise ValueError(f"{name} must be a non-empty list of {', '.join(known)}, got {list(chosen)}")
            setattr(self, name, chosen)
        for name in ("room_max_order", "room_bank", "freq_masks", "freq_mask_bins", "time_mask_frames"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.time_masks_per_second < 0:
            raise ValueError(f"time_masks_per_second must be >= 0, got {self.time_masks_per_second}")

    def __call__(self, wav: torch.Tensor, sample_rate: int, generator: torch.Generator) -> tuple[torch.Tensor, float]:
        """[T] -> (augmented [T / factor], the speed factor applied)."""

        def chance(p: float) -> bool:
            return p > 0 and float(torch.rand((), generator=generator)) < p

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        def pick(options: tuple) -> object:  # type: ignore[type-arg]
            return options[int(torch.randint(len(options), (), generator=generator))]

        factor = 1.0
        if chance(self.p_speed):
            factor = float(pick(self.speeds))  # type: ignore[arg-type]
            wav = change_speed(wav, factor, sample_rate)
        if chance(self.p_pitch):
            wav = pitch_shift(wav, sample_rate, uniform(*self.pitch_semitones))
        if chance(self.p_room):
            if self.room_bank > 0:
                room = int(torch.randint(self.room_bank, (), generator=generator))
                rir, direct = _banked_room(room, sample_rate, self.room_rt60, self.room_size_m, self.room_max_order)
            else:
                rir, direct = room_impulse_response(generator, sample_rate, self.room_rt60, self.room_size_m, self.room_max_order)
            wav = reverberate(wav, rir, direct)
        wav = wav * 10 ** (uniform(*self.gain_db) / 20)
        if chance(self.p_noise):
            wav = add_noise(wav, uniform(*self.snr_db), generator, colour=str(pick(self.noise_colours)))
        wav = wav.clamp(-1.0, 1.0)
        if chance(self.p_telephone):
            wav = telephone(wav, sample_rate, companding=chance(self.p_telephone_mulaw))
        elif chance(self.p_codec):
            bits = int(torch.randint(self.codec_bits[0], self.codec_bits[1] + 1, (), generator=generator))
            wav = lossy_codec(wav, sample_rate, str(pick(self.codecs)), bits=bits, cutoff_hz=uniform(*self.codec_cutoff_hz))
        return wav.clamp(-1.0, 1.0), factor


@functools.lru_cache(maxsize=1024)
def _banked_room(room: int, sample_rate: int, rt60: tuple[float, float], size_m: tuple[float, float],
                 max_order: int) -> tuple[torch.Tensor, int]:
    """Room number ``room`` of the bank: the same impulse response in every process (its own seed),
    simulated once per process and then reused, so rooms cost a convolution and not a simulation."""
    return room_impulse_response(torch.Generator().manual_seed(room), sample_rate, rt60, size_m, max_order)


# ------------------------------------------------------------------------------------ SpecAugment


def draw_spec_masks(cfg: Augment, frames: list[int], offsets: list[int], n_mels: int,
                    rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """SpecAugment masks for a batch: (frequency [B, freq_masks, 2], time [B, N, 2]) of (start, width).

    Item b's speech covers mel frames ``offsets[b]`` .. ``offsets[b] + frames[b]`` of the batch's
    features; its time masks fall there, ``time_masks_per_second`` of them per second (at least one).
    A width of 0 masks nothing (items without SpecAugment, or fewer masks than the longest item).
    Drawn from ``rng`` (the batch's own generator), so a batch is the same in any worker process.
    """
    per_second = ASR_SAMPLE_RATE / MEL_HOP

    def count(n: int) -> int:
        return max(1, int(cfg.time_masks_per_second * n / per_second)) if cfg.time_masks_per_second > 0 else 0

    n_time = max((count(n) for n in frames), default=0)
    freq = torch.zeros(len(frames), cfg.freq_masks, 2, dtype=torch.long)  # [B, Nf, (start, width)]
    time = torch.zeros(len(frames), n_time, 2, dtype=torch.long)  # [B, Nt, (start, width)]
    for b, (n, offset) in enumerate(zip(frames, offsets, strict=True)):
        if cfg.p_specaugment <= 0 or rng.random() >= cfg.p_specaugment:
            continue
        for k in range(cfg.freq_masks):
            width = rng.randint(0, min(cfg.freq_mask_bins, n_mels))
            freq[b, k] = torch.tensor([rng.randint(0, n_mels - width), width])
        for k in range(count(n)):
            width = rng.randint(0, min(cfg.time_mask_frames, n))
            time[b, k] = torch.tensor([offset + rng.randint(0, n - width), width])
    return freq, time


def apply_spec_masks(mel: torch.Tensor, freq_masks: torch.Tensor, time_masks: torch.Tensor) -> torch.Tensor:
    """``mel`` [B, M, F] with the masked bins and frames set to each item's mean value."""
    bins = torch.arange(mel.shape[1], device=mel.device)  # [M]
    steps = torch.arange(mel.shape[2], device=mel.device)  # [F]

    def covered(masks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        start, width = masks[..., :1].to(mel.device), masks[..., 1:].to(mel.device)  # [B, N, 1]
        return ((index >= start) & (index < start + width)).any(dim=1)  # [B, M or F]

    hidden = covered(freq_masks, bins)[:, :, None] | covered(time_masks, steps)[:, None, :]  # [B, M, F]
    fill = mel.mean(dim=(1, 2), keepdim=True)  # [B, 1, 1]
    return torch.where(hidden, fill, mel)
