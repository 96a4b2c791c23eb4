"""The block's MLPs: SwiGLU, the Whisper-style GELU MLP and the Mixtral-style sparse mixture of experts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.lm.args import MoeArgs, TransformerArgs
from voxkit.lm.fusion import FusedProjection
from voxkit.ops import swiglu


class FeedForward(nn.Module):
    """``w2(silu(w1 x) * w3 x)``; only w2 carries a bias in the Voxtral bias pattern."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=bias)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)
        self.w13: FusedProjection | None = None  # inference only, see fuse_projections

    def fuse_projections(self) -> None:
        """Compute the gate and the up projection with one product (inference only)."""
        self.w13 = FusedProjection([self.w1, self.w3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.w13 is not None and self.w13.usable(x):
            gate, up = self.w13(x).chunk(2, dim=-1)  # [..., hidden] each
            return self.w2(swiglu(gate, up))
        return self.w2(swiglu(self.w1(x), self.w3(x)))  # [..., hidden] inside


class MoeFeedForward(nn.Module):
    """Top-k routing: softmax over the k best gate logits weights the chosen experts' outputs.

    (Equal to transformers' softmax over all experts followed by top-k renormalisation.)
    """

    def __init__(self, dim: int, hidden_dim: int, moe: MoeArgs, bias: bool = False) -> None:
        super().__init__()
        self.k = moe.num_experts_per_tok
        self.gate = nn.Linear(dim, moe.num_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(dim, hidden_dim, bias) for _ in range(moe.num_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # [N, D]
        logits = self.gate(flat)  # [N, E]
        top_logits, top_experts = logits.topk(self.k, dim=-1)  # [N, k]
        weights = torch.softmax(top_logits.float(), dim=-1).to(x.dtype)  # [N, k]
        out = torch.zeros_like(flat)
        # One pass per expert (E is small): gather its tokens, run it once, scatter back weighted.
        for e, expert in enumerate(self.experts):
            rows, slot = torch.nonzero(top_experts == e, as_tuple=True)  # [n_e], [n_e]
            if rows.numel() == 0:
                continue
            out.index_add_(0, rows, expert(flat[rows]) * weights[rows, slot, None])
        return out.view(shape)


class GeluFeedForward(nn.Module):
    """``w2(gelu(w1 x))`` with the exact (erf) GELU: Whisper's MLP, whose fc1/fc2 are w1/w2 here.

    Both projections carry a bias when ``bias`` is set (Whisper biases fc1 and fc2), unlike SwiGLU
    where the Voxtral pattern biases w2 only. Keys stay native-style (``feed_forward.w1``/``w2``)
    so that the stack's init and converters treat w2 as the residual branch output either way.
    """

    def __init__(self, dim: int, hidden_dim: int, bias: bool = False) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.w2 = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., D] -> [..., D]."""
        return self.w2(F.gelu(self.w1(x)))  # [..., hidden] inside


def make_ffn(args: TransformerArgs) -> FeedForward | MoeFeedForward | GeluFeedForward:
    """The MLP ``args`` describes: mixture of experts when ``args.moe`` is set, else ``args.mlp``."""
    if args.moe is not None:
        return MoeFeedForward(args.dim, args.hidden_dim, args.moe, args.use_biases)
    if args.mlp == "gelu":
        return GeluFeedForward(args.dim, args.hidden_dim, args.use_biases)
    return FeedForward(args.dim, args.hidden_dim, args.use_biases)
