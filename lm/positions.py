"""Position information other than RoPE: ALiBi attention biases and Whisper's sinusoidal table.

Why two more kinds: the codec's windowed attention uses ALiBi (a per-head linear penalty on the
distance between query and key, so it needs no table and extrapolates to any stream length), and
a Whisper-style encoder adds a fixed sinusoidal table to its input (absolute positions, ending at
the table's length). RoPE lives in :mod:`voxkit.lm.rope`.

Positions are tensors of absolute positions, as everywhere in lm/: offline ``arange(T)``, in a
streaming step ``StepPlan.positions`` [B, T] for the queries and the ring's ``slot_pos`` [B, S]
for the keys, where ``-1`` marks an empty slot (lm/cache.py). :func:`position_mask` and
:func:`alibi_bias` treat a negative key position as "no key here", so the ring needs no separate
validity mask.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def alibi_slopes(n_heads: int, first: int = 1) -> torch.Tensor:
    """The ALiBi paper's per-head slopes, [n_heads] float32.

    For a power of two n the slopes are the geometric sequence ``2^(-8 i / n)``, i = 1..n. For
    other counts the paper takes the sequence of the largest power of two m < n and completes it
    with every other slope of the sequence for 2m (the odd ones: ``2^(-8 (2j + 1) / (2m))``), so
    that the extra heads interleave with the first ones instead of all being flatter.
    ``first`` = 0 starts every sequence at i = 0 (a first slope of 1), as the published codec does.
    """
    if n_heads < 1:
        raise ValueError(f"ALiBi needs at least one head, got {n_heads}")

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * i / n) for i in range(first, n + first)]

    m = 2 ** math.floor(math.log2(n_heads))
    slopes = geometric(m)
    if m < n_heads:
        slopes += geometric(2 * m)[0::2][: n_heads - m]
    return torch.tensor(slopes, dtype=torch.float32)  # [H]


def _as_batched(positions: torch.Tensor, name: str) -> torch.Tensor:
    """[N] or [B, N] -> [1|B, N]."""
    if positions.dim() == 1:
        return positions[None]
    if positions.dim() != 2:
        raise ValueError(f"{name} must be [N] or [B, N], got shape {tuple(positions.shape)}")
    return positions


def position_mask(
    query_positions: torch.Tensor, key_positions: torch.Tensor, *, causal: bool, window: int | None = None
) -> torch.Tensor:
    """Which keys each query may attend to, from absolute positions: [1|B, 1, T, S] bool.

    query_positions: [T] or [B, T]; key_positions: [S] or [B, S] (negative: empty slot, never
    attended). Causal: ``q - window < k <= q``; bidirectional: ``|q - k| < window``; no window:
    no distance limit. The same rule as the ring cache's step mask and the offline band mask.
    """
    if window is not None and window < 1:
        raise ValueError(f"an attention window must be >= 1, got {window}")
    q = _as_batched(query_positions, "query_positions")[:, None, :, None]  # [1|B, 1, T, 1]
    k = _as_batched(key_positions, "key_positions")[:, None, None, :]  # [1|B, 1, 1, S]
    distance = q - k  # [1|B, 1, T, S]
    allowed = k >= 0
    if causal:
        allowed = allowed & (distance >= 0)
        if window is not None:
            allowed = allowed & (distance < window)
    elif window is not None:
        allowed = allowed & (distance.abs() < window)
    return allowed


def alibi_bias(
    slopes: torch.Tensor,
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    *,
    causal: bool,
    window: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Additive attention bias [1|B, H, T, S]: ``-slope_h * (q - k)``, -inf where not allowed.

    slopes: [H] (:func:`alibi_slopes`); positions as in :func:`position_mask`, which decides where
    the bias is -inf. A bidirectional stack penalises the distance both ways, ``-slope_h * |q - k|``.
    The distance is taken in integers before the cast, so positions of a stream of hours lose no
    precision. Every query must be allowed at least one key (a query sees itself in any stack) or
    its softmax row is undefined.
    """
    if slopes.dim() != 1:
        raise ValueError(f"slopes must be [H], got shape {tuple(slopes.shape)}")
    allowed = position_mask(query_positions, key_positions, causal=causal, window=window)  # [1|B, 1, T, S]
    q = _as_batched(query_positions, "query_positions")[:, None, :, None]  # [1|B, 1, T, 1]
    k = _as_batched(key_positions, "key_positions")[:, None, None, :]  # [1|B, 1, 1, S]
    distance = q - k if causal else (q - k).abs()  # [1|B, 1, T, S] integer
    bias = -slopes.to(dtype)[None, :, None, None] * distance.to(dtype)  # [1|B, H, T, S]
    return bias.masked_fill(~allowed, float("-inf"))


class ALiBi(nn.Module):
    """The slopes of one stack's heads, with :func:`alibi_bias` for given positions.

    The slopes follow from the head count, so they are a non-persistent buffer (not in
    checkpoints), rebuilt by :meth:`init_buffers` after a meta-device load.
    """

    slopes: torch.Tensor

    def __init__(self, n_heads: int, first: int = 1) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.first = first
        self.register_buffer("slopes", alibi_slopes(n_heads, first), persistent=False)

    def init_buffers(self, device: torch.device) -> None:
        """Recompute the non-persistent buffer after a model was built on the meta device."""
        self.slopes = alibi_slopes(self.n_heads, self.first).to(device)

    def forward(
        self,
        query_positions: torch.Tensor,
        key_positions: torch.Tensor,
        *,
        causal: bool,
        window: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """[1|B, H, T, S] additive bias (see :func:`alibi_bias`)."""
        return alibi_bias(self.slopes, query_positions, key_positions, causal=causal, window=window, dtype=dtype)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's absolute position table [length, channels] float32: ``[sin(p w), cos(p w)]``.

    ``w_i = exp(-i log(max_timescale) / (channels/2 - 1))``, i = 0..channels/2 - 1, so the first
    channel pair turns once per 2 pi positions and the last one once per 2 pi max_timescale. sin
    halves first, cos halves second (concatenated, not interleaved), as in Whisper's checkpoints.
    """
    if channels % 2 or channels < 4:
        raise ValueError(f"a sinusoidal table needs an even channel count >= 4, got {channels}")
    if length < 1:
        raise ValueError(f"a sinusoidal table needs at least one row, got {length}")
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))  # [C/2]
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]  # [L, C/2]
    return torch.cat((angles.sin(), angles.cos()), dim=1)  # [L, C]


class SinusoidalPositions(nn.Module):
    """A sinusoidal table of ``length`` rows, looked up by absolute position (Whisper's encoder).

    The table follows from (length, dim), so it is a non-persistent buffer rebuilt by
    :meth:`init_buffers` after a meta-device load; checkpoints that store it (Whisper keeps it as
    ``positional_embedding``) can be checked against :func:`sinusoids` and the copy dropped.
    Positions past the table are an error, not a wrap-around: the model never saw them.
    """

    table: torch.Tensor

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.length, self.dim = length, dim
        self.register_buffer("table", sinusoids(length, dim), persistent=False)

    def init_buffers(self, device: torch.device) -> None:
        """Recompute the non-persistent buffer after a model was built on the meta device."""
        self.table = sinusoids(self.length, self.dim).to(device)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """positions [T] or [B, T] (integers) -> embeddings [T, D] or [B, T, D] in the table's dtype."""
        if not torch.compiler.is_compiling() and positions.numel():
            low, high = int(positions.min()), int(positions.max())
            if low < 0 or high >= self.length:
                raise ValueError(
                    f"positions {low}..{high} are outside the sinusoidal table of {self.length} rows (max_seq_len)"
                )
        return self.table[positions]  # [(B,) T, D]
