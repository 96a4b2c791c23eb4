"""The codec's training losses and its multi-resolution STFT discriminator (DESIGN §5)."""

from __future__ import annotations

import math

import pytest
import torch

from voxkit.audio.constants import CODEC_SAMPLE_RATE
from voxkit.codec.discriminator import DEFAULT_FFT_SIZES, MultiResolutionSTFTDiscriminator
from voxkit.codec.losses import (
    MultiResolutionSTFTLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    l1_waveform_loss,
    reconstruction_weight,
    semantic_distillation_loss,
)


def tones(batch: int, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[batch, samples] sums of two sines (100-400 Hz fundamentals and an octave), peak about 0.5."""
    t = torch.arange(samples) / CODEC_SAMPLE_RATE  # [T]
    f0 = 100.0 + 300.0 * torch.rand(batch, 1, generator=generator)  # [B, 1]
    phase = 2 * math.pi * torch.rand(batch, 1, generator=generator)  # [B, 1]
    return 0.35 * torch.sin(2 * math.pi * f0 * t + phase) + 0.15 * torch.sin(4 * math.pi * f0 * t)  # [B, T]


# ------------------------------------------------------------------- reconstruction losses


def test_mr_stft_loss_zero_for_identical_and_grows_with_noise() -> None:
    loss = MultiResolutionSTFTLoss()
    clean = tones(2, CODEC_SAMPLE_RATE // 2)
    same = loss(clean, clean.clone())
    assert same.total.item() == pytest.approx(0.0, abs=1e-6)
    values = []
    for level in (0.01, 0.05, 0.2):
        out = loss(clean + level * torch.randn_like(clean), clean)
        assert out.total.item() == pytest.approx(out.spectral_convergence.item() + out.log_magnitude.item(), rel=1e-5)
        assert out.spectral_convergence.item() > 0 and out.log_magnitude.item() > 0
        values.append(out.total.item())
    assert values[0] < values[1] < values[2], values
    assert set(out._asdict()) == {"total", "spectral_convergence", "log_magnitude"}


def test_mr_stft_loss_gradient_reaches_prediction() -> None:
    loss = MultiResolutionSTFTLoss(((256, 64, 256), (64, 16, 48)))
    target = tones(2, 4000)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    loss(pred.unsqueeze(1), target.unsqueeze(1)).total.backward()  # [B, 1, T] is accepted too
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # Silent prediction: the magnitude floor keeps the gradient finite where |STFT| = 0.
    silent = torch.zeros_like(target, requires_grad=True)
    loss(silent, target).total.backward()
    assert silent.grad is not None and torch.isfinite(silent.grad).all()


def test_mr_stft_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        MultiResolutionSTFTLoss(((256, 64, 512),))  # window longer than the FFT
    with pytest.raises(ValueError):
        MultiResolutionSTFTLoss()(torch.zeros(1, 100), torch.zeros(1, 101))


def test_l1_waveform_loss() -> None:
    pred = torch.tensor([[0.0, 1.0, -1.0, 0.5]])
    target = torch.tensor([[0.0, 0.0, 1.0, 0.5]])
    assert l1_waveform_loss(pred, target).item() == pytest.approx(3.0 / 4)
    with pytest.raises(ValueError):
        l1_waveform_loss(pred, target[:, :3])


def test_reconstruction_weight_schedule() -> None:
    total = 1000
    assert reconstruction_weight(0, total) == pytest.approx(1.0)
    assert reconstruction_weight(total, total) == pytest.approx(0.1)
    assert reconstruction_weight(total // 2, total) == pytest.approx(0.55)
    assert reconstruction_weight(5 * total, total) == pytest.approx(0.1)  # clamped past the end
    assert reconstruction_weight(0, total, start=2.0, end=0.5) == pytest.approx(2.0)
    assert reconstruction_weight(total, total, start=2.0, end=0.5) == pytest.approx(0.5)
    weights = [reconstruction_weight(s, total) for s in range(0, total + 1, 10)]
    assert all(a >= b for a, b in zip(weights, weights[1:], strict=False))
    with pytest.raises(ValueError):
        reconstruction_weight(0, 0)


# ----------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize("samples", [CODEC_SAMPLE_RATE, CODEC_SAMPLE_RATE + 37])
def test_discriminator_shapes(samples: int) -> None:
    disc = MultiResolutionSTFTDiscriminator(channels=8)
    assert disc.fft_sizes == DEFAULT_FFT_SIZES and len(disc.fft_sizes) == 8
    wave = torch.randn(2, samples) * 0.1
    logits, features = disc(wave)
    assert len(logits) == len(features) == 8
    for n_fft, out, feats in zip(DEFAULT_FFT_SIZES, logits, features, strict=True):
        frames = samples // (n_fft // 4) + 1
        bins = n_fft // 2 + 1
        assert out.shape[:3] == (2, 1, frames), (n_fft, out.shape)
        assert 1 <= out.shape[3] < bins  # strided along frequency
        assert torch.isfinite(out).all()
        assert len(feats) == 5  # input conv, three dilated convs, last 3x3 conv
        assert feats[0].shape == (2, 8, frames, bins)
        assert all(f.shape[:3] == (2, 8, frames) for f in feats)
    # The channel axis of a decoder's output is accepted and gives the same logits.
    again, _ = disc(wave.unsqueeze(1))
    assert all(torch.equal(a, b) for a, b in zip(logits, again, strict=True))


def test_discriminator_weight_norm_gradient_and_state_dict() -> None:
    disc = MultiResolutionSTFTDiscriminator((256, 64), channels=8)
    keys = list(disc.state_dict())
    assert any("parametrizations.weight.original0" in k for k in keys)  # weight norm's magnitude
    assert not any("window" in k for k in keys)  # STFT windows are derived, never saved
    wave = torch.randn(1, 3000, requires_grad=True)
    logits, _ = disc(wave)
    sum(out.mean() for out in logits).backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0
    short, _ = disc(torch.randn(1, 100))  # shorter than the largest FFT
    assert all(torch.isfinite(out).all() for out in short)
    with pytest.raises(ValueError):
        disc(torch.randn(2, 3, 100))


# ----------------------------------------------------------------------- adversarial losses


def test_hinge_losses_hand_computed() -> None:
    real = [torch.tensor([[2.0, 0.5, -1.0]]), torch.tensor([[1.0]])]
    fake = [torch.tensor([[-2.0, 0.0, 1.0]]), torch.tensor([[-1.0]])]
    # relu(1 - real): [0, .5, 2] and [0]; relu(1 + fake): [0, 1, 2] and [0].
    assert discriminator_loss(real, fake).item() == pytest.approx(((2.5 / 3 + 1.0) + 0.0) / 2)
    # relu(1 - fake): [3, 1, 0] and [2].
    assert generator_adversarial_loss(fake).item() == pytest.approx((4.0 / 3 + 2.0) / 2)
    # Correct with margin on both sides: nothing left to learn.
    assert discriminator_loss([torch.full((2, 3), 1.5)], [torch.full((2, 3), -1.5)]).item() == 0.0
    assert generator_adversarial_loss([torch.full((2, 3), 1.5)]).item() == 0.0
    with pytest.raises(ValueError):
        discriminator_loss(real, fake[:1])


def test_feature_matching_hand_computed() -> None:
    real = [[torch.tensor([2.0, -2.0]), torch.tensor([1.0, 1.0])], [torch.tensor([[4.0]])]]
    fake = [[torch.tensor([1.0, -2.0]), torch.tensor([1.0, 1.0])], [torch.tensor([[2.0]])]]
    # Layer terms: mean|diff| / mean|real| = 0.5 / 2, 0 / 1, 2 / 4; averaged over the three layers.
    assert feature_matching_loss(real, fake).item() == pytest.approx((0.25 + 0.0 + 0.5) / 3)
    assert feature_matching_loss(real, real).item() == 0.0


def test_feature_matching_trains_the_generator_only() -> None:
    disc = MultiResolutionSTFTDiscriminator((128, 64), channels=8)
    real_wave = tones(2, 2000)
    fake_wave = (real_wave + 0.1 * torch.randn_like(real_wave)).requires_grad_(True)
    _, real_feats = disc(real_wave)
    _, fake_feats = disc(fake_wave)
    loss = feature_matching_loss(real_feats, fake_feats)
    assert loss.item() > 0
    real_feats[0][0].retain_grad()
    loss.backward()
    assert fake_wave.grad is not None and fake_wave.grad.abs().sum() > 0
    assert real_feats[0][0].grad is None  # the real side is detached
    assert feature_matching_loss(real_feats, real_feats).item() == 0.0


def test_discriminator_learns_tones_from_noise() -> None:
    """A few Adam steps separate real (tones) from fake (noise of the same power)."""
    disc = MultiResolutionSTFTDiscriminator(channels=8)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    samples = 4000
    gen = torch.Generator().manual_seed(1)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        real = tones(4, samples, gen)  # [4, T]
        fake = torch.randn(4, samples, generator=gen) * real.std()  # [4, T]
        return real, fake

    eval_real, eval_fake = batch()

    def eval_loss() -> float:
        with torch.no_grad():
            return discriminator_loss(disc(eval_real)[0], disc(eval_fake)[0]).item()

    before = eval_loss()
    for _ in range(20):
        real, fake = batch()
        loss = discriminator_loss(disc(real)[0], disc(fake)[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.5 * before, (before, after)


# ---------------------------------------------------------------------- semantic distillation


def test_semantic_distillation_loss() -> None:
    teacher = torch.randn(2, 5, 16)
    assert semantic_distillation_loss(3.0 * teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert semantic_distillation_loss(-0.5 * teacher, teacher).item() == pytest.approx(2.0, abs=1e-6)
    # Orthogonal vectors: cosine 0, loss 1.
    a = torch.tensor([[[1.0, 0.0]]])
    b = torch.tensor([[[0.0, 2.0]]])
    assert semantic_distillation_loss(a, b).item() == pytest.approx(1.0)


def test_semantic_distillation_mask() -> None:
    teacher = torch.randn(2, 4, 8)
    projected = teacher.clone()
    projected[0, 3] = -teacher[0, 3]  # opposite on a padded frame ...
    projected[1, 2] = -teacher[1, 2]  # ... and on one valid frame
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    # Valid frames: 3 + 4 = 7, one of them opposite (loss 2).
    assert semantic_distillation_loss(projected, teacher, mask).item() == pytest.approx(2.0 / 7, abs=1e-6)
    assert semantic_distillation_loss(projected, teacher, mask.float()).item() == pytest.approx(2.0 / 7, abs=1e-6)
    assert semantic_distillation_loss(projected, teacher).item() == pytest.approx(4.0 / 8, abs=1e-6)
    assert semantic_distillation_loss(projected, teacher, torch.zeros(2, 4, dtype=torch.bool)).item() == 0.0
    # The teacher is frozen: the gradient reaches the projection only.
    proj = projected.clone().requires_grad_(True)
    teach = teacher.clone().requires_grad_(True)
    semantic_distillation_loss(proj, teach, mask).backward()
    assert proj.grad is not None and teach.grad is None
    assert proj.grad[0, 3].abs().sum() == 0  # masked frame gets no gradient
    with pytest.raises(ValueError):
        semantic_distillation_loss(projected, teacher, mask[:, :3])
