"""Windowed attention on CUDA: flash-attn where it is importable, else FlexAttention.

Why: the reference (:mod:`voxkit.ops.attention`) runs a sliding window as SDPA with an explicit
[T, S] bool mask, which reads the whole mask and computes every score outside the window too.
flash-attn takes the window as two integers and skips the blocks outside it; FlexAttention does the
same from a block mask built once per shape. flash-attn also takes plain causal attention (16-bit);
FlexAttention leaves it to the reference, whose built-in causal SDPA path is already a flash kernel.

Both implementations take only what they compute exactly and decline the rest, so the reference
runs there: any explicit mask (ALiBi biases, the ring cache's masks: their order is the ring's, not
the positions'), more queries than keys, and calls that record gradients (neither brings a backward
of its own, and the registry's fallback backward reruns the reference's forward, so training keeps
SDPA with its fused backward; under ``torch.compile`` the registry traces the reference for such
calls). Optional imports stay lazy: importing this module imports neither flash-attn nor
FlexAttention.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import torch

from voxkit.ops import registry
from voxkit.ops.attention import attention_reference

log = logging.getLogger("voxkit.ops")

FLASH_DTYPES = (torch.float16, torch.bfloat16)
FLASH_MAX_HEAD_DIM = 256  # flash-attn 2 checks head_size <= 256
FLEX_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
FLEX_MIN_HEAD_DIM = 16  # Triton's tl.dot: the compiled kernel refuses smaller embedding sizes
FLEX_MAX_HEAD_DIM = 256
BLOCK_MASK_CACHE = 64  # block masks kept per process (one per (T, S, window, causal, device))


def _records_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def plain_band(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    window: int | None,
    scale: float | None,
) -> bool:
    """Whether the call is causality and/or a window alone (no explicit mask) on well-formed
    tensors with every query row non-empty: the case both backends compute exactly.

    More queries than keys (T > S) is declined: the first queries' positions would be negative,
    their rows empty, and the reference gives NaN there where flash-attn gives zeros.
    """
    if mask is not None or (window is not None and window < 1):
        return False
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return False
    B, H, T, hd = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    if T == 0 or S == 0 or T > S or B == 0 or Hkv == 0 or H % Hkv:
        return False
    if k.shape != (B, Hkv, S, hd) or v.shape != (B, Hkv, S, hd):
        return False
    if k.dtype != q.dtype or v.dtype != q.dtype or k.device != q.device or v.device != q.device:
        return False
    return not _records_grad(q, k, v)


# ----------------------------------------------------------------------------- flash-attn


def flash_arguments(is_causal: bool, window: int | None) -> tuple[bool, tuple[int, int]]:
    """voxkit's (is_causal, window) as flash-attn's (causal, window_size).

    flash-attn (``flash_attn_func``'s docstring, flash_attn/flash_attn_interface.py): with
    window_size = (left, right), query i, at position ``i + S - T`` (bottom-right aligned, as
    voxkit's queries are the last T of S positions), attends to keys in
    ``[i + S - T - left, i + S - T + right]`` inclusive; -1 means unbounded; causal=True also
    requires key <= query position (the C++ side sets right to 0). voxkit's window W keeps
    ``p - W < j`` (causal) or ``|p - j| < W``: W keys including the query's own position, so W - 1
    before it. Hence ``left = W - 1``; causal: ``right = 0``; bidirectional: ``right = W - 1``.
    No window: (-1, -1) (plus causal=True for a causal call).
    """
    left = -1 if window is None else window - 1
    right = 0 if is_causal else left
    return is_causal, (left, right)


def flash_applies(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    window: int | None,
    scale: float | None,
) -> bool:
    """No mask, 16-bit floats, head_dim <= 256 (flash-attn's limits); GQA natively."""
    return (
        q.dtype in FLASH_DTYPES
        and q.shape[-1] <= FLASH_MAX_HEAD_DIM
        and plain_band(q, k, v, mask, is_causal, window, scale)
    )


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    window: int | None,
    scale: float | None,
) -> torch.Tensor:
    """q [B, H, T, hd]; k, v [B, Hkv, S, hd] -> [B, H, T, hd] through ``flash_attn_func``.

    flash-attn's layout is [B, T, H, hd]: the transposes are views (it needs only the last
    dimension contiguous), and the result comes back as SDPA's does, [B, H, T, hd] over a
    [B, T, H, hd] buffer, so the caller's ``transpose(1, 2).reshape`` copies nothing.
    """
    from flash_attn import flash_attn_func

    causal, window_size = flash_arguments(is_causal, window)
    out = flash_attn_func(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), softmax_scale=scale, causal=causal, window_size=window_size
    )  # [B, T, H, hd]
    return out.transpose(1, 2)  # [B, H, T, hd]


def flash_available() -> bool:
    """flash-attn imports and runs on this GPU (one tiny call: its builds target given
    architectures, and an import can succeed where the kernels cannot run)."""
    if not torch.cuda.is_available():
        return False
    try:
        import flash_attn  # noqa: F401
    except Exception:  # ImportError, or a build that does not match this torch
        return False
    if torch.cuda.is_current_stream_capturing():
        # the trial call below synchronises, which a capture forbids (and False would be cached)
        raise RuntimeError("flash-attn is tried on its first call, which cannot be inside a CUDA graph capture: warm up first")
    try:
        gen = torch.Generator(device="cuda").manual_seed(0)  # never the user's random stream
        q = torch.randn(1, 2, 4, 64, device="cuda", dtype=torch.float16, generator=gen)  # [B, H, T, hd]
        k = torch.randn(1, 1, 4, 64, device="cuda", dtype=torch.float16, generator=gen)  # [B, Hkv, S, hd]
        out = flash_attention(q, k, k, None, True, 2, None)
        ref = attention_reference(q, k, k, None, True, 2, None)
        return bool(torch.allclose(out.float(), ref.float(), atol=2e-2, rtol=0))
    except Exception as error:  # noqa: BLE001 (an unsupported GPU raises from inside the extension)
        log.warning("flash-attn is installed but does not run here (%s): attention uses SDPA/FlexAttention", error)
        return False


# ----------------------------------------------------------------------------- FlexAttention


def window_mask_mod(T: int, S: int, window: int | None, causal: bool) -> Callable[..., torch.Tensor]:
    """FlexAttention's ``mask_mod(b, h, q_idx, kv_idx)`` for voxkit's rule: query index i sits at
    position ``i + S - T``; causal keeps ``0 <= p - j < W``, bidirectional ``|p - j| < W``."""
    offset = S - T
    if causal and window is None:

        def causal_mod(b: Any, h: Any, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            return q_idx + offset >= kv_idx

        return causal_mod
    if window is None:
        raise ValueError("a bidirectional band needs a window")
    if causal:

        def causal_window_mod(b: Any, h: Any, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            distance = q_idx + offset - kv_idx
            return (distance >= 0) & (distance < window)

        return causal_window_mod

    def band_mod(b: Any, h: Any, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return (q_idx + offset - kv_idx).abs() < window

    return band_mod


@functools.lru_cache(maxsize=BLOCK_MASK_CACHE)
def block_mask(T: int, S: int, window: int | None, causal: bool, device: torch.device) -> Any:
    """The block mask of one band, shared by all batch items and heads; built once per key, so a
    model's layers and later forwards of the same length reuse it (and the compiled kernel, which
    guards on its mask function, is not recompiled for a new but equal mask)."""
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(window_mask_mod(T, S, window, causal), None, None, T, S, device=device)


class FlexWindowAttention:
    """FlexAttention with a block mask for causal bands that SDPA's built-in causal mask does not
    cover (a window, or fewer queries than keys) and for bidirectional windows.

    ``compiled``: through ``torch.compile(flex_attention)`` (the fast path; eager FlexAttention
    materialises the scores, so it serves tests on the CPU). Each new shape compiles a kernel
    (shapes are static: ``dynamic=False``); after ``max_shapes`` of them further shapes go to the
    reference instead of into Dynamo's recompile limit, past which it would run the slow eager
    path. A compiled call that fails (no Triton, an unsupported GPU) logs once, falls back to the
    reference and turns this path off for the process.
    """

    def __init__(self, compiled: bool = True, max_shapes: int | None = None) -> None:
        self.compiled = compiled
        self.max_shapes = max_shapes
        self.shapes: set[tuple[Any, ...]] = set()
        self.broken = False

    def _limit(self) -> int:
        if self.max_shapes is not None:
            return self.max_shapes
        import torch._dynamo.config

        return int(getattr(torch._dynamo.config, "recompile_limit", getattr(torch._dynamo.config, "cache_size_limit", 8)))

    @staticmethod
    def shape_key(q: torch.Tensor, k: torch.Tensor, is_causal: bool, window: int | None, scale: float | None) -> tuple[Any, ...]:
        """What a compiled kernel is specialised on (one entry of :attr:`shapes`): Dynamo also
        guards on the layouts and on the grad/inference mode, so they count as shapes too."""
        modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled())
        return (tuple(q.shape), k.shape[1], k.shape[2], q.stride(), k.stride(), q.dtype, q.device, is_causal, window, scale, modes)

    def applies(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        window: int | None,
        scale: float | None,
    ) -> bool:
        """A band the reference would build as an explicit mask; dtypes and head sizes the compiled
        kernel takes; query heads per key head a power of two (the compiled decoding kernel, used
        for fewer than 128 queries, requires it)."""
        if self.broken or not plain_band(q, k, v, mask, is_causal, window, scale):
            return False
        T, S, hd = q.shape[2], k.shape[2], q.shape[3]
        if window is None and (not is_causal or T == S):
            return False  # no band: plain SDPA (built-in causal or no mask) is the reference
        if q.dtype not in FLEX_DTYPES or not FLEX_MIN_HEAD_DIM <= hd <= FLEX_MAX_HEAD_DIM:
            return False
        group = q.shape[1] // k.shape[1]
        if group & (group - 1):
            return False
        if self.compiled:
            return self.shape_key(q, k, is_causal, window, scale) in self.shapes or len(self.shapes) < self._limit()
        return True

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        window: int | None,
        scale: float | None,
    ) -> torch.Tensor:
        """q [B, H, T, hd]; k, v [B, Hkv, S, hd] -> [B, H, T, hd] (a new tensor laid out like q)."""
        T, S = q.shape[2], k.shape[2]
        blocks = block_mask(T, S, window, is_causal, q.device)
        gqa = q.shape[1] != k.shape[1]
        if not self.compiled:
            from torch.nn.attention.flex_attention import flex_attention

            return flex_attention(q, k, v, block_mask=blocks, scale=scale, enable_gqa=gqa)
        self.shapes.add(self.shape_key(q, k, is_causal, window, scale))
        try:
            return _compiled_flex()(q, k, v, block_mask=blocks, scale=scale, enable_gqa=gqa)
        except Exception as error:  # noqa: BLE001 (compilation errors come in many types)
            self.broken = True
            log.warning("compiled FlexAttention failed (%s): windowed attention uses SDPA with a mask", error)
            return attention_reference(q, k, v, mask, is_causal, window, scale)


@functools.cache
def _compiled_flex() -> Callable[..., torch.Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_available() -> bool:
    """FlexAttention exists in this torch and a GPU is there to compile for."""
    if not torch.cuda.is_available():
        return False
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


FLASH_NAME = "flash-attn"
FLEX_NAME = "flex-attention"
FLEX = FlexWindowAttention(compiled=True)


def register() -> None:
    """Register both for CUDA: flash-attn tried first, FlexAttention after any other implementation."""
    registry.register_implementation("attention", "cuda", FLASH_NAME, flash_attention, applies=flash_applies, available=flash_available)
    registry.register_implementation(
        "attention", "cuda", FLEX_NAME, FLEX, applies=FLEX.applies, available=flex_available, first=False
    )


register()
