"""Grouped-query self-attention: RoPE or ALiBi or no positions, QK-norm, windows, the ring KV cache."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from voxkit.lm.args import TransformerArgs
from voxkit.lm.cache import KVState, StepPlan, new_kv_state, write_kv
from voxkit.lm.fusion import FusedProjection
from voxkit.lm.norm import QKNorm
from voxkit.lm.rope import Rotation, apply_rotary
from voxkit.ops import attention


@dataclasses.dataclass
class AttentionInputs:
    """Everything attention needs besides x, computed once per forward for all layers."""

    rotation: Rotation | None  # RoPE (cos, sin) [1 or B, 1, T, hd/2] each; None: other positions
    q_scale: torch.Tensor | None  # [1 or B, 1, T, 1] (Ministral-3) or None
    # window -> what attention gets as its mask: offline a [T, T] bool mask, or None for the
    # built-in causal / no mask; with ALiBi (offline and streaming) a float bias [1|B, H, T, S].
    # A streaming call without an entry takes the ring's bool mask (StepPlan.mask).
    masks: dict[int | None, torch.Tensor | None]
    plan: StepPlan | None  # streaming only
    # offline: windows whose layers pass ``window=`` to attention instead of a mask (their entry in
    # masks is None), so that a windowed backend sees the band (Transformer._forward_offline)
    op_windows: frozenset[int] = frozenset()


class Attention(nn.Module):
    def __init__(self, args: TransformerArgs, layer: int) -> None:
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.n_kv_heads
        self.head_dim = args.head_dim
        self.window = args.window_for_layer(layer)
        self.causal = args.causal
        bias = args.use_biases
        hd = args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * hd, bias=bias)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * hd, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * hd, bias=bias)
        self.wo = nn.Linear(args.n_heads * hd, args.dim, bias=bias)
        self.wqkv: FusedProjection | None = None  # inference only, see fuse_projections
        qk_eps = args.norm_eps if args.qk_norm_eps is None else args.qk_norm_eps
        all_heads = args.qk_norm_scope == "all"
        self.qk_norm = QKNorm(hd, qk_eps, n_heads=args.n_heads, n_kv_heads=args.n_kv_heads, all_heads=all_heads) if args.qk_norm else None

    def fuse_projections(self) -> None:
        """Compute q, k and v with one product and rotate q and k in one call (inference only)."""
        self.wqkv = FusedProjection([self.wq, self.wk, self.wv])

    def init_cache(self, batch_size: int, capacity: int, dtype: torch.dtype) -> KVState:
        """An empty ring of ``capacity`` keys and values per stream (owned by the caller's state)."""
        return new_kv_state(batch_size, self.n_kv_heads, capacity, self.head_dim, dtype, self.wk.weight.device)

    def forward(self, x: torch.Tensor, inputs: AttentionInputs, cache: KVState | None = None) -> torch.Tensor:
        """x: [B, T, D] -> [B, T, D]; with a cache, the new keys are written to it and attended with the old."""
        B, T, _ = x.shape
        H, Hkv = self.n_heads, self.n_kv_heads
        if self.wqkv is not None and self.wqkv.usable(x):
            qkv = self.wqkv(x).view(B, T, H + 2 * Hkv, self.head_dim).transpose(1, 2)  # [B, H + 2 Hkv, T, hd]
            qk, v = qkv[:, : H + Hkv], qkv[:, H + Hkv :]  # [B, H + Hkv, T, hd], [B, Hkv, T, hd]
            if self.qk_norm is None and inputs.rotation is not None:
                qk = apply_rotary(qk, inputs.rotation)  # q and k rotated in one call
                rotated = True
            else:
                rotated = False
            q, k = qk[:, :H], qk[:, H:]
        else:
            q = self.wq(x).view(B, T, H, self.head_dim).transpose(1, 2)  # [B, H, T, hd]
            k = self.wk(x).view(B, T, Hkv, self.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
            v = self.wv(x).view(B, T, Hkv, self.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
            rotated = False
        if self.qk_norm is not None:
            q, k = self.qk_norm(q, k)  # normalised per head, before the rotation
        if inputs.rotation is not None and not rotated:
            q = apply_rotary(q, inputs.rotation)
            k = apply_rotary(k, inputs.rotation)
        if inputs.q_scale is not None:
            q = q * inputs.q_scale.to(q.dtype)
        if cache is not None:
            if inputs.plan is None:
                raise ValueError("a cache needs the step plan of a streaming call")
            write_kv(cache, inputs.plan.slots, k, v)
            used = inputs.plan.used
            keys, values = cache.k[:, :, :used], cache.v[:, :, :used]  # [B, Hkv, used, hd] views
            mask = inputs.masks[self.window] if self.window in inputs.masks else inputs.plan.mask(self.window)
            out = attention(q, keys, values, mask=mask)  # [B, H, T, hd]
        else:
            mask = inputs.masks.get(self.window)
            window = self.window if self.window in inputs.op_windows else None
            out = attention(q, k, v, mask=mask, is_causal=self.causal and mask is None, window=window)  # [B, H, T, hd]
        return self.wo(out.transpose(1, 2).reshape(B, T, H * self.head_dim))
