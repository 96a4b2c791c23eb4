"""RMSNorm and the Ada-RMSNorm delay conditioning of Voxtral Realtime."""

from __future__ import annotations

import math

import torch
from torch import nn

from voxkit.ops import rms_norm


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def delay_embedding(num_delay_tokens: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(n w), sin(n w)]`` of the delay, w_i = exp(-ln(1e4) i / (dim/2)).

    num_delay_tokens: [B] (float or int) -> [B, dim] float32. Computed once per sequence: the delay
    is a property of the stream, not of a position.
    """
    half = dim // 2
    omega = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=num_delay_tokens.device) / half)
    angles = num_delay_tokens.float()[:, None] * omega  # [B, dim/2]
    return torch.cat((angles.cos(), angles.sin()), dim=-1)  # [B, dim]


class AdaRMSNormGain(nn.Sequential):
    """Per-layer gain MLP ``g = W2 GELU(W1 t_cond)`` (dim -> cond_dim -> dim, no biases).

    The FFN norm output is scaled by ``1 + g``. Any transformer stack can switch it on from its
    args (``ada_rms_norm_t_cond``); the published Voxtral Realtime model uses it in the decoder
    only. A block stores it as ``ada_rms_norm_t_cond`` so the keys are the native
    ``layers.{i}.ada_rms_norm_t_cond.{0,2}.weight``.
    """

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__(nn.Linear(dim, cond_dim, bias=False), nn.GELU(), nn.Linear(cond_dim, dim, bias=False))

    def scale(self, t_cond: torch.Tensor) -> torch.Tensor:
        """t_cond: [B, dim] -> ``1 + g`` as [B, 1, dim]."""
        return 1 + self(t_cond)[:, None, :]
