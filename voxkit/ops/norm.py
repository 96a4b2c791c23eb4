"""RMSNorm reference (fp32 statistics, result cast back to the input dtype, then scaled)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxkit.ops.dispatch import announce


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * (x / rms(x))`` with the statistics in fp32, as Mistral and transformers do."""
    announce("rms_norm", "torch")
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        # Nothing to round between the two products: let the fused op apply the weight too (one
        # dispatch instead of three per norm, which counts in a one-token streaming step).
        return F.rms_norm(x, (x.shape[-1],), weight, eps=eps)
    normed = F.rms_norm(x.float(), (x.shape[-1],), eps=eps)  # [..., D] one fused op instead of five
    return weight * normed.type_as(x)
