"""``F.linear`` for weights that may be kept in 16 bits (one dispatch point).

Inference keeps 16-bit checkpoints' weights in float16/bfloat16 and computes in float32
(:mod:`voxkit.ops.stored_weights`). The PyTorch reference widens the whole weight to float32 before
the product; for the few rows of a streaming step (one decoder token and four encoder frames per
stream) the C kernel ``csrc/linear16.c`` instead widens in registers, so the step reads each weight
once, in 16 bits. It is the registered CPU implementation ("c-kernel") of the op ``stored_linear``
(:mod:`voxkit.ops.registry`) and applies to float32 rows, at most :data:`ROWS_MAX` of them, without
gradients, unless ``VOXKIT_KERNELS=off``, and for a weight above :data:`SMALL_WEIGHT_BYTES` only
with one torch thread (it is single-threaded; torch's parallel product wins on large matrices).
It multiplies the same numbers as the reference and sums them in another order: results agree to
float32 rounding (about 1e-7 relative), not bit for bit.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from voxkit.ops import native, registry

ROWS_MAX = 8  # above this torch's matrix product (after widening) is as fast or faster
SMALL_WEIGHT_BYTES = 16 << 20  # up to this the kernel runs whatever torch's thread count
_STORAGE = (torch.float16, torch.bfloat16)


@functools.cache
def linear16_kernel(flags: tuple[str, ...] = native.DEFAULT_FLAGS) -> Callable[..., None] | None:
    """The C entry point (None where it cannot be built or the CPU lacks AVX2 + F16C)."""
    lib = native.load("linear16", flags)
    if lib is None or lib.linear16_isa() == 0:
        return None
    fn = lib.linear16
    # One assignment, never read back and extended: threads that load the kernel at once share
    # this entry point (native.load is cached), and each sets the same whole signature.
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, *[ctypes.c_long] * 3]
    fn.restype = None
    return fn


def run_linear16(fn: Callable[..., None], x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] float32 (at most ROWS_MAX rows), weight [N, K] 16-bit contiguous -> [..., N] float32."""
    N, K = weight.shape
    rows = x.numel() // K
    flat = x.reshape(rows, K)  # [rows, K] (a view for the usual contiguous input)
    if flat.stride(-1) != 1:
        flat = flat.contiguous()
    if bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()):
        bias = bias.to(torch.float32).contiguous()
    y = torch.empty(rows, N, dtype=torch.float32, device=x.device)  # [rows, N]
    fn(
        weight.data_ptr(), int(weight.dtype == torch.bfloat16), flat.data_ptr(), flat.stride(0),
        None if bias is None else bias.data_ptr(), y.data_ptr(), rows, N, K,
    )
    return y.view(*x.shape[:-1], N)


def _kernel_applies(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if x.dtype != torch.float32 or weight.dtype not in _STORAGE or not weight.is_contiguous():
        return False
    K = weight.shape[1]
    if x.shape[-1] != K or not 0 < x.numel() <= ROWS_MAX * K:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)):
        return False
    small = weight.numel() * weight.element_size() <= SMALL_WEIGHT_BYTES
    return small or torch.get_num_threads() == 1


def _kernel(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    fn = linear16_kernel()
    assert fn is not None, "registered as available only when it loads"
    return run_linear16(fn, x, weight, bias)


def stored_linear_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., K], weight [N, K] (any float dtype) -> ``F.linear`` in x's dtype, [..., N]."""
    if bias is not None and bias.dtype != x.dtype:
        bias = bias.to(x.dtype)
    return F.linear(x, weight.to(x.dtype), bias)


STORED_LINEAR = registry.define("stored_linear", stored_linear_reference)
STORED_LINEAR.register(
    "cpu", registry.Implementation("c-kernel", _kernel, applies=_kernel_applies, available=lambda: linear16_kernel() is not None)
)


def linear16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor | None:
    """A registered implementation's ``x @ weight.T + bias`` [..., N], or None where none applies
    (see the module doc); the caller then computes the product its own way.

    Under ``torch.compile`` always None: the choice needs the machine (threads, a kernel build),
    which a traced graph must not depend on.
    """
    if torch.compiler.is_compiling():
        return None
    args = (x, weight, bias)
    implementation = STORED_LINEAR.select(args)
    return None if implementation is None else STORED_LINEAR.run(implementation, args)


def stored_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` with ``weight`` (and ``bias``) read in x's dtype.

    x [..., K]; weight [N, K] in x's dtype or in 16-bit storage; returns [..., N] in x's dtype.
    Weights already in x's dtype take ``F.linear`` directly (nothing to widen, no dispatch).
    """
    if weight.dtype != x.dtype:
        return STORED_LINEAR(x, weight, bias)
    if bias is not None and bias.dtype != x.dtype:
        bias = bias.to(x.dtype)
    return F.linear(x, weight, bias)
