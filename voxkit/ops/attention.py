"""The single attention entry point of voxkit.

All transformer stacks call :func:`attention`; faster backends (flash-attn, FlexAttention) plug in
here without touching the models. Today it is PyTorch SDPA with an explicit boolean mask (or the
built-in causal mask when no window cuts the sequence).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxkit.ops.dispatch import announce


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """Grouped-query attention.

    q: [B, H, T, hd]; k, v: [B, Hkv, S, hd] with H a multiple of Hkv; mask: bool, broadcastable to
    [B, H, T, S], True where attending is allowed. Returns [B, H, T, hd].
    """
    announce("attention", "sdpa")
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal and mask is None, enable_gqa=q.shape[1] != k.shape[1]
    )
