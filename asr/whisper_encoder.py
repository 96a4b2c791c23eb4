"""Whisper's bidirectional audio encoder as a configuration of voxkit's Transformer.

Why one module: the same stack serves as the recogniser's frozen distillation teacher
(:class:`voxkit.asr.whisper.WhisperTeacher`, weights from a CTranslate2 Whisper model) and as the
audio encoder of the chat model (Voxtral Mini's encoder is Whisper large-v3's). The stack is
:class:`voxkit.lm.Transformer` with LayerNorm, a GELU MLP, Whisper's bias pattern, an absolute
sinusoidal table of ``n_ctx`` rows and no causal mask; the stem is two convolutions of kernel 3
with one frame of padding on both sides (the second halves the frame rate).

Whisper only ever saw whole windows of ``2 * n_ctx`` mel frames (30 s), so the forward pads a
shorter input with ``pad_value`` and cuts a longer one into consecutive windows that run as one
batch: a frame never sees past its own window's edges.

transformers' Whisper and Voxtral encoders name the same weights ``conv1``, ``self_attn.*_proj``,
``fc1``/``fc2``, ``*_layer_norm`` and keep the table as ``embed_positions.weight``; the two key
maps at the end of this file translate, for every loader of such folders.
"""

from __future__ import annotations

import dataclasses
import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.lm import Transformer, TransformerArgs


@dataclasses.dataclass(frozen=True)
class WhisperDims:
    """The sizes of a Whisper encoder (tiny.en: 384 wide, 4 layers, 6 heads of 64, MLP 1536, 80 mels)."""

    dim: int
    n_layers: int
    n_heads: int
    hidden_dim: int
    n_mels: int
    n_ctx: int  # rows of the position table: 50 Hz frames of one 30 s window

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


def whisper_stack_args(dims: WhisperDims, *, norm_eps: float = 1e-5) -> TransformerArgs:
    """Whisper's own encoder stack: bidirectional, absolute sinusoidal positions over one 30 s window."""
    return TransformerArgs(
        dim=dims.dim, n_layers=dims.n_layers, head_dim=dims.head_dim, hidden_dim=dims.hidden_dim,
        n_heads=dims.n_heads, n_kv_heads=dims.n_heads, norm_eps=norm_eps, vocab_size=0, use_biases=True, norm="layer",
        mlp="gelu", positions="sinusoidal", max_seq_len=dims.n_ctx, causal=False,
    )


class PaddedConv(nn.Module):
    """Whisper's stem conv: kernel 3, one frame of padding on BOTH sides (one frame of look-ahead).

    Stored as ``conv`` so that the keys read ``conv_layers.{i}.conv.*``, as the causal encoder's.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, 3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.conv(x))  # [B, C_out, T // stride] exact (erf) GELU as Whisper


class WhisperEncoder(nn.Module):
    """log-mel [B, n_mels, T] -> encoder states [B, T // 2, dim], in windows of ``2 * n_ctx`` frames.

    ``args`` must describe a bidirectional stack with sinusoidal positions (see
    :func:`whisper_stack_args`); its ``max_seq_len`` is the window's length in output frames.
    """

    def __init__(self, args: TransformerArgs, n_mels: int, *, pad_value: float = 0.0) -> None:
        super().__init__()
        if args.causal or args.positions != "sinusoidal" or not args.max_seq_len:
            raise ValueError("a Whisper encoder is bidirectional with a sinusoidal table (positions='sinusoidal', max_seq_len)")
        self.dim, self.n_mels = args.dim, n_mels
        self.window_frames = 2 * int(args.max_seq_len)  # mel frames of one window (the second conv halves them)
        self.pad_value = float(pad_value)
        self.conv_layers = nn.ModuleList([PaddedConv(n_mels, args.dim, 1), PaddedConv(args.dim, args.dim, 2)])
        self.transformer = Transformer(dataclasses.replace(args, vocab_size=0, tied_embeddings=False))

    @property
    def position_table(self) -> torch.Tensor:
        """The absolute table [n_ctx, dim] added after the stem (a buffer, not a saved weight)."""
        positions = self.transformer.abs_positions
        assert positions is not None
        return positions.table

    def set_position_table(self, table: torch.Tensor) -> None:
        """Use a stored table (transformers keeps one per checkpoint) instead of the formula's."""
        current = self.position_table
        if table.shape != current.shape:
            raise ValueError(f"position table {list(table.shape)} does not fit the encoder's {list(current.shape)}")
        positions = self.transformer.abs_positions
        assert positions is not None
        positions.table = table.to(device=current.device, dtype=current.dtype)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, n_mels, T] (voxkit's normalised log-mel at 100 frames/s) -> states [B, T // 2, dim]."""
        B, n_mels, T = mel.shape
        if n_mels != self.n_mels:
            raise ValueError(f"this Whisper encoder takes {self.n_mels} mel bins, got {n_mels}")
        weight = self.conv_layers[0].conv.weight
        if T < 2:
            return weight.new_zeros(B, 0, self.dim)
        W = self.window_frames
        n = math.ceil(T / W)
        x = mel.to(weight.dtype)
        if n * W != T:
            x = F.pad(x, (0, n * W - T), value=self.pad_value)  # [B, C, n W]
        x = x.reshape(B, n_mels, n, W).transpose(1, 2).reshape(B * n, n_mels, W)  # [B n, C, W]: windows batched
        for conv in self.conv_layers:
            x = conv(x)  # [B n, D, W] then [B n, D, W / 2]
        hidden = self.transformer.forward_embeddings(x.transpose(1, 2))  # [B n, W / 2, D]
        return hidden.reshape(B, n * W // 2, self.dim)[:, : T // 2]  # [B, T // 2, D]


# ----------------------------------------------------------------------------- transformers' names

_HF_WHISPER = [  # (transformers' Whisper encoder key, voxkit WhisperEncoder key)
    (r"conv1\.(weight|bias)", r"conv_layers.0.conv.\1"),
    (r"conv2\.(weight|bias)", r"conv_layers.1.conv.\1"),
    (r"layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", r"transformer.layers.\1.attention.w\2.\3"),
    (r"layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)", r"transformer.layers.\1.attention.wo.\2"),
    (r"layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"transformer.layers.\1.attention_norm.\2"),
    (r"layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"transformer.layers.\1.ffn_norm.\2"),
    (r"layers\.(\d+)\.fc1\.(weight|bias)", r"transformer.layers.\1.feed_forward.w1.\2"),
    (r"layers\.(\d+)\.fc2\.(weight|bias)", r"transformer.layers.\1.feed_forward.w2.\2"),
    (r"layer_norm\.(weight|bias)", r"transformer.norm.\1"),
    (r"embed_positions\.weight", "transformer.abs_positions.table"),
]


def hf_whisper_to_module(rest: str) -> str | None:
    """One transformers Whisper-encoder key (without its prefix) -> voxkit's, or None if unknown."""
    for pattern, repl in _HF_WHISPER:
        if re.fullmatch(pattern, rest):
            return re.sub(pattern, repl, rest)
    return None


def module_to_hf_whisper(key: str) -> str:
    """voxkit WhisperEncoder key -> transformers' (inverse of :func:`hf_whisper_to_module`)."""
    rules = [
        (r"conv_layers\.0\.conv\.(weight|bias)", r"conv1.\1"),
        (r"conv_layers\.1\.conv\.(weight|bias)", r"conv2.\1"),
        (r"transformer\.layers\.(\d+)\.attention\.w([qkv])\.(weight|bias)", r"layers.\1.self_attn.\2_proj.\3"),
        (r"transformer\.layers\.(\d+)\.attention\.wo\.(weight|bias)", r"layers.\1.self_attn.out_proj.\2"),
        (r"transformer\.layers\.(\d+)\.attention_norm\.(weight|bias)", r"layers.\1.self_attn_layer_norm.\2"),
        (r"transformer\.layers\.(\d+)\.ffn_norm\.(weight|bias)", r"layers.\1.final_layer_norm.\2"),
        (r"transformer\.layers\.(\d+)\.feed_forward\.w1\.(weight|bias)", r"layers.\1.fc1.\2"),
        (r"transformer\.layers\.(\d+)\.feed_forward\.w2\.(weight|bias)", r"layers.\1.fc2.\2"),
        (r"transformer\.norm\.(weight|bias)", r"layer_norm.\1"),
    ]
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    raise ValueError(f"no transformers name for encoder key {key}")
