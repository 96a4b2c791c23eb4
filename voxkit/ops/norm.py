"""RMSNorm and its two fused neighbours: Ada-RMSNorm (a per-sequence gain) and residual-add + RMSNorm.

The statistics are computed in fp32 and the result cast back to the input dtype before the weight,
as Mistral and transformers do, so that a bfloat16 model matches the published references.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxkit.ops import registry


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x [..., D], weight [D] -> ``weight * (x / rms(x))`` [..., D]."""
    wide = torch.promote_types(x.dtype, torch.float32)  # fp32 statistics, fp64 kept (gradcheck)
    if x.dtype == wide and weight.dtype == wide:
        # Nothing to round between the two products: let the fused op apply the weight too (one
        # dispatch instead of three per norm, which counts in a one-token streaming step).
        return F.rms_norm(x, (x.shape[-1],), weight, eps=eps)
    normed = F.rms_norm(x.to(wide), (x.shape[-1],), eps=eps)  # [..., D] one fused op instead of five
    return weight * normed.type_as(x)


def ada_rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    """x [B, T, D], weight [D], gain [B, 1, D] -> ``rms_norm(x) * gain`` [B, T, D]."""
    return rms_norm_reference(x, weight, eps) * gain


def add_rms_norm_reference(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """x, residual [..., D] -> (``x + residual``, ``rms_norm(x + residual)``), both [..., D]."""
    total = x + residual  # [..., D]
    return total, rms_norm_reference(total, weight, eps)


RMS_NORM = registry.define("rms_norm", rms_norm_reference)
ADA_RMS_NORM = registry.define("ada_rms_norm", ada_rms_norm_reference)
ADD_RMS_NORM = registry.define("add_rms_norm", add_rms_norm_reference)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * (x / rms(x))`` over the last dim, statistics in fp32. x [..., D] -> [..., D]."""
    return RMS_NORM(x, weight, eps)


def ada_rms_norm(x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    """Ada-RMSNorm: :func:`rms_norm` times a per-sequence gain (Voxtral Realtime's delay
    conditioning passes ``1 + g``). x [B, T, D], gain [B, 1, D] -> [B, T, D]."""
    return ADA_RMS_NORM(x, weight, gain, eps)


def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual add and the next norm in one op (one read of the stream on a GPU).

    Returns ``(x + residual, rms_norm(x + residual))``, both [..., D].
    """
    return ADD_RMS_NORM(x, residual, weight, eps)
