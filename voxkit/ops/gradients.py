"""Closed-form gradients of the fused ops, in plain torch ops: the formulas the CUDA backward
kernels (cuda/*.cu) compute.

Why a second statement of them: the kernels' self-check (:mod:`voxkit.ops.cuda_kernels`) compares
them with these, and it may run where autograd cannot (inside ``inference_mode``, inside a custom
op's body under ``torch.compile``); and the test suite checks these against autograd of the
references on the CPU, which is how a machine without a GPU knows the kernels implement the
right formulas. Computed in fp32 (fp64 kept), as the kernels do, without the references'
intermediate roundings of the gradients.
"""

from __future__ import annotations

import torch


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def rms_norm_grads(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, gain: torch.Tensor | None, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients of ``rms_norm(x) * weight (* gain)``: dy, x [B, T, D] (or [..., D] without gain);
    gain [B, 1, D] or None -> (dx like x, dweight [D], dgain [B, 1, D] or None), all fp32."""
    dtype = x.dtype
    dy, x, weight = _wide(dy), _wide(x), _wide(weight)
    rstd = torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)  # [..., 1]
    n = x * rstd  # [..., D]
    n_rounded = n.to(dtype).to(n.dtype)  # the normalised row as the forward multiplies it
    g = 1.0 if gain is None else _wide(gain)
    dn = dy * g * weight  # [..., D]
    dx = rstd * (dn - n * (dn * n).mean(-1, keepdim=True))  # [..., D]
    dweight = (dy * g * n_rounded).reshape(-1, x.shape[-1]).sum(0)  # [D]
    weighted = (weight * n_rounded).to(dtype).to(n.dtype)  # the weighted row the gain multiplies
    dgain = None if gain is None else (dy * weighted).sum(1, keepdim=True)  # [B, 1, D]
    return dx, dweight, dgain


def add_rms_norm_grads(
    dtotal: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``(x + residual, rms_norm(x + residual) * weight)``: (dx = dresidual, dweight)."""
    total = (x + residual).to(x.dtype)  # [..., D] the forward's sum, in the input dtype
    dx, dweight, _ = rms_norm_grads(dy, total, weight, None, eps)
    return dx + _wide(dtotal), dweight


def rope_rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Interleaved pairs of x [B, H, T, hd] turned by the angles of cos/sin [1|B, 1, T, hd/2];
    ``inverse`` turns them back, which is RoPE's input gradient. fp32 (fp64 kept)."""
    x = _wide(x)
    x0, x1 = x[..., 0::2], x[..., 1::2]  # [B, H, T, hd/2] each
    s = -sin if inverse else sin
    return torch.stack((x0 * cos - x1 * s, x0 * s + x1 * cos), dim=-1).flatten(-2)  # [B, H, T, hd]


def swiglu_grads(dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``silu(gate) * up``: (dgate, dup), fp32 (fp64 kept)."""
    dy, g, u = _wide(dy), _wide(gate), _wide(up)
    sig = torch.sigmoid(g)
    silu_rounded = (g * sig).to(gate.dtype).to(g.dtype)  # the forward's rounded silu, which up multiplies
    return dy * u * sig * (1 + g * (1 - sig)), dy * silu_rounded
