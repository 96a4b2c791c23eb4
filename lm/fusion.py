"""Inference-time fusion of the projections that read the same input (wq/wk/wv, w1/w3).

Why: a streaming step multiplies one row per stream by every matrix, so on a CPU each separate
projection costs its own dispatch (and, with 16-bit storage, its own widening call) for very
little arithmetic. One product with the stacked matrix does the same work in one call.

The stacked matrix is the storage: each original linear's weight (and bias) becomes a view of its
rows, so the checkpoint keys, ``state_dict`` and in-place updates all see the same numbers. A
fused forward checks that the views still share that storage (``.to()`` or ``load_state_dict``
with ``assign=True`` would break it) and otherwise falls back to the separate products.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from voxkit.ops import stored_linear


class FusedProjection:
    """The stacked weight [sum(out), in] and bias [sum(out)] (or None) of linears sharing an input."""

    def __init__(self, linears: Sequence[nn.Module]) -> None:
        weights = [lin.weight.detach() for lin in linears]
        self.sizes = [w.shape[0] for w in weights]
        self.weight = torch.cat(weights)  # [sum(out), in]
        self.bias: torch.Tensor | None = None
        biases = [getattr(lin, "bias", None) for lin in linears]
        if any(b is not None for b in biases):
            ref = next(b for b in biases if b is not None)
            self.bias = torch.cat(
                [b.detach() if b is not None else ref.new_zeros(n) for b, n in zip(biases, self.sizes, strict=True)]
            )  # [sum(out)]
        for lin, w in zip(linears, self.weight.split(self.sizes), strict=True):
            lin.weight = nn.Parameter(w, requires_grad=lin.weight.requires_grad)
        if self.bias is not None:
            for lin, b in zip(linears, self.bias.split(self.sizes), strict=True):
                if getattr(lin, "bias", None) is not None:
                    lin.bias = nn.Parameter(b, requires_grad=lin.bias.requires_grad)
        self._first = linears[0]

    def usable(self, x: torch.Tensor) -> bool:
        """True when the fused product equals the separate ones and no gradient is wanted.

        Under ``torch.compile`` the storage check is left out (Dynamo cannot trace a pointer
        comparison): a compiled step is built after the model reached its device and dtypes.
        """
        return (
            not torch.is_grad_enabled()
            and (torch.compiler.is_compiling() or self._first.weight.data_ptr() == self.weight.data_ptr())
            and x.device == self.weight.device
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in] -> [..., sum(out)] (16-bit stored weights are widened to x's dtype here)."""
        return stored_linear(x, self.weight, self.bias)


def fuse_projections(model: nn.Module) -> int:
    """Fuse every attention's q/k/v and every SwiGLU's w1/w3 in ``model``; returns how many.

    For inference after the model is on its device and in its final dtypes (call it after
    :func:`voxkit.ops.stored_weights.keep_16bit_weights`). Training ignores the fusion.
    """
    from voxkit.lm.attention import Attention
    from voxkit.lm.ffn import FeedForward

    count = 0
    for module in model.modules():
        if isinstance(module, (Attention, FeedForward)):
            module.fuse_projections()
            count += 1
    return count
