"""The single attention entry point of voxkit.

All transformer stacks call :func:`attention`; faster backends (flash-attn, FlexAttention, CUDA
kernels) register here (:mod:`voxkit.ops.registry`) without touching the models. The reference is
PyTorch SDPA: with the built-in causal mask where nothing else cuts the sequence, else with one
explicit mask built from the caller's mask or bias, causality and window.

Positions: the T queries are the LAST T of the S keys' positions (query i sits at ``S - T + i``),
so that a decode step against a cache and an offline forward (T == S) follow one rule. Causal:
key j is visible from query position p when ``j <= p``; a window W keeps ``p - W < j`` (causal)
or ``|p - j| < W`` (bidirectional): W keys including itself, as Mistral's sliding window counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from voxkit.ops import registry
from voxkit.ops.dispatch import kernels_enabled


def band_mask(T: int, S: int, causal: bool, window: int | None, device: torch.device) -> torch.Tensor:
    """[T, S] bool, True where query i (at position ``S - T + i``) may see key j (see the module doc)."""
    query_pos = torch.arange(T, device=device)[:, None] + (S - T)  # [T, 1]
    key_pos = torch.arange(S, device=device)[None, :]  # [1, S]
    distance = query_pos - key_pos  # [T, S]
    if causal:
        allowed = distance >= 0
        return allowed & (distance < window) if window is not None else allowed
    assert window is not None, "a bidirectional band needs a window"
    return distance.abs() < window


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    window: int | None,
    scale: float | None,
) -> torch.Tensor:
    """q [B, H, T, hd]; k, v [B, Hkv, S, hd] -> [B, H, T, hd] (see :func:`attention`)."""
    T, S = q.shape[-2], k.shape[-2]
    if window is not None or (is_causal and (mask is not None or T != S)):
        band = band_mask(T, S, is_causal, window, q.device)  # [T, S]
        if mask is None:
            mask = band
        elif mask.dtype == torch.bool:
            mask = mask & band  # [..., T, S]
        else:
            mask = torch.where(band, mask, float("-inf"))  # [..., T, S]
        is_causal = False  # the band holds it
    if mask is not None and mask.dtype != torch.bool and mask.dtype != q.dtype:
        mask = mask.to(q.dtype)  # SDPA adds a float bias in the query's dtype
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale, enable_gqa=q.shape[1] != k.shape[1]
    )


ATTENTION = registry.define("attention", attention_reference)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    window: int | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Grouped-query attention.

    q: [B, H, T, hd]; k, v: [B, Hkv, S, hd] with H a multiple of Hkv (query head h reads key head
    ``h // (H / Hkv)``). mask: bool, True where attending is allowed, or a float bias added to the
    scores (ALiBi), broadcastable to [B, H, T, S]; combined with ``is_causal`` and ``window`` (see
    the module doc for their positions). scale: of the scores, default ``hd ** -0.5``.
    Returns [B, H, T, hd].
    """
    return ATTENTION(q, k, v, mask, is_causal, window, scale)


def takes_windows(device: torch.device) -> bool:
    """Whether callers on ``device`` should pass ``window`` and ``is_causal`` instead of a band
    mask they built themselves.

    True where an implementation of attention is registered for the device type, not yet found
    unavailable on this machine, and kernels are on: only a window passed as a number lets a
    windowed kernel (flash-attn, FlexAttention) skip the blocks outside it. Elsewhere the
    reference would rebuild the band on every call, so a caller with many layers builds it once
    and passes it as ``mask``. (Availability is read as already found, never checked here: this
    runs inside compiled forwards too.)
    """
    chain = ATTENTION.implementations.get(device.type, ())
    return kernels_enabled() and any(i.known_available() is not False for i in chain)
