"""The five fused ops as the benchmark sees them: inputs, test shapes, bytes moved, peers.

Inputs are random but shaped like the model's: norm weights and gains near 1, a first row scaled
down 1000x (its mean square is then of the order of eps, which checks where eps goes), RoPE
tables in float32 for any activation dtype (as :class:`voxkit.lm.rope.RotaryEmbedding` makes
them), and the non-contiguous layouts the model really passes: rows of a wider tensor, queries
transposed out of their projection, SwiGLU's gate and up as the two halves of one fused product.

Bytes are the least any implementation must move: each input read once, each output written once
(gradient reductions' partial sums and the RoPE tables' reuse across heads not counted).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from voxkit import ops
from voxkit.ops import registry

EPS = 1e-5


@dataclasses.dataclass(frozen=True)
class Case:
    """One input shape. ``shape``: x (norms), [B, H, T, hd] (RoPE) or gate (SwiGLU)."""

    shape: tuple[int, ...]
    layout: str = "contiguous"  # or "strided rows", "transposed", "per-batch angles", "fused halves"

    @property
    def label(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        return dims if self.layout == "contiguous" else f"{dims} {self.layout}"


@dataclasses.dataclass
class OpSpec:
    name: str
    make: Callable[[Case, torch.dtype, torch.device, torch.Generator], list[Any]]
    diff: tuple[int, ...]  # argument slots that receive gradients
    fwd_bytes: Callable[[list[Any]], int]
    bwd_bytes: Callable[[list[Any]], int]
    bytes_note: str
    cases: list[Case]
    bench_case: Callable[[int, int], Case]  # (rows, dim) -> the timed shape
    peers: dict[str, Callable[[], Callable[..., Any]]]  # name -> builder of fn(*args); raises when unavailable
    reduced: tuple[int, ...] = ()  # slots whose gradient sums over rows (weights, gains): a looser atol

    @property
    def op(self) -> registry.Op:
        return registry.get(self.name)

    def voxkit(self, *args: Any) -> Any:
        return getattr(ops, self.name)(*args)

    def reference(self, *args: Any) -> Any:
        return self.op.reference(*args)


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def randn(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, gen: torch.Generator,
          scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).mul_(scale).add_(shift).to(dtype)


def _activations(case: Case, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    """x [..., D]: mean 0.3, std 1.5, first row 1000x smaller; 'strided rows' = a view of a wider tensor."""
    *lead, dim = case.shape
    pad = 8 if case.layout == "strided rows" else 0
    full = randn((*lead, dim + pad), dtype, device, gen, 1.5, 0.3)
    if math.prod(lead) >= 2:
        full.view(-1, dim + pad)[0].mul_(1e-3)
    return full[..., :dim] if pad else full


def _norm_weight(dim: int, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    return randn((dim,), dtype, device, gen, 0.3, 1.0)


def make_rms_norm(case: Case, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> list[Any]:
    x = _activations(case, dtype, device, gen)
    return [x, _norm_weight(case.shape[-1], dtype, device, gen), EPS]


def make_ada_rms_norm(case: Case, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> list[Any]:
    x = _activations(case, dtype, device, gen)  # [B, T, D]
    B, D = case.shape[0], case.shape[-1]
    gain = randn((B, 1, D), dtype, device, gen, 0.3, 1.0)  # the caller's 1 + g
    return [x, _norm_weight(D, dtype, device, gen), gain, EPS]


def make_add_rms_norm(case: Case, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> list[Any]:
    x = _activations(case, dtype, device, gen)
    residual = randn(case.shape, dtype, device, gen, 1.0)
    return [x, residual, _norm_weight(case.shape[-1], dtype, device, gen), EPS]


def make_rope(case: Case, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> list[Any]:
    B, H, T, hd = case.shape
    if case.layout == "transposed":  # [B, T, H, hd] from the projection, seen as [B, H, T, hd]
        x = randn((B, T, H, hd), dtype, device, gen).transpose(1, 2)
    else:
        x = randn((B, H, T, hd), dtype, device, gen)
    rows = B if case.layout == "per-batch angles" else 1
    angles = torch.rand((rows, 1, T, hd // 2), generator=gen, device=device) * (2 * math.pi)  # [1|B, 1, T, hd/2]
    return [x, angles.cos(), angles.sin()]


def make_swiglu(case: Case, dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> list[Any]:
    *lead, hidden = case.shape
    if case.layout == "fused halves":  # one [.., 2 hidden] product split in two views
        gate, up = randn((*lead, 2 * hidden), dtype, device, gen, 2.0).chunk(2, dim=-1)
        return [gate, up]
    return [randn(case.shape, dtype, device, gen, 2.0), randn(case.shape, dtype, device, gen, 2.0)]


def _rows_case(rows: int, dim: int) -> Case:
    return Case((rows, dim))


def _hidden_case(rows: int, dim: int) -> Case:
    """A SwiGLU MLP's hidden width for model width ``dim`` (Mistral-7B: 4096 -> 14336)."""
    return Case((rows, dim * 7 // 2))


def _batched_case(rows: int, dim: int) -> Case:
    batch = 4 if rows % 4 == 0 else 1
    return Case((batch, rows // batch, dim))


def _rope_case(rows: int, dim: int) -> Case:
    hd = 128 if dim % 128 == 0 else 64 if dim % 64 == 0 else 2
    batch = 4 if rows % 4 == 0 else 1
    return Case((batch, dim // hd, rows // batch, hd))


def _f_rms_norm() -> Callable[..., Any]:
    return lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps)


def _f_ada_rms_norm() -> Callable[..., Any]:
    return lambda x, w, gain, eps: F.rms_norm(x, (x.shape[-1],), w, eps) * gain


def _f_add_rms_norm() -> Callable[..., Any]:
    def fn(x: torch.Tensor, residual: torch.Tensor, w: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        total = x + residual
        return total, F.rms_norm(total, (x.shape[-1],), w, eps)

    return fn


def _liger_rms_norm() -> Callable[..., Any]:
    from liger_kernel.ops.rms_norm import LigerRMSNormFunction

    return lambda x, w, eps: LigerRMSNormFunction.apply(x, w, eps)


def _liger_swiglu() -> Callable[..., Any]:
    from liger_kernel.ops.swiglu import LigerSiLUMulFunction

    return lambda gate, up: LigerSiLUMulFunction.apply(gate, up)


_NORM_CASES = [Case((1, 1, 4096)), Case((3, 1000)), Case((7, 72)), Case((33, 4097)), Case((2, 17, 4096)),
               Case((4, 8192)), Case((5, 1000), "strided rows")]
_ADA_CASES = [Case((1, 1, 4096)), Case((3, 7, 1000)), Case((2, 5, 72)), Case((2, 33, 4097)), Case((4, 16, 3072)),
              Case((2, 9, 1000), "strided rows")]
_ROPE_CASES = [Case((1, 32, 1, 128)), Case((2, 3, 7, 72)), Case((3, 8, 33, 128), "per-batch angles"),
               Case((2, 4, 129, 64), "transposed"), Case((1, 2, 5, 2)), Case((2, 32, 3, 128), "transposed")]
_SWIGLU_CASES = [Case((1, 14336)), Case((3, 1000)), Case((7, 72)), Case((33, 4097)), Case((2, 5, 9216), "fused halves"),
                 Case((4, 1001), "fused halves")]

SPECS: list[OpSpec] = [
    OpSpec(
        "rms_norm", make_rms_norm, (0, 1),
        fwd_bytes=lambda a: 2 * nbytes(a[0]) + nbytes(a[1]),
        bwd_bytes=lambda a: 3 * nbytes(a[0]) + 2 * nbytes(a[1]),
        bytes_note="fwd: read x, w; write y. bwd: read dy, x, w; write dx, dw",
        cases=_NORM_CASES, bench_case=_rows_case,
        peers={"F.rms_norm": _f_rms_norm, "Liger": _liger_rms_norm}, reduced=(1,),
    ),
    OpSpec(
        "ada_rms_norm", make_ada_rms_norm, (0, 1, 2),
        fwd_bytes=lambda a: 2 * nbytes(a[0]) + nbytes(a[1]) + nbytes(a[2]),
        bwd_bytes=lambda a: 3 * nbytes(a[0]) + 2 * nbytes(a[1]) + 2 * nbytes(a[2]),
        bytes_note="fwd: read x, w, gain; write y. bwd: read dy, x, w, gain; write dx, dw, dgain",
        cases=_ADA_CASES, bench_case=_batched_case,
        peers={"F.rms_norm": _f_ada_rms_norm}, reduced=(1, 2),
    ),
    OpSpec(
        "add_rms_norm", make_add_rms_norm, (0, 1, 2),
        fwd_bytes=lambda a: 4 * nbytes(a[0]) + nbytes(a[2]),
        bwd_bytes=lambda a: 4 * nbytes(a[0]) + 2 * nbytes(a[2]),
        bytes_note="fwd: read x, residual, w; write sum, normed. bwd: read dsum, dnormed, sum, w; "
                   "write one gradient (x and residual get the same) and dw",
        cases=_NORM_CASES, bench_case=_rows_case,
        peers={"F.rms_norm": _f_add_rms_norm}, reduced=(2,),
    ),
    OpSpec(
        "rope", make_rope, (0,),
        fwd_bytes=lambda a: 2 * nbytes(a[0]) + nbytes(a[1]) + nbytes(a[2]),
        bwd_bytes=lambda a: 2 * nbytes(a[0]) + nbytes(a[1]) + nbytes(a[2]),
        bytes_note="fwd: read x, cos, sin (once); write y. bwd: read dy, cos, sin; write dx",
        cases=_ROPE_CASES, bench_case=_rope_case,
        peers={},
    ),
    OpSpec(
        "swiglu", make_swiglu, (0, 1),
        fwd_bytes=lambda a: 3 * nbytes(a[0]),
        bwd_bytes=lambda a: 5 * nbytes(a[0]),
        bytes_note="fwd: read gate, up; write y. bwd: read dy, gate, up; write dgate, dup",
        cases=_SWIGLU_CASES, bench_case=_hidden_case,
        peers={"Liger": _liger_swiglu},
    ),
]


def spec(name: str) -> OpSpec:
    return next(s for s in SPECS if s.name == name)


def as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)
