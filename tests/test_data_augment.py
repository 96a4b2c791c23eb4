"""Training augmentation: deterministic by generator, length- and timing-preserving, finite, in range.

Each channel transform is checked for the property that makes it safe for word-timed training data
(rooms keep the direct path where it was, the phone line removes what a phone line removes) and the
chain for determinism; SpecAugment's masks for their count and place.
"""

from __future__ import annotations

import math
import random
import sys

import pytest
import torch

from voxkit.data import channel
from voxkit.data.augment import Augment, apply_spec_masks, draw_spec_masks
from voxkit.errors import VoxkitError

SR = 16000
ONLY = dict(p_speed=0.0, p_pitch=0.0, p_room=0.0, p_noise=0.0, p_telephone=0.0, p_codec=0.0)


def speech_like(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A gliding harmonic tone with a syllable-rate envelope and a little noise: [T] in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    f0 = 120 + 40 * t
    tone = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 6))
    return 0.2 * tone * (0.6 + 0.4 * torch.sin(2 * math.pi * 4 * t)) + 0.005 * torch.randn(t.shape, generator=g)


def band_energy(x: torch.Tensor, lo: float, hi: float) -> float:
    spec = torch.fft.rfft(x).abs().pow(2)
    freqs = torch.fft.rfftfreq(x.numel(), 1 / SR)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


@pytest.mark.parametrize("steps", [dict(p_speed=1.0), dict(p_pitch=1.0), dict(p_room=1.0), dict(p_noise=1.0),
                                   dict(p_telephone=1.0), dict(p_codec=1.0)], ids=lambda d: next(iter(d)))
def test_each_augmentation_is_deterministic_finite_in_range_and_keeps_timing(steps: dict[str, float]) -> None:
    aug = Augment(**{**ONLY, **steps}, room_bank=0)
    wav = speech_like(0.5)
    runs = [aug(wav, SR, torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    (a, fa), (b, fb), (c, _) = runs
    assert torch.equal(a, b) and fa == fb
    assert not torch.equal(a, c)  # another item (or epoch) draws another augmentation
    assert torch.isfinite(a).all() and a.abs().max() <= 1.0
    assert not torch.equal(a[: wav.numel()], wav)
    # only speed changes the length, by 1 / factor (the dataset scales word times by the same factor)
    assert abs(a.numel() - wav.numel() / fa) <= 2
    if "p_speed" not in steps:
        assert fa == 1.0 and a.numel() == wav.numel()


def test_the_default_chain_is_deterministic_and_the_speed_factor_matches_the_length() -> None:
    aug = Augment(p_speed=1.0, p_pitch=1.0, p_room=1.0, p_noise=1.0, p_codec=1.0, room_bank=4)
    wav = speech_like(0.5, seed=1)
    a, fa = aug(wav, SR, torch.Generator().manual_seed(3))
    b, fb = aug(wav, SR, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and fa == fb in aug.speeds
    assert abs(a.numel() - wav.numel() / fa) <= 2 and torch.isfinite(a).all() and a.abs().max() <= 1.0


def test_pitch_shift_keeps_the_tempo_and_moves_the_pitch() -> None:
    t = torch.arange(SR // 2) / SR
    tone = 0.5 * torch.sin(2 * math.pi * 400 * t) * (t > 0.25)  # a tone that starts at 0.25 s
    up = channel.pitch_shift(tone, SR, 12.0)  # an octave
    spec = torch.fft.rfft(up[SR // 4 + 1000 :]).abs()
    peak_hz = float(torch.fft.rfftfreq(SR // 4 - 1000, 1 / SR)[spec.argmax()])
    assert up.numel() == tone.numel() and abs(peak_hz - 800) < 20
    onset = int((up.abs() > 0.1).nonzero()[0])
    assert abs(onset - SR // 4) < 0.02 * SR  # same tempo: the onset did not move by more than 20 ms


def first_arrival(x: torch.Tensor) -> int:
    """Index of the first sample above a third of the peak: the direct path (coincident reflections
    can add up to more than it later, so the peak itself may be a reflection)."""
    return int((x.abs() > x.abs().max() / 3).nonzero()[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_room_keeps_the_direct_path_where_it_was(seed: int) -> None:
    rir, direct = channel.room_impulse_response(torch.Generator().manual_seed(seed), SR, rt60=(0.3, 0.8))
    assert first_arrival(rir) == pytest.approx(direct, abs=2) and int(rir[direct - 3 : direct + 4].abs().argmax()) == 3
    impulse = torch.zeros(SR // 2)
    impulse[3000] = 1.0
    wet = channel.reverberate(impulse, rir, direct)
    assert wet.numel() == impulse.numel() and first_arrival(wet) == pytest.approx(3000, abs=2)
    assert int(wet[2997:3004].abs().argmax()) == 3  # the direct path's peak is at the impulse
    assert float(wet[3100:].pow(2).sum()) > 0.01 * float(wet.pow(2).sum())  # and it did reverberate


def test_rooms_need_their_extra_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyroomacoustics", None)  # as if not installed
    wav = speech_like(0.2)
    out, _ = Augment(**ONLY)(wav, SR, torch.Generator().manual_seed(0))  # rooms off: fine
    assert out.shape == wav.shape
    with pytest.raises(VoxkitError, match="simulated rooms need pyroomacoustics: pip install pyroomacoustics"):
        Augment(**{**ONLY, "p_room": 1.0}, room_bank=0)(wav, SR, torch.Generator().manual_seed(0))


def test_coloured_noise_is_at_the_requested_snr_and_tilts_towards_low_frequencies() -> None:
    wav = speech_like(1.0)
    lows = {}
    for colour in ("white", "pink", "brown"):
        noisy = channel.add_noise(wav, 10.0, torch.Generator().manual_seed(0), colour=colour)
        noise = noisy - wav
        snr = 10 * math.log10(float(wav.pow(2).mean()) / float(noise.pow(2).mean()))
        assert snr == pytest.approx(10.0, abs=0.01)
        lows[colour] = band_energy(noise, 0, 500) / band_energy(noise, 0, SR / 2)
    assert lows["white"] < 0.1 < lows["pink"] < lows["brown"]


def test_the_telephone_band_removes_energy_above_4_khz_and_below_300_hz() -> None:
    white = 0.1 * torch.randn(SR, generator=torch.Generator().manual_seed(0))
    for companding in (False, True):
        phone = channel.telephone(white, SR, companding=companding)
        assert phone.numel() == white.numel() and torch.isfinite(phone).all()
        kept = band_energy(phone, 500, 3300) / band_energy(white, 500, 3300)
        assert kept > 0.5
        assert band_energy(phone, 4100, SR / 2) < 1e-3 * band_energy(white, 4100, SR / 2)
        assert band_energy(phone, 0, 250) < (0.05 if companding else 1e-3) * band_energy(white, 0, 250)


@pytest.mark.parametrize("kind", channel.CODECS)
def test_lossy_codecs_keep_the_length_and_lose_a_little(kind: str) -> None:
    wav = speech_like(0.5)
    out = channel.lossy_codec(wav, SR, kind, bits=6, cutoff_hz=4000.0)
    err = float((out - wav).pow(2).mean() / wav.pow(2).mean())
    assert out.numel() == wav.numel() and torch.isfinite(out).all() and 1e-6 < err < 0.5
    if kind == "spectral":
        assert band_energy(out, 4500, SR / 2) < 1e-2 * band_energy(wav, 4500, SR / 2)  # STFT leakage past the cutoff


def test_options_are_validated() -> None:
    for bad in (dict(p_room=1.5), dict(snr_db=(30.0, 10.0)), dict(noise_colours=("purple",)), dict(codecs=()),
                dict(speeds=(0.0,)), dict(freq_masks=-1)):
        with pytest.raises(ValueError):
            Augment(**bad)  # type: ignore[arg-type]
    assert Augment(snr_db=[0, 20]).snr_db == (0.0, 20.0)  # type: ignore[arg-type]  # a recipe's list


def test_spec_masks_cover_the_expected_bins_and_frames() -> None:
    cfg = Augment(p_specaugment=1.0, freq_masks=2, freq_mask_bins=10, time_masks_per_second=0.5, time_mask_frames=30)
    frames, offsets = [1000, 300], [16, 16]  # 10 s and 3 s of speech after 16 silent frames
    freq, time = draw_spec_masks(cfg, frames, offsets, 64, random.Random(1))
    again = draw_spec_masks(cfg, frames, offsets, 64, random.Random(1))
    assert torch.equal(freq, again[0]) and torch.equal(time, again[1])
    assert freq.shape == (2, 2, 2) and time.shape == (2, 5, 2)  # 0.5 per second of the longest item
    assert (time[1, 1:, 1] == 0).all()  # 3 s: one mask, the other rows mask nothing
    for b in range(2):
        assert ((freq[b, :, 1] <= 10) & (freq[b, :, 0] + freq[b, :, 1] <= 64)).all()
        used = time[b][time[b, :, 1] > 0]
        assert ((used[:, 1] <= 30) & (used[:, 0] >= offsets[b]) & (used[:, 0] + used[:, 1] <= offsets[b] + frames[b])).all()
    # applying: exactly the masked bins and frames take the item's mean
    mel = torch.randn(2, 64, 1100)
    freq = torch.tensor([[[3, 4], [40, 2]], [[0, 0], [0, 0]]])
    time = torch.tensor([[[100, 10], [0, 0]], [[500, 7], [600, 5]]])
    out = apply_spec_masks(mel, freq, time)
    changed = out != mel
    assert int(changed[0].all(dim=1).sum()) == 6 and int(changed[0].all(dim=0).sum()) == 10  # 6 whole bins, 10 whole frames
    assert int(changed[0].sum()) == 6 * 1100 + 10 * (64 - 6)
    assert int(changed[1].all(dim=0).sum()) == 12 and int(changed[1].sum()) == 12 * 64 and not changed[1, :, 490:500].any()
    assert torch.allclose(out[1, 7, 500], mel[1].mean())
    none = draw_spec_masks(Augment(p_specaugment=0.0), frames, offsets, 64, random.Random(1))
    assert not apply_spec_masks(mel, *none).ne(mel).any()


def test_a_room_rings_for_about_its_reverberation_time() -> None:
    """The image sources give the early reflections; the noise tail must carry the decay to -60 dB at rt60."""
    for seed in (0, 1):
        rir, _ = channel.room_impulse_response(torch.Generator().manual_seed(seed), SR, rt60=(0.6, 0.6))
        decay = rir.pow(2).flip(0).cumsum(0).flip(0)  # Schroeder's backward integral [L]
        decay_db = 10 * torch.log10(decay / decay[0])
        t5, t25 = (int((decay_db < level).nonzero()[0]) for level in (-5, -25))
        assert rir.numel() == int(0.6 * SR) and 0.4 < 3 * (t25 - t5) / SR < 0.8  # RT60 from the -5..-25 dB slope
