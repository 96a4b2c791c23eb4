"""RMSNorm reference (fp32 statistics, result cast back to the input dtype, then scaled)."""

from __future__ import annotations

import torch

from voxkit.ops.dispatch import announce


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * (x / rms(x))`` with the statistics in fp32, as Mistral and transformers do."""
    announce("rms_norm", "torch")
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)  # [..., D]
    return weight * normed.type_as(x)
