"""The fused CUDA kernels checked against the PyTorch references before any op uses them.

Why at load time, on the user's machine: the kernels are built there, for that GPU, by that
compiler; a kernel that computes something else must not silently train or serve a model. On a
mismatch :mod:`voxkit.ops.cuda_kernels` turns the whole set off and says why.

No autograd here: the check runs wherever the first CUDA op happens to be called, which may be
inside ``inference_mode`` or inside a custom op's body under ``torch.compile``. The forward kernels
are compared with the references; the backward kernels with the closed forms of
:mod:`voxkit.ops.gradients` (themselves tested against autograd of the references on the CPU).

What the inputs cover, per dtype (fp32, fp16, bf16): rows on the 16-byte path and on the scalar
path (a width that is no multiple of a pack), rows long enough to give each thread several packs,
rows with a stride larger than their width, more rows than the backward has blocks, RoPE over a
[B, T, H, hd] buffer with angle tables shared by the batch or per item, SwiGLU over the two halves
of one product. The outputs are allocated right after tensors of the same sizes filled with NaN
were freed, so an element a kernel forgets to write is likely to show up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from voxkit.ops import gradients

EPS = 1e-5
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# |got - want| <= tol + tol * |want|: a 16-bit result may sit one rounding away from an fp32
# value; index and formula errors are of the size of the values themselves.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 4e-3, torch.bfloat16: 2e-2}
NARROW, ODD = 64, 99  # a width on the 16-byte path in every dtype, and one on the scalar path
MANY_ROWS = 1100  # more rows than the backward's blocks on any current GPU: blocks loop over rows

Case = tuple[str, list[Any]]
Kernel = tuple[Callable[..., Any], Callable[..., bool], Callable[..., Any], Callable[..., Any]]  # fwd, applies, bwd, ref


def _long_width(dtype: torch.dtype) -> int:
    """A row long enough that each thread holds several 16-byte packs."""
    return 4096 if dtype == torch.float32 else 16384


def cases(op: str, dtype: torch.dtype, device: torch.device, gen: torch.Generator | None) -> list[Case]:
    """(label, arguments) of the check inputs of ``op`` in ``dtype``."""

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, device=device).to(dtype)

    def gain(*shape: int) -> torch.Tensor:
        return (1 + 0.5 * torch.randn(shape, generator=gen, device=device)).to(dtype)

    if op in ("rms_norm", "ada_rms_norm", "add_rms_norm"):
        shapes = [
            ("rows of 64", (2, 7, NARROW), NARROW),
            ("rows of 99", (2, 7, ODD), ODD),
            ("strided rows", (2, 7, 2 * NARROW), NARROW),
            ("long rows", (2, 3, _long_width(dtype)), _long_width(dtype)),
        ]
        if op == "rms_norm":
            shapes.append(("many rows", (1, MANY_ROWS, NARROW), NARROW))
        out: list[Case] = []
        for label, shape, dim in shapes:
            x = randn(*shape)[..., :dim]  # [B, T, dim], row stride shape[-1]
            if op == "rms_norm":
                out.append((label, [x, gain(dim), EPS]))
            elif op == "ada_rms_norm":
                out.append((label, [x, gain(dim), gain(shape[0], 1, dim), EPS]))
            else:
                out.append((label, [x, randn(*shape)[..., :dim], gain(dim), EPS]))
        return out
    if op == "rope":

        def tables(batch: int, T: int, half: int) -> list[torch.Tensor]:
            angles = torch.rand((batch, 1, T, half), generator=gen, device=device) * 6.3  # [Bc, 1, T, hd/2]
            return [angles.cos(), angles.sin()]

        return [
            ("a [B, T, H, hd] buffer, shared tables", [randn(2, 5, 3, 128).transpose(1, 2), *tables(1, 5, 64)]),
            ("heads of 198, tables per item", [randn(2, 5, 3, 198).transpose(1, 2), *tables(2, 5, 99)]),
            ("contiguous heads of 64", [randn(2, 3, 5, 64), *tables(1, 5, 32)]),
        ]
    gate, up = randn(3, 4, 2 * NARROW).chunk(2, dim=-1)  # the two halves of one product
    return [
        ("halves of one product", [gate, up]),
        ("rows of 99", [randn(3, 4, ODD), randn(3, 4, ODD)]),
        ("rows of 4096", [randn(33, 4096), randn(33, 4096)]),
    ]


def expected_grads(op: str, grads: tuple[torch.Tensor, ...], args: list[Any]) -> dict[int, torch.Tensor]:
    """Argument slot -> its gradient in closed form (fp32), for the tensors the kernels differentiate."""
    if op == "rms_norm":
        dx, dweight, _ = gradients.rms_norm_grads(grads[0], args[0], args[1], None, args[2])
        return {0: dx, 1: dweight}
    if op == "ada_rms_norm":
        dx, dweight, dgain = gradients.rms_norm_grads(grads[0], args[0], args[1], args[2], args[3])
        assert dgain is not None
        return {0: dx, 1: dweight, 2: dgain}
    if op == "add_rms_norm":
        dx, dweight = gradients.add_rms_norm_grads(grads[0], grads[1], *args)
        return {0: dx, 1: dx, 2: dweight}
    if op == "rope":
        return {0: gradients.rope_rotate(grads[0], args[1], args[2], inverse=True)}
    dgate, dup = gradients.swiglu_grads(grads[0], *args)
    return {0: dgate, 1: dup}


def _poison(like: list[torch.Tensor], dtype: torch.dtype) -> None:
    """Free NaN-filled tensors of these sizes, so that the next allocations likely reuse them."""
    for t in like:
        torch.full(t.shape, float("nan"), dtype=dtype, device=t.device)


def _close(got: torch.Tensor | None, want: torch.Tensor, dtype: torch.dtype) -> bool:
    if got is None or tuple(got.shape) != tuple(want.shape):
        return False
    tol = TOLERANCE[dtype]
    return bool(torch.allclose(got.float(), want.float(), atol=tol, rtol=tol))


def check_op(
    op: str,
    kernel: tuple[Callable[..., Any], Callable[..., bool], Callable[..., Any], Callable[..., Any]],
    device: torch.device,
    gen: torch.Generator,
) -> str | None:
    """None when ``op``'s kernels agree with the reference (forward) and the closed forms
    (backward) on every check input, else what disagreed."""
    fn, applies, backward, reference = kernel
    for dtype in DTYPES:
        for label, args in cases(op, dtype, device, gen):
            where = f"{op}, {label}, {str(dtype).removeprefix('torch.')}"
            if not applies(*args):
                return f"{where}: the kernel declines its own check inputs"
            want = reference(*args)
            want = want if isinstance(want, tuple) else (want,)
            _poison(list(want), dtype)
            got = fn(*args)
            got = got if isinstance(got, tuple) else (got,)
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                if not _close(g, w, dtype):
                    return f"{where}: forward output {i} differs from the reference"
            grads = tuple(torch.randn(w.shape, generator=gen, device=device).to(dtype) for w in want)
            expected = expected_grads(op, grads, args)
            _poison(list(expected.values()), dtype)
            got_grads = backward([slot in expected for slot in range(len(args))], grads, *args)
            if got_grads is None:
                return f"{where}: the backward kernel declines its check inputs"
            for slot, w in expected.items():
                if not _close(got_grads[slot], w, dtype):
                    return f"{where}: the gradient of argument {slot} differs from the closed form"
    return None


def self_check(kernels: Mapping[str, Kernel]) -> str | None:
    """None when every kernel of ``kernels`` (op name -> (forward, applies, backward, reference),
    :data:`voxkit.ops.cuda_kernels.KERNELS`) agrees, else the first disagreement (or the error a
    launch raised)."""
    device = torch.device("cuda")
    gen = torch.Generator(device=device).manual_seed(0)  # never the user's random stream
    try:
        with torch.no_grad():
            for op, kernel in kernels.items():
                problem = check_op(op, kernel, device, gen)
                if problem is not None:
                    return problem
        torch.cuda.synchronize()
    except Exception as error:  # noqa: BLE001 (a failed launch surfaces as a RuntimeError)
        return f"{type(error).__name__}: {error}"
    return None
