"""The ops' references against autograd of their naive formulas, and the closed-form gradients
that the CUDA backward kernels compute (cuda/*.cu) against autograd of the references.

The kernels themselves need a GPU (``python -m voxkit.bench.kernels`` checks them there against a
float64 reference); what a CPU can check is that the formulas they implement are the right ones.
Everything here runs in float64, where rounding cannot hide a wrong term.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from voxkit.ops.gradients import add_rms_norm_grads, rms_norm_grads, rope_rotate, swiglu_grads
from voxkit.ops.norm import ada_rms_norm_reference, add_rms_norm_reference, rms_norm_reference
from voxkit.ops.rope import rope_reference
from voxkit.ops.swiglu import swiglu_reference

EPS = 1e-5
F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=_gen(seed), dtype=F64)


def _grads(fn, args: list, cotangents: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(outputs, gradients of every tensor argument) of ``fn`` under the given cotangents."""
    leaves = [a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args]
    out = fn(*leaves)
    outputs = out if isinstance(out, tuple) else (out,)
    tensors = [a for a in leaves if isinstance(a, torch.Tensor)]
    return tuple(o.detach() for o in outputs), torch.autograd.grad(outputs, tensors, cotangents)


# ----------------------------------------------------------------------------- naive formulas


def naive_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def naive_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    rotation = torch.complex(cos, sin)  # e^(i angle) [.., hd/2], any scale kept
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())  # x0 + i x1
    return torch.view_as_real(pairs * rotation).flatten(-2)


def naive_swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return gate / (1 + torch.exp(-gate)) * up


CASES = {
    "rms_norm": (
        rms_norm_reference,
        lambda x, w, eps: naive_rms_norm(x, w, eps),
        lambda: [_randn(3, 4, 24, seed=1), _randn(24, seed=2), EPS],
    ),
    "ada_rms_norm": (
        ada_rms_norm_reference,
        lambda x, w, g, eps: naive_rms_norm(x, w, eps) * g,
        lambda: [_randn(2, 5, 24, seed=3), _randn(24, seed=4), _randn(2, 1, 24, seed=5), EPS],
    ),
    "add_rms_norm": (
        add_rms_norm_reference,
        lambda x, r, w, eps: (x + r, naive_rms_norm(x + r, w, eps)),
        lambda: [_randn(3, 4, 24, seed=6), _randn(3, 4, 24, seed=7), _randn(24, seed=8), EPS],
    ),
    "rope": (
        rope_reference,
        naive_rope,
        lambda: [_randn(2, 3, 5, 8, seed=9), *_tables(seed=10)],
    ),
    "swiglu": (
        swiglu_reference,
        naive_swiglu,
        lambda: [_randn(3, 16, seed=11) * 3, _randn(3, 16, seed=12)],
    ),
}


def _tables(seed: int, batch: int = 1, T: int = 5, half: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.rand((batch, 1, T, half), generator=_gen(seed), dtype=F64) * 6.3  # [Bc, 1, T, hd/2]
    return angles.cos(), angles.sin()


@pytest.mark.parametrize("op", sorted(CASES))
def test_reference_matches_autograd_of_the_naive_formula(op: str) -> None:
    reference, naive, make = CASES[op]
    args = make()
    outputs = reference(*args)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    cotangents = tuple(torch.randn(o.shape, generator=_gen(99), dtype=F64) for o in outputs)
    got, got_grads = _grads(reference, args, cotangents)
    want, want_grads = _grads(naive, args, cotangents)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- the kernels' closed forms
# voxkit.ops.gradients states them as cuda/rms_norm.cu, cuda/rope.cu and cuda/swiglu.cu compute
# them (fp32 there; the roundings to the tensor dtype are identities in float64).


@pytest.mark.parametrize("with_gain", [False, True])
def test_norm_backward_closed_form(with_gain: bool) -> None:
    x, weight, gain = _randn(2, 5, 24, seed=20), _randn(24, seed=21), _randn(2, 1, 24, seed=22)
    dy = _randn(2, 5, 24, seed=23)
    if with_gain:
        _, want = _grads(ada_rms_norm_reference, [x, weight, gain, EPS], (dy,))
    else:
        _, want = _grads(rms_norm_reference, [x, weight, EPS], (dy,))
    dx, dweight, dgain = rms_norm_grads(dy, x, weight, gain if with_gain else None, EPS)
    torch.testing.assert_close(dx, want[0])
    torch.testing.assert_close(dweight, want[1])
    if with_gain:
        torch.testing.assert_close(dgain, want[2])


def test_add_norm_backward_is_the_norm_backward_plus_the_sum_gradient() -> None:
    x, residual, weight = _randn(3, 4, 24, seed=30), _randn(3, 4, 24, seed=31), _randn(24, seed=32)
    dtotal, dy = _randn(3, 4, 24, seed=33), _randn(3, 4, 24, seed=34)
    _, (dx_want, dres_want, dw_want) = _grads(add_rms_norm_reference, [x, residual, weight, EPS], (dtotal, dy))
    dx, dweight = add_rms_norm_grads(dtotal, dy, x, residual, weight, EPS)
    torch.testing.assert_close(dx, dx_want)
    torch.testing.assert_close(dx, dres_want)
    torch.testing.assert_close(dweight, dw_want)


@pytest.mark.parametrize("batch_tables", [1, 2])
def test_rope_forward_and_inverse_closed_form(batch_tables: int) -> None:
    x = _randn(2, 3, 5, 8, seed=40)
    cos, sin = _tables(seed=41, batch=batch_tables)
    dy = _randn(2, 3, 5, 8, seed=42)
    out, (dx,) = _grads(lambda x_: rope_reference(x_, cos, sin), [x], (dy,))
    torch.testing.assert_close(rope_rotate(x, cos, sin, inverse=False), out[0])
    torch.testing.assert_close(rope_rotate(dy, cos, sin, inverse=True), dx)
    torch.testing.assert_close(rope_rotate(out[0], cos, sin, inverse=True), x)  # a rotation: inverse undoes it


def test_swiglu_backward_closed_form() -> None:
    gate, up, dy = _randn(4, 32, seed=50) * 4, _randn(4, 32, seed=51), _randn(4, 32, seed=52)
    _, (dgate, dup) = _grads(swiglu_reference, [gate, up], (dy,))
    want_gate, want_up = swiglu_grads(dy, gate, up)
    torch.testing.assert_close(want_gate, dgate)
    torch.testing.assert_close(want_up, dup)
    torch.testing.assert_close(F.silu(gate) * up, swiglu_reference(gate, up))
