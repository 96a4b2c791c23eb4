"""Rotary position embeddings on interleaved pairs (the mistral-native layout).

Pairs are (2i, 2i+1) within each head. The rotation comes as two real tables, ``cos`` and ``sin``
(any scale, such as YaRN's, already multiplied in), rather than as complex numbers: real tensors
pass through ``torch.compile`` and a CUDA kernel's signature without a complex dtype. A caller
holding a complex rotation ``r`` passes ``r.real, r.imag``.
"""

from __future__ import annotations

import torch

from voxkit.ops import registry


def rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, hd]; cos, sin [1|B, 1, T, hd/2] -> x with each pair rotated, [B, H, T, hd].

    Computed in fp32 (fp64 for fp64 x) and cast back to x's dtype: ``(x0 cos - x1 sin, x0 sin + x1 cos)``.
    """
    wide = torch.promote_types(x.dtype, torch.float32)
    x0, x1 = x.to(wide).unflatten(-1, (-1, 2)).unbind(-1)  # [B, H, T, hd/2] each
    rotated = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)  # [B, H, T, hd/2, 2]
    return rotated.flatten(-2).type_as(x)


ROPE = registry.define("rope", rope_reference)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x [B, H, T, hd] by the angles whose cos/sin are [1|B, 1, T, hd/2]."""
    return ROPE(x, cos, sin)
