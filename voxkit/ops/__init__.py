"""Numerical building blocks with one dispatch point each (fused kernel or PyTorch reference)."""

from voxkit.ops.attention import attention
from voxkit.ops.linear import linear16, stored_linear
from voxkit.ops.norm import rms_norm

__all__ = ["attention", "linear16", "rms_norm", "stored_linear"]
