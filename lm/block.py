"""The one configurable transformer block of every voxkit stack.

``h = x + ls1(attention(attention_norm(x)))``, ``out = h + ls2(feed_forward(ffn_norm(h) [* gain]))``.

What varies is chosen by :class:`~voxkit.lm.args.TransformerArgs`, never by a copied class: the
norm (RMSNorm for the Mistral family and the codec, LayerNorm for a Whisper-style encoder), the
MLP (SwiGLU, GELU, or a mixture of SwiGLU experts), LayerScale on both residual branches (the
codec), Ada-RMSNorm delay conditioning (the Voxtral Realtime decoder), and inside the attention
module the positions, QK-norm, causality and windows. With default args the block is the Mistral
block, parameter for parameter: the native keys ``attention``, ``attention_norm``, ``ffn_norm``,
``feed_forward`` and ``ada_rms_norm_t_cond``; LayerScale adds ``attention_scale.gamma`` and
``ffn_scale.gamma``.
"""

from __future__ import annotations

import torch
from torch import nn

from voxkit.lm.args import TransformerArgs
from voxkit.lm.attention import Attention, AttentionInputs
from voxkit.lm.cache import KVState
from voxkit.lm.ffn import FeedForward, MoeFeedForward, make_ffn
from voxkit.lm.norm import AdaRMSNormGain, RMSNorm, make_norm
from voxkit.ops import ada_rms_norm, add_rms_norm


class LayerScale(nn.Module):
    """A learnt per-channel gain ``gamma`` [dim] on a residual branch, initialised small.

    Why: starting every branch at a small gain (0.01 in the codec) makes a deep stack start close
    to the identity, so training is stable without warm-up tricks; the gains grow where the
    branch is useful (CaiT, Touvron et al. 2021).
    """

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., D] -> x * gamma, in x's dtype."""
        return x * self.gamma.to(x.dtype)


class TransformerBlock(nn.Module):
    """Pre-norm residual block; see the module docstring for the layout and its options."""

    def __init__(self, args: TransformerArgs, layer: int) -> None:
        super().__init__()
        # Registration order = state_dict order: the Mistral keys first, in their historical order.
        self.attention = Attention(args, layer)
        self.attention_norm = make_norm(args, args.dim)
        self.ffn_norm = make_norm(args, args.dim)
        self.feed_forward: nn.Module = make_ffn(args)
        self.ada_rms_norm_t_cond = AdaRMSNormGain(args.dim, args.ada_dim) if args.ada_rms_norm_t_cond else None
        scale = args.layer_scale
        self.attention_scale = LayerScale(args.dim, scale) if scale is not None else None
        self.ffn_scale = LayerScale(args.dim, scale) if scale is not None else None
        # What the attention module does with positions (read by fused_step_support).
        self.positions = args.positions
        self.qk_norm = args.qk_norm
        self.causal = args.causal

    def forward(
        self, x: torch.Tensor, inputs: AttentionInputs, gain: torch.Tensor | None, cache: KVState | None = None
    ) -> torch.Tensor:
        """x: [B, T, D] -> [B, T, D].

        ``gain``: this layer's Ada-RMSNorm factor ``1 + g(delay)`` [B, 1, D]
        (:meth:`Transformer.delay_gains`), required when the block has Ada-RMSNorm, else ignored.
        ``cache``: this layer's KV cache in a streaming call (the caller's state), else None.
        """
        branch = self.attention(self.attention_norm(x), inputs, cache)  # [B, T, D]
        if self.attention_scale is not None:
            branch = self.attention_scale(branch)
        conditioned, rms = self.ada_rms_norm_t_cond is not None, isinstance(self.ffn_norm, RMSNorm)
        if conditioned and gain is None:
            raise ValueError("this block is delay-conditioned (Ada-RMSNorm): pass its gain")
        if rms and not conditioned:
            # the residual add and the next norm as one op (a fused kernel where one is registered)
            h, normed = add_rms_norm(x, branch, self.ffn_norm.weight, self.ffn_norm.eps)  # [B, T, D] each
        else:
            h = x + branch  # [B, T, D]
            if not conditioned:
                normed = self.ffn_norm(h)  # [B, T, D]
            elif rms:
                normed = ada_rms_norm(h, self.ffn_norm.weight, gain, self.ffn_norm.eps)  # [B, T, D], gain [B, 1, D]
            else:
                normed = self.ffn_norm(h) * gain  # [B, T, D] * [B, 1, D]
        branch = self.feed_forward(normed)  # [B, T, D]
        if self.ffn_scale is not None:
            branch = self.ffn_scale(branch)
        return h + branch

    def fused_step_support(self) -> str | None:
        """None when the fused CPU step (lm/fused_step.py, block_step.c) computes this block exactly,
        else why not (a short phrase for logs and errors).

        The C kernel implements one layout: RMSNorm pre-norms, interleaved RoPE, causal attention
        (optionally windowed), no QK-norm, a dense SwiGLU MLP, no LayerScale, optional
        Ada-RMSNorm gain and Voxtral biases. Any other block must take the PyTorch modules, or the
        kernel would silently compute another function.
        """
        if type(self.attention_norm) is not RMSNorm or type(self.ffn_norm) is not RMSNorm:
            return "LayerNorm (the kernel implements RMSNorm)"
        if type(self.feed_forward) is not FeedForward:
            kind = "mixture of experts" if isinstance(self.feed_forward, MoeFeedForward) else "GELU MLP"
            return f"{kind} (the kernel implements a dense SwiGLU)"
        if self.positions != "rope":
            return f"{self.positions} positions (the kernel implements RoPE)"
        if self.qk_norm:
            return "QK-norm"
        if self.attention_scale is not None or self.ffn_scale is not None:
            return "LayerScale"
        if not self.causal:
            return "bidirectional attention (the kernel implements causal attention)"
        return None
