"""A streaming step of the transformer stack with one C call per block (CPU, inference).

Why: for the few rows of a live step (one decoder token, four encoder frames per stream) the
block's arithmetic is small and PyTorch's per-operator dispatch dominates: about 200 operators
per block. ``voxkit/ops/csrc/block_step.c`` computes a whole :class:`TransformerBlock` on the
tensors' memory (weights in their 16- or 32-bit storage, the ring KV cache written in place), so a
step costs one call per block. :func:`fused_stack_step` returns None whenever the fast path does
not apply and the caller runs the PyTorch modules instead: gradients, a GPU, more than
:data:`ROWS_MAX` rows (streams x new rows), mixture-of-experts or Llama-4 query scaling, unfused
projections, a machine without a C compiler or without AVX2/AVX-512, ``VOXKIT_KERNELS=off``, and
more than one torch thread for a stack with more than :data:`SMALL_STACK_BYTES` of weights (the
kernel is single-threaded: it beats torch's threads on a small model, measured for the bundled
one, but a large model's products want every core). Results agree with the modules to float32
rounding (tested).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from voxkit.lm.attention import AttentionInputs
from voxkit.lm.block import TransformerBlock
from voxkit.lm.cache import KVState, RingState, StepPlan
from voxkit.lm.ffn import FeedForward
from voxkit.lm.fusion import FusedProjection
from voxkit.lm.norm import RMSNorm
from voxkit.ops import native
from voxkit.ops.dispatch import announce, kernels_enabled, log
from voxkit.ops.linear import linear16_kernel

if TYPE_CHECKING:
    from voxkit.lm.transformer import Transformer

# Most rows (streams x new rows) one call fuses. The kernel reads the weights once per four rows
# and is bound by arithmetic at many rows, where torch's tuned products are the better tool (a
# file's 32-step encoder chunks stay with them); up to 64 rows it still wins, measured on the
# bundled model, one thread: 4 streams (16 encoder rows) 17.2 -> 11.1 ms per step, 16 streams
# (64 rows) 31.7 -> 29.1 ms.
ROWS_MAX = 64
# Up to this many bytes of weights per stack the fused step runs whatever torch's thread count
# (the bundled recogniser, 2 threads on the 2-core test CPU: 8.3 ms per live step with the
# modules, 5.5 ms fused); above it only with one thread.
SMALL_STACK_BYTES = 64 << 20
_DTYPES = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2}  # block_step.c's storage codes


class _Matrix(ctypes.Structure):
    _fields_ = [("w", ctypes.c_void_p), ("b", ctypes.c_void_p), ("dtype", ctypes.c_int)]


class _Block(ctypes.Structure):
    _fields_ = [(name, ctypes.c_long) for name in ("dim", "n_heads", "n_kv_heads", "head_dim", "hidden", "window")]
    _fields_ += [("eps", ctypes.c_float), ("attention_norm", ctypes.c_void_p), ("ffn_norm", ctypes.c_void_p)]
    _fields_ += [(name, _Matrix) for name in ("wqkv", "wo", "w13", "w2")]


class _Step(ctypes.Structure):
    _fields_ = [(name, ctypes.c_long) for name in ("batch", "rows", "capacity", "used")]
    _fields_ += [("x", ctypes.c_void_p), ("gain", ctypes.c_void_p), ("rotation", ctypes.c_void_p), ("rot_batch", ctypes.c_long)]
    _fields_ += [(name, ctypes.c_void_p) for name in ("slots", "positions", "slot_pos", "k_cache", "v_cache", "scratch")]


def python_layout() -> list[int]:
    """Sizes and field offsets of the ctypes mirrors, in block_step.c's ``block_step_layout`` order."""
    out: list[int] = []
    for struct in (_Matrix, _Block, _Step):
        out.append(ctypes.sizeof(struct))
        out += [getattr(struct, name).offset for name, _ in struct._fields_]
    return out


def c_layout(lib: ctypes.CDLL) -> list[int]:
    """The same numbers as the C compiler laid the structs out."""
    lib.block_step_layout.argtypes = [ctypes.POINTER(ctypes.c_long), ctypes.c_long]
    lib.block_step_layout.restype = ctypes.c_long
    buffer = (ctypes.c_long * 64)()
    count = lib.block_step_layout(buffer, 64)
    return list(buffer[: min(count, 64)])


@functools.cache
def block_step_library() -> ctypes.CDLL | None:
    """The built kernel library (None where it cannot be built, the CPU lacks AVX2 + F16C, or the
    C structs are not laid out as their ctypes mirrors)."""
    lib = native.load("block_step")
    if lib is None or lib.block_step_isa() == 0:
        return None
    if c_layout(lib) != python_layout():
        log.warning("voxkit kernel block_step: C struct layout differs from lm/fused_step.py's, using the PyTorch modules")
        return None
    lib.block_step.argtypes = [ctypes.POINTER(_Block), ctypes.POINTER(_Step)]
    lib.block_step.restype = None
    lib.block_step_scratch.argtypes = [ctypes.c_long] * 7
    lib.block_step_scratch.restype = ctypes.c_long
    return lib


def prepare_for_inference(model: nn.Module, device: str | torch.device) -> None:
    """Make a loaded model's token-by-token steps fast: its projections fused (one product for
    q/k/v and one for w1/w3, :func:`voxkit.lm.fusion.fuse_projections`) and, on a CPU, the fused
    step's kernels built now. Why every inference loader calls it: without the fusion the fused
    CPU step (:func:`fused_stack_step`) never engages and each block runs as separate modules.
    Training ignores the fusion; the checkpoint keys stay the same."""
    from voxkit.lm.fusion import fuse_projections

    fuse_projections(model)
    if torch.device(device).type == "cpu":
        prepare_cpu_kernels()


def prepare_cpu_kernels() -> bool:
    """Build (or load the cached) CPU kernels now, so that a first build (about a second) does not
    land inside the first streaming step. True when the fused step is available."""
    if not kernels_enabled():
        return False
    linear16_kernel()
    return block_step_library() is not None


def _matrix(weight: torch.Tensor, bias: torch.Tensor | None) -> _Matrix | None:
    if weight.dtype not in _DTYPES or not weight.is_contiguous():
        return None
    if bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()):
        return None
    return _Matrix(weight.data_ptr(), None if bias is None else bias.data_ptr(), _DTYPES[weight.dtype])


def _still_fused(fused: FusedProjection, linears: list[nn.Module]) -> bool:
    """True while every linear's weight and bias are still the views of the stacked storage."""
    offset = 0
    for lin, rows in zip(linears, fused.sizes, strict=True):
        if lin.weight.data_ptr() != fused.weight[offset].data_ptr():
            return False
        bias = getattr(lin, "bias", None)
        if bias is not None and (fused.bias is None or bias.data_ptr() != fused.bias[offset].data_ptr()):
            return False
        offset += rows
    return True


@dataclasses.dataclass
class _Description:
    """The C descriptions of a stack's blocks and the parameters whose memory they point into.

    Holding the tensors keeps that memory alive; ``watch`` lets every call check cheaply that each
    module still holds the same parameter at the same address (``load_state_dict(assign=True)``,
    ``.to()`` or a new Parameter would otherwise leave the kernel reading stale memory).
    """

    blocks: list[_Block]
    watch: list[tuple[dict, str, torch.Tensor | None, int]]  # (module._parameters, name, tensor, data_ptr)
    keep: list[torch.Tensor]  # the stacked q/k/v and w1/w3 matrices (plain attributes, not parameters)
    weight_bytes: int  # what one pass over the stack's matrices reads

    def current(self) -> bool:
        return all(
            params.get(name) is tensor and (tensor is None or tensor.data_ptr() == ptr) for params, name, tensor, ptr in self.watch
        )


def _describe(stack: Transformer) -> _Description | None:
    """One C description per block, or None when some block is not the plain fused layout."""
    blocks, watch = [], []
    for layer in stack.layers:
        attn, ffn = layer.attention, layer.feed_forward
        # The kernel implements one block layout; the block says whether it is that one.
        if type(layer) is not TransformerBlock or layer.fused_step_support() is not None:
            return None
        if not isinstance(ffn, FeedForward) or attn.wqkv is None or ffn.w13 is None:
            return None
        if not (_still_fused(attn.wqkv, [attn.wq, attn.wk, attn.wv]) and _still_fused(ffn.w13, [ffn.w1, ffn.w3])):
            return None  # the projections no longer share the stacked storage (lm/fusion.py)
        norm_modules = (layer.attention_norm, layer.ffn_norm)
        if any(type(n) is not RMSNorm for n in norm_modules) or norm_modules[0].eps != norm_modules[1].eps:
            return None
        norms = (layer.attention_norm.weight, layer.ffn_norm.weight)
        if any(n.dtype != torch.float32 or not n.is_contiguous() for n in norms):
            return None
        if attn.window is not None and attn.window < 1:
            return None
        matrices = (
            _matrix(attn.wqkv.weight, attn.wqkv.bias),
            _matrix(attn.wo.weight, attn.wo.bias),
            _matrix(ffn.w13.weight, ffn.w13.bias),
            _matrix(ffn.w2.weight, ffn.w2.bias),
        )
        if any(m is None for m in matrices):
            return None
        hidden = ffn.w1.weight.shape[0]
        block = _Block(stack.args.dim, attn.n_heads, attn.n_kv_heads, attn.head_dim, hidden, attn.window or 0)
        block.eps = layer.attention_norm.eps
        block.attention_norm, block.ffn_norm = norms[0].data_ptr(), norms[1].data_ptr()
        block.wqkv, block.wo, block.w13, block.w2 = matrices
        blocks.append(block)
        for module in (attn.wq, attn.wk, attn.wv, attn.wo, ffn.w1, ffn.w3, ffn.w2, *norm_modules):
            for name in ("weight", "bias"):
                if name in module._parameters:
                    tensor = module._parameters[name]
                    watch.append((module._parameters, name, tensor, 0 if tensor is None else tensor.data_ptr()))
    keep = [t for layer in stack.layers for t in (layer.attention.wqkv.weight, layer.feed_forward.w13.weight)]
    weights = [
        m.weight for layer in stack.layers
        for m in (layer.attention.wqkv, layer.attention.wo, layer.feed_forward.w13, layer.feed_forward.w2)
    ]
    weight_bytes = sum(w.numel() * w.element_size() for w in weights)
    return _Description(blocks, watch, keep, weight_bytes)


def _description(stack: Transformer, state: RingState) -> _Description | None:
    """The blocks' descriptions: made once per streaming session, remade if a parameter moved."""
    description = state.fused.get("blocks")
    if description is False:  # this stack cannot take the fused path (for this session)
        return None
    if not isinstance(description, _Description) or not description.current():
        description = _describe(stack) or False
        state.fused["blocks"] = description
    return description or None


def _plain(t: torch.Tensor, shape: tuple[int, ...]) -> bool:
    """float32, contiguous and exactly ``shape``: memory the kernel may index directly."""
    return t.dtype == torch.float32 and t.shape == shape and t.is_contiguous()


def fused_stack_step(
    stack: Transformer, x: torch.Tensor, state: RingState, plan: StepPlan, inputs: AttentionInputs, gains: list
) -> torch.Tensor | None:
    """Run every block of ``stack`` on x [B, T, D] for this step; None if the fast path does not apply.

    ``plan`` (slots and positions of the new rows) must already be registered in ``state``
    (:func:`voxkit.lm.cache.plan_step`); the caller commits the step afterwards as usual.
    """
    if torch.compiler.is_compiling():
        return None  # a compiled step traces the modules; the C call would break the graph
    B, T, D = x.shape
    if (
        B * T > ROWS_MAX
        or x.dtype != torch.float32
        or x.device.type != "cpu"
        or inputs.q_scale is not None
        or torch.is_grad_enabled()
        or not kernels_enabled()
    ):
        return None
    lib = block_step_library()
    description = _description(stack, state) if lib is not None else None
    if description is None or (description.weight_bytes > SMALL_STACK_BYTES and torch.get_num_threads() != 1):
        return None
    blocks = description.blocks
    if inputs.rotation is None or inputs.masks or state.offset.shape[0] != B:
        return None  # positions other than RoPE (the block check refuses them too)
    cos, sin = inputs.rotation  # [1|B, 1, T, hd/2] each
    if cos.dtype != torch.float32 or cos.shape[0] not in (1, B) or cos.shape != sin.shape:
        return None
    caches = state.kv
    first = blocks[0]
    cache_shape = (B, first.n_kv_heads, state.slot_pos.shape[1], first.head_dim)
    if any(not isinstance(c, KVState) or not (_plain(c.k, cache_shape) and _plain(c.v, cache_shape)) for c in caches):
        return None
    if any(g is not None and not _plain(g, (B, 1, D)) for g in gains):
        return None  # e.g. one delay broadcast over the batch: the modules broadcast, the kernel does not
    announce("block_step", "c-kernel")
    capacity = state.slot_pos.shape[1]
    scratch = state.fused.get("scratch")
    assert scratch is None or isinstance(scratch, torch.Tensor)
    need = lib.block_step_scratch(ROWS_MAX, D, first.n_heads, first.n_kv_heads, first.head_dim, first.hidden, capacity)
    if scratch is None or scratch.numel() < need:
        scratch = state.fused["scratch"] = torch.empty(need, dtype=torch.float32)  # once per session
    out = x.clone(memory_format=torch.contiguous_format)  # [B, T, D] updated in place by every block
    rotation = torch.stack((cos, sin), dim=-1)  # [1|B, 1, T, hd/2, 2] (cos, sin) pairs, as the kernel reads them
    slots, positions = plan.slots.contiguous(), plan.positions.contiguous()  # [B, T] int64
    step = _Step(B, T, capacity, plan.used)
    step.x, step.rotation, step.rot_batch = out.data_ptr(), rotation.data_ptr(), rotation.shape[0]
    step.slots, step.positions, step.slot_pos = slots.data_ptr(), positions.data_ptr(), state.slot_pos.data_ptr()
    step.scratch = scratch.data_ptr()
    run: Callable[..., None] = lib.block_step
    for block, cache, gain in zip(blocks, caches, gains, strict=True):
        step.gain = None if gain is None else gain.data_ptr()
        step.k_cache, step.v_cache = cache.k.data_ptr(), cache.v.data_ptr()
        run(ctypes.byref(block), ctypes.byref(step))
    return out
