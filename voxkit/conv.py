"""Causal convolutions that stream: the shared conv layers of the recogniser's stem and the codec.

A causal convolution pads on the left only, so an output frame never depends on later input. In
streaming mode the left padding is replaced by the stream's own past: the module keeps the last
``left_pad`` input frames in the caller's :class:`ConvTailState` and prepends them to the next
chunk, which makes chunked processing equal to the one-shot result. The state belongs to the
caller (voxkit/streaming.py), so one loaded model serves any number of streams.

The stream's very first padding can be zeros (the recogniser's stem), a copy of the first frame
(``"replicate"``) or its mirror image (``"reflect"``), as the published codec pads its convs. The
non-zero modes need the stream's first frames, so the state remembers, per stream, whether it has
started; the first chunk then builds the padding exactly as the one-shot call does.

A causal transposed convolution (upsampling in the codec's decoder) produces ``kernel - stride``
output samples per input frame that overlap the next frame's output. One-shot, the overlap after
the last frame is trimmed (it would need input that never came); streaming, it is held in the
state and added to the next chunk's first samples, so both give the same signal.

Weight norm (the published codec's convs) recomputes ``g * v / |v|`` at every call; a model loaded
for inference folds it into plain weights once (:func:`fold_weight_norm`), while training and
saving keep the parametrization and its published key names.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from voxkit.streaming import StreamingModule, StreamingState

PadMode = Literal["zeros", "replicate", "reflect"]
PAD_MODES: tuple[str, ...] = ("zeros", "replicate", "reflect")

PRODUCT_MAX_ROWS = 64
"""Most output frames (all streams of a chunk together) for which a streaming CPU conv is one
matrix product instead of torch's conv (:meth:`CausalConv1d._chunk_conv`)."""


@dataclasses.dataclass
class ConvTailState(StreamingState):
    """The last input frames of a causal conv, per stream."""

    tail: torch.Tensor  # [B, C_in, left_pad] last input frames (zeros at stream start)
    # [B] bool: the stream has produced output (its tail holds real frames, not the start padding)
    started: torch.Tensor


@dataclasses.dataclass
class OverlapState(StreamingState):
    """The overlapping output a causal transposed conv owes the next chunk, per stream."""

    overlap: torch.Tensor  # [B, C_out, kernel - stride] partial sums (no bias), zeros at stream start


def _check_pad_mode(pad_mode: str) -> None:
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {pad_mode!r}")


class CausalConv1d(StreamingModule):
    """Conv1d with left padding ``kernel - stride``: ``[B, C_in, T] -> [B, C_out, T // stride]``.

    Stored as ``conv`` so native keys read ``....conv.weight`` (the recogniser's stem) or, with
    weight norm, ``....conv.parametrizations.weight.original0/1`` (the published codec's convs).
    Streaming chunks must hold a multiple of ``stride`` frames, so a stream's chunks line up with
    the one-shot frames (one-shot, a last incomplete stride is dropped, as Conv1d does).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        pad_mode: PadMode = "zeros",
        weight_norm: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_pad_mode(pad_mode)
        if kernel_size < stride:
            raise ValueError(f"kernel_size ({kernel_size}) must be >= stride ({stride})")
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        self.conv = _weight_norm(conv) if weight_norm else conv
        self.left_pad = kernel_size - stride
        self.stride = stride
        self.pad_mode = pad_mode

    def init_state(self, batch_size: int, dtype: torch.dtype | None = None) -> ConvTailState:
        w = self.conv.weight
        tail = torch.zeros(batch_size, w.shape[1], self.left_pad, dtype=dtype or w.dtype, device=w.device)
        return ConvTailState(tail=tail, started=torch.zeros(batch_size, dtype=torch.bool, device=w.device))

    def _start_padding(self, x: torch.Tensor) -> torch.Tensor:
        """The padding a stream starts with, from its first frames x [B, C, T] -> [B, C, left_pad]."""
        if self.pad_mode == "zeros" or self.left_pad == 0:
            return x.new_zeros(x.shape[0], x.shape[1], self.left_pad)
        if self.pad_mode == "replicate":
            return x[..., :1].expand(-1, -1, self.left_pad)
        if x.shape[-1] <= self.left_pad:
            raise ValueError(f"reflect padding needs at least {self.left_pad + 1} frames in a stream's first chunk, got {x.shape[-1]}")
        return x[..., 1 : self.left_pad + 1].flip(-1)  # mirror around the first frame

    def forward(self, x: torch.Tensor, state: ConvTailState | None = None) -> torch.Tensor:
        """x: [B, C_in, T] -> [B, C_out, T // stride] (streaming: T a multiple of stride)."""
        if state is None:
            return self.conv(torch.cat([self._start_padding(x), x], dim=-1))  # [B, C_out, T // stride]
        if x.shape[-1] % self.stride:
            raise ValueError(f"streaming chunks must hold a multiple of {self.stride} frames, got {x.shape[-1]}")
        if self.left_pad == 0:
            return self._chunk_conv(x)
        if self.pad_mode != "zeros":
            fresh = ~state.started  # [B]
            if bool(fresh.any()):  # once per stream start, never per step of a running stream
                start = self._start_padding(x).to(state.tail.dtype)  # [B, C_in, left_pad]
                state.tail.copy_(torch.where(fresh[:, None, None], start, state.tail))
        padded = torch.cat([state.tail, x], dim=-1)  # [B, C_in, left_pad + T]
        state.tail.copy_(padded[..., padded.shape[-1] - self.left_pad :])
        state.started.fill_(True)
        return self._chunk_conv(padded)

    def _chunk_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The conv of a streaming chunk x [B, C_in, T] (padding included) -> [B, C_out, T']: on a
        CPU, for a chunk of few frames, one product of the unfolded frames with the flattened kernel.

        Why: torch's CPU conv of a few frames takes a slow generic path (the recogniser's two stem
        convs cost more per 80 ms step than its whole adapter); unfolding the frames and one matrix
        product is the same sum in another order (equal to float rounding). Over many frames
        torch's conv is the faster one again (docs/benchmarks.md), hence :data:`PRODUCT_MAX_ROWS`.
        """
        B, C_in, T = x.shape
        weight, bias = self.conv.weight, self.conv.bias  # [C_out, C_in, K], [C_out]
        C_out, K = weight.shape[0], weight.shape[2]
        T_out = (T - K) // self.stride + 1
        if x.device.type != "cpu" or B * T_out > PRODUCT_MAX_ROWS:
            return self.conv(x)
        cols = x.unfold(2, K, self.stride)  # [B, C_in, T', K]
        cols = cols.permute(0, 2, 1, 3).reshape(B * T_out, C_in * K)  # [B T', C_in K] in the weight's order
        flat = weight.reshape(C_out, C_in * K).t()  # [C_in K, C_out]
        out = cols @ flat if bias is None else torch.addmm(bias, cols, flat)  # [B T', C_out]
        return out.view(B, T_out, C_out).transpose(1, 2)  # [B, C_out, T']


class CausalConvTranspose1d(StreamingModule):
    """ConvTranspose1d trimmed on the right: ``[B, C_in, T] -> [B, C_out, T * stride]``.

    Output sample ``t`` depends on input frames up to ``t // stride`` only (the right trim drops
    the ``kernel - stride`` samples that reach into the next frame), so upsampling stays causal.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *, weight_norm: bool = False, bias: bool = True
    ) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError(f"kernel_size ({kernel_size}) must be >= stride ({stride})")
        conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        self.conv = _weight_norm(conv) if weight_norm else conv
        self.stride = stride
        self.overlap = kernel_size - stride

    def init_state(self, batch_size: int, dtype: torch.dtype | None = None) -> OverlapState:
        w = self.conv.weight  # [C_in, C_out, K]
        return OverlapState(overlap=torch.zeros(batch_size, w.shape[1], self.overlap, dtype=dtype or w.dtype, device=w.device))

    def forward(self, x: torch.Tensor, state: OverlapState | None = None) -> torch.Tensor:
        """x: [B, C_in, T] -> [B, C_out, T * stride]."""
        T = x.shape[-1]
        n = T * self.stride
        if state is None:
            return self.conv(x)[..., :n]  # [B, C_out, T * stride]
        bias = self.conv.bias
        weight = self.conv.weight  # [C_in, C_out, K]
        if weight.shape[-1] % self.stride == 0:
            full = _overlap_add(x, weight, self.stride)  # [B, C_out, n + overlap] no bias
        else:
            full = F.conv_transpose1d(x, weight, None, stride=self.stride)  # [B, C_out, n + overlap] no bias
        if self.overlap:
            full[..., : self.overlap] += state.overlap  # what the previous chunk's last frames owe
            state.overlap.copy_(full[..., n:])
        out = full[..., :n]  # [B, C_out, n]
        return out if bias is None else out + bias[None, :, None]


def _overlap_add(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """``conv_transpose1d(x, weight, stride=stride)`` for a kernel of ``taps * stride`` samples.

    Why: on a CPU, torch's transposed conv of a streaming chunk's few frames takes a slow generic
    path; one product of every frame with the whole kernel, then ``taps`` shifted adds (2 for the
    codec's kernel 4, stride 2), is the same sum in another order (equal to float rounding).
    x [B, C_in, T], weight [C_in, C_out, K] -> [B, C_out, (T + taps - 1) * stride].
    """
    B, C_in, T = x.shape
    C_out, K = weight.shape[1], weight.shape[2]
    taps = K // stride
    z = torch.matmul(x.transpose(1, 2), weight.reshape(C_in, C_out * K))  # [B, T, C_out * K]
    z = z.view(B, T, C_out, taps, stride).permute(0, 2, 3, 1, 4)  # [B, C_out, taps, T, stride]
    full = x.new_empty(B, C_out, T + taps - 1, stride)  # [B, C_out, T + taps - 1, stride]
    full[:, :, :T] = z[:, :, 0]  # tap 0 of frame t lands on output frame t
    full[:, :, T:] = 0.0
    for j in range(1, taps):  # tap j of frame t lands on output frame t + j
        full[:, :, j : j + T] += z[:, :, j]
    return full.view(B, C_out, (T + taps - 1) * stride)


def fold_weight_norm(model: nn.Module) -> int:
    """Replace every weight-normed conv's ``g * v / |v|`` by the plain weight it computes, in place.

    Why: the parametrization recomputes the weight at every call, which a streaming step pays for
    on every 80 ms frame; an inference model's weights never change, so it is computed once. The
    folded model gives the same outputs, but its state dict has plain ``conv.weight`` keys: training
    keeps the parametrization (and the codec's ``save_codec`` writes a folded codec back in the
    weight-norm keys). Returns the number of convs folded.
    """
    folded = 0
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)) and parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            folded += 1
    return folded
