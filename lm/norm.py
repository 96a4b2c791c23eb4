"""The block's norms (RMSNorm, LayerNorm, QK-norm) and the Ada-RMSNorm delay conditioning of Voxtral Realtime."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.lm.args import TransformerArgs
from voxkit.ops import rms_norm


class RMSNorm(nn.Module):
    """``weight * x / rms(x)`` over the last dimension, statistics in fp32 (voxkit.ops.rms_norm)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class LayerNorm(nn.Module):
    """``weight * (x - mean) / std + bias`` over the last dimension (Whisper's encoder norm).

    Computed in fp32 (or wider, for fp64 input) and cast back to the input dtype, as Whisper does, so that a 16-bit
    model matches the published encoder: subtracting the mean in 16 bits loses the small
    differences a LayerNorm exists to amplify. Parameter names match nn.LayerNorm (weight, bias).
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., D] -> [..., D] in x's dtype."""
        wide = torch.promote_types(x.dtype, torch.float32)
        out = F.layer_norm(x.to(wide), (x.shape[-1],), self.weight.to(wide), self.bias.to(wide), self.eps)  # [..., D]
        return out.to(x.dtype)


def make_norm(args: TransformerArgs, dim: int) -> RMSNorm | LayerNorm:
    """The norm ``args.norm`` names, over ``dim`` channels with ``args.norm_eps``."""
    if args.norm == "layer":
        return LayerNorm(dim, args.norm_eps)
    return RMSNorm(dim, args.norm_eps)


class QKNorm(nn.Module):
    """RMSNorm of queries and keys, applied before RoPE (the codec).

    Why: bounding the norms of q and k bounds the attention logits, which keeps the softmax from
    saturating when a stack is trained with large learning rates. Per head (``all_heads`` False):
    one weight [head_dim] for all query heads (``q_norm``) and one for all key heads (``k_norm``),
    so GQA needs nothing special. Over all heads at once (the published codec): the weights are
    [n_heads * head_dim] and [n_kv_heads * head_dim], and the statistics span every head.
    """

    def __init__(self, head_dim: int, eps: float = 1e-5, *, n_heads: int = 1, n_kv_heads: int = 1, all_heads: bool = False) -> None:
        super().__init__()
        self.all_heads = all_heads
        self.q_norm = RMSNorm(head_dim * (n_heads if all_heads else 1), eps)
        self.k_norm = RMSNorm(head_dim * (n_kv_heads if all_heads else 1), eps)

    @staticmethod
    def _over_heads(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
        B, H, T, D = x.shape
        flat = x.transpose(1, 2).reshape(B, T, H * D)  # [B, T, H hd]
        return norm(flat).view(B, T, H, D).transpose(1, 2)  # [B, H, T, hd]

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q: [B, H, T, hd], k: [B, Hkv, S, hd] -> both normalised, same shapes and dtypes."""
        if self.all_heads:
            return self._over_heads(self.q_norm, q), self._over_heads(self.k_norm, k)
        return self.q_norm(q), self.k_norm(k)


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
