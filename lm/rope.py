"""Rotary position embeddings in the mistral-native INTERLEAVED layout.

Pairs are (2i, 2i+1) within each head. transformers' checkpoints rotate halves instead
(i, i + hd/2); the converter in :mod:`voxkit.lm.convert` permutes wq/wk rows so both layouts give
the same function. Angles are computed from tensor positions on the fly (no table), so streams
can run for arbitrarily long without a precomputed maximum length.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from voxkit.lm.args import TransformerArgs, YarnArgs
from voxkit.ops import rope


def yarn_inv_freq(head_dim: int, theta: float, yarn: YarnArgs) -> tuple[torch.Tensor, float]:
    """YaRN: blend interpolated and extrapolated frequencies by a linear ramp over dimensions.

    Returns the inverse frequencies [head_dim/2] and the factor applied to cos/sin.
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim  # [hd/2]
    pos_freqs = theta**exponents
    extrapolated = 1.0 / pos_freqs
    interpolated = 1.0 / (yarn.factor * pos_freqs)

    def correction_dim(rotations: float) -> float:
        return head_dim * math.log(yarn.original_max_position_embeddings / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(yarn.beta)), 0)
    high = min(math.ceil(correction_dim(yarn.alpha)), head_dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)  # [hd/2]
    keep_extrapolated = 1.0 - ramp
    inv_freq = interpolated * (1 - keep_extrapolated) + extrapolated * keep_extrapolated

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if not yarn.apply_scale:
        factor = 1.0
    elif yarn.mscale and yarn.mscale_all_dim:
        factor = mscale(yarn.factor, yarn.mscale) / mscale(yarn.factor, yarn.mscale_all_dim)
    else:
        factor = mscale(yarn.factor)
    return inv_freq, factor


class RotaryEmbedding(nn.Module):
    """Computes cos/sin for given positions and applies the interleaved rotation."""

    inv_freq: torch.Tensor

    def __init__(self, args: TransformerArgs) -> None:
        super().__init__()
        self.args = args
        inv_freq, self.cos_sin_scale = self._frequencies(None)
        # Not part of checkpoints: recomputed from args (see init_buffers for meta-device loads).
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def _frequencies(self, device: torch.device | None) -> tuple[torch.Tensor, float]:
        hd, theta = self.args.head_dim, self.args.theta
        if self.args.yarn is not None:
            inv_freq, scale = yarn_inv_freq(hd, theta, self.args.yarn)
        else:
            inv_freq, scale = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)), 1.0  # [hd/2]
        return (inv_freq if device is None else inv_freq.to(device)), scale

    def init_buffers(self, device: torch.device) -> None:
        """Recompute the non-persistent buffer after a model was built on the meta device."""
        with torch.device("cpu"):
            inv_freq = self._frequencies(None)[0]
        self.inv_freq = inv_freq.to(device)

    def rotation(self, positions: torch.Tensor) -> Rotation:
        """positions [T] or [B, T] -> (cos, sin) of every angle times the YaRN factor, each [1|B, 1, T, hd/2].

        Real tables rather than complex numbers: a compiled step (torch.compile) and the kernels
        take them as they are.
        """
        angles = positions.float()[..., None] * self.inv_freq  # [(B,) T, hd/2]
        cos, sin = angles.cos() * self.cos_sin_scale, angles.sin() * self.cos_sin_scale  # [(B,) T, hd/2]
        if positions.dim() == 1:
            return cos[None, None], sin[None, None]
        return cos[:, None], sin[:, None]


Rotation = tuple[torch.Tensor, torch.Tensor]  # (cos, sin), each [1|B, 1, T, hd/2]


def apply_rotary(x: torch.Tensor, rotation: Rotation | torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x [B, H, T, hd]: (x0 + i x1) e^(i angle), through the ``rope`` op.

    rotation: (cos, sin) from :meth:`RotaryEmbedding.rotation`, or one complex tensor.
    """
    if isinstance(rotation, torch.Tensor):
        rotation = (rotation.real, rotation.imag)
    return rope(x, *rotation)


def llama4_query_scale(positions: torch.Tensor, beta: float, original_max: int) -> torch.Tensor:
    """Ministral-3 query scale ``1 + beta * log(1 + floor(pos / original_max))``, [*, 1, T, 1]."""
    scale = 1 + beta * torch.log1p(torch.floor(positions.float() / original_max))  # [(B,) T]
    if positions.dim() == 1:
        return scale[None, None, :, None]
    return scale[:, None, :, None]
