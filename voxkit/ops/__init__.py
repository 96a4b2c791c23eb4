"""Numerical building blocks, each one op of the registry (:mod:`voxkit.ops.registry`): a PyTorch
reference, optional faster implementations per device type, a ``torch.library`` custom op."""

# imported for what they register: the CUDA attention backends, the fused CUDA kernels of cuda/
from voxkit.ops import attention_cuda, cuda_kernels  # noqa: F401
from voxkit.ops.attention import attention
from voxkit.ops.linear import linear16, stored_linear
from voxkit.ops.norm import ada_rms_norm, add_rms_norm, rms_norm
from voxkit.ops.registry import describe, register_implementation, unregister_implementation
from voxkit.ops.rope import rope
from voxkit.ops.swiglu import swiglu

__all__ = [
    "ada_rms_norm",
    "add_rms_norm",
    "attention",
    "describe",
    "linear16",
    "register_implementation",
    "rms_norm",
    "rope",
    "stored_linear",
    "swiglu",
    "unregister_implementation",
]
