"""SwiGLU's gate: ``silu(gate) * up`` (the product between a SwiGLU MLP's two input projections)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxkit.ops import registry


def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """gate, up [..., hidden] -> ``silu(gate) * up`` [..., hidden]."""
    return F.silu(gate) * up


SWIGLU = registry.define("swiglu", swiglu_reference)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up``: one pass over the hidden activations where a kernel is registered."""
    return SWIGLU(gate, up)
