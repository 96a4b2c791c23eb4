"""Training losses of the codec (DESIGN §5): reconstruction, adversarial, feature matching, distillation.

The codec's generator loss is a weighted sum of

* reconstruction: :func:`l1_waveform_loss` + :class:`MultiResolutionSTFTLoss`, scaled by
  :func:`reconstruction_weight`, which decays over training: early on they give the only useful
  gradient (a random discriminator's opinion is noise); later they would keep pulling towards the
  blurry average that the adversarial terms are there to escape;
* adversarial: :func:`generator_adversarial_loss` on the logits of
  :class:`~voxkit.codec.discriminator.MultiResolutionSTFTDiscriminator`, plus
  :func:`feature_matching_loss` on its intermediate activations;
* semantic distillation: :func:`semantic_distillation_loss` between the projected semantic codes and
  a frozen speech encoder's hidden states (the asr/ causal encoder in voxkit);

and the discriminator is trained on :func:`discriminator_loss`. VQ commitment comes from the
quantizer itself. All losses are means over their elements, so their sizes do not depend on the
batch size or the clip length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_STFT_RESOLUTIONS",
    "MultiResolutionSTFTLoss",
    "STFTLossOutput",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "l1_waveform_loss",
    "reconstruction_weight",
    "semantic_distillation_loss",
]

DEFAULT_STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = (
    (2048, 512, 2048),
    (1024, 256, 1024),
    (512, 128, 512),
    (256, 64, 256),
    (128, 32, 128),
)
"""(n_fft, hop, window) per resolution: at 24 kHz windows of 85, 43, 21, 11 and 5 ms, hop a quarter
window. Large windows pin down harmonics (pitch, timbre), small ones pin down onsets; one alone lets
the decoder trade one kind of error for the other."""

_MAG_FLOOR = 1e-5  # magnitudes below this (-100 dB) count as silence in the log


def _check_same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def _as_batch(waveform: torch.Tensor) -> torch.Tensor:
    """[B, T] or [B, 1, T] -> [B, T] (the codec decoder's output keeps its channel axis)."""
    if waveform.dim() == 3 and waveform.shape[1] == 1:
        return waveform[:, 0]
    if waveform.dim() != 2:
        raise ValueError(f"expected a waveform [B, T], got shape {tuple(waveform.shape)}")
    return waveform


class STFTLossOutput(NamedTuple):
    """The multi-resolution STFT loss and its two parts, each averaged over the resolutions.

    ``total = spectral_convergence + log_magnitude``; the parts are for logging (``._asdict()``).
    """

    total: torch.Tensor
    spectral_convergence: torch.Tensor
    log_magnitude: torch.Tensor


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 over several STFT resolutions (Parallel WaveGAN).

    The two parts weigh errors differently: spectral convergence ``||S - S^||_F / ||S||_F`` is
    dominated by the loud bins (formants, harmonics), log-magnitude L1 treats every bin alike and so
    also cares about quiet high-frequency detail and silence. Spectral convergence is taken per
    clip, then averaged, so a loud clip does not drown a quiet one in the batch. Magnitudes are
    floored at 1e-5 (about -100 dB) before the log, which also keeps the gradient finite at zero.
    Computed in float32 whatever the autocast dtype.
    """

    def __init__(self, resolutions: Sequence[tuple[int, int, int]] = DEFAULT_STFT_RESOLUTIONS, *, eps: float = 1e-7) -> None:
        super().__init__()
        if not resolutions:
            raise ValueError("resolutions must name at least one (n_fft, hop, window)")
        for n_fft, hop, win in resolutions:
            if hop < 1 or win < 1 or win > n_fft:
                raise ValueError(f"bad STFT resolution (n_fft={n_fft}, hop={hop}, window={win}): need 1 <= window <= n_fft, hop >= 1")
        self.resolutions = tuple((int(n), int(h), int(w)) for n, h, w in resolutions)
        self.eps = eps
        # One Hann window per resolution, not persistent: a function of the sizes, never saved.
        for i, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window_{i}", torch.hann_window(win), persistent=False)

    def _magnitude(self, waveform: torch.Tensor, index: int) -> torch.Tensor:
        """waveform [B, T] float32 -> |STFT| [B, bins, frames] at resolution ``index``."""
        n_fft, hop, win = self.resolutions[index]
        window: torch.Tensor = getattr(self, f"window_{index}")
        spec = torch.stft(
            waveform, n_fft, hop_length=hop, win_length=win, window=window.float(), center=True, pad_mode="constant", return_complex=True
        )  # [B, bins, frames]
        power = spec.real.square() + spec.imag.square()  # [B, bins, frames]
        return power.clamp(min=_MAG_FLOOR**2).sqrt()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> STFTLossOutput:
        """pred, target: waveforms [B, T] (or [B, 1, T]) -> scalar losses (mean over resolutions)."""
        _check_same_shape(pred, target)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred = _as_batch(pred).float()  # [B, T]
            target = _as_batch(target).float()  # [B, T]
            sc_total = pred.new_zeros(())
            log_total = pred.new_zeros(())
            for i in range(len(self.resolutions)):
                mag_p = self._magnitude(pred, i)  # [B, bins, frames]
                mag_t = self._magnitude(target, i)  # [B, bins, frames]
                diff = torch.linalg.vector_norm(mag_t - mag_p, dim=(1, 2))  # [B]
                ref = torch.linalg.vector_norm(mag_t, dim=(1, 2)).clamp(min=self.eps)  # [B]
                sc_total = sc_total + (diff / ref).mean()
                log_total = log_total + F.l1_loss(mag_p.log(), mag_t.log())
            n = len(self.resolutions)
            sc, log_mag = sc_total / n, log_total / n
        return STFTLossOutput(total=sc + log_mag, spectral_convergence=sc, log_magnitude=log_mag)


def l1_waveform_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute sample error: keeps the waveform's phase and level anchored, which the
    magnitude-only STFT loss cannot. pred, target: same shape (e.g. [B, T]) -> scalar."""
    _check_same_shape(pred, target)
    return F.l1_loss(pred, target)


def reconstruction_weight(step: int, total_steps: int, start: float = 1.0, end: float = 0.1) -> float:
    """Weight of the reconstruction terms at ``step``: a half cosine from ``start`` (step 0) to ``end``
    (step ``total_steps`` and after).

    Cosine rather than linear because it is flat at both ends: reconstruction keeps full weight while
    the discriminator is still a random function, and the weight settles instead of still dropping
    when training ends. Monotone (non-increasing when ``start >= end``); steps outside
    ``[0, total_steps]`` are clamped, so resuming past the planned end is safe.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    progress = min(max(step / total_steps, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


# Hinge losses, as in EnCodec (whose MS-STFT discriminator DESIGN §5 follows), rather than least
# squares: the margin makes both players stop pushing on examples already judged correctly with
# margin 1, so logits stay bounded and the discriminator spends its capacity on the examples it
# still gets wrong; least squares keeps pulling every logit to exactly 0 or 1.


def discriminator_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge loss of the discriminator: mean over resolutions of
    ``mean(relu(1 - D(x))) + mean(relu(1 + D(x^)))``. Pass the fake logits of a detached
    reconstruction, so this step does not reach the codec."""
    if len(real_logits) != len(fake_logits) or not real_logits:
        raise ValueError(f"need one real and one fake logit tensor per resolution, got {len(real_logits)} and {len(fake_logits)}")
    total = real_logits[0].new_zeros((), dtype=torch.float32)
    for real, fake in zip(real_logits, fake_logits, strict=True):
        total = total + F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()
    return total / len(real_logits)


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge loss of the generator (EnCodec's form): mean over resolutions of ``mean(relu(1 - D(x^)))``.
    Zero once the discriminator scores a reconstruction as real with margin, so the generator is not
    pushed to exaggerate whatever the discriminator likes."""
    if not fake_logits:
        raise ValueError("need at least one resolution's logits")
    total = fake_logits[0].new_zeros((), dtype=torch.float32)
    for fake in fake_logits:
        total = total + F.relu(1.0 - fake.float()).mean()
    return total / len(fake_logits)


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]], fake_features: Sequence[Sequence[torch.Tensor]], *, eps: float = 1e-8
) -> torch.Tensor:
    """L1 distance between the discriminator's activations on real and reconstructed audio (EnCodec):
    ``mean over resolutions k and layers l of mean|D_k^l(x) - D_k^l(x^)| / mean|D_k^l(x)|``.

    Normalising each layer by the real activation's mean magnitude gives every layer and resolution
    an equal say, whatever its scale (the first layers' activations are much larger than the last).
    The real activations are detached: this loss trains the codec, never the discriminator.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"need the features of the same resolutions, got {len(real_features)} and {len(fake_features)}")
    terms: list[torch.Tensor] = []
    for real_layers, fake_layers in zip(real_features, fake_features, strict=True):
        if len(real_layers) != len(fake_layers):
            raise ValueError(f"real and fake features have {len(real_layers)} and {len(fake_layers)} layers")
        for real, fake in zip(real_layers, fake_layers, strict=True):
            real = real.detach().float()
            scale = real.abs().mean().clamp(min=eps)
            terms.append(F.l1_loss(fake.float(), real) / scale)
    if not terms:
        raise ValueError("the feature lists hold no layers")
    return torch.stack(terms).mean()


def semantic_distillation_loss(projected: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - cos(projected, teacher)`` per frame, averaged over the valid frames.

    Cosine, not L2: the teacher's hidden states have a scale of their own (layer norms, outliers)
    that the codec has no reason to copy; only the direction carries what is said. The teacher is
    frozen, so it is detached. Range [0, 2]: 0 for parallel vectors, 2 for opposite ones.

    projected, teacher: [B, T, D] at the same frame rate (align them before calling).
    mask: [B, T], true (or 1) on valid frames; None means all. No valid frame gives 0.
    """
    if projected.shape != teacher.shape or projected.dim() != 3:
        raise ValueError(f"projected {tuple(projected.shape)} and teacher {tuple(teacher.shape)} must both be [B, T, D]")
    cos = F.cosine_similarity(projected.float(), teacher.detach().float(), dim=-1, eps=1e-8)  # [B, T]
    loss = 1.0 - cos  # [B, T]
    if mask is None:
        return loss.mean()
    if mask.shape != loss.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must be [B, T] = {tuple(loss.shape)}")
    weight = mask.to(loss.dtype)  # [B, T]
    return (loss * weight).sum() / weight.sum().clamp(min=1.0)
