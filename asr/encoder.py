"""Causal audio encoder: causal conv stem (100 -> 50 Hz) + sliding-window causal transformer.

Causal convolutions pad on the left only, so an output frame never sees later input; in streaming
mode the module keeps the last ``left_pad`` input frames as state instead of padding with zeros,
which makes chunked processing equal to the one-shot result. The transformer is the shared
:class:`voxkit.lm.Transformer` with ``vocab_size = 0`` (its embeddings come from the stem). The
state lives in the caller's :class:`EncoderState`, never on the modules (voxkit/streaming.py).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from voxkit.conv import CausalConv1d, ConvTailState
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.cache import RingState
from voxkit.streaming import StreamingModule, StreamingState


@dataclasses.dataclass
class EncoderState(StreamingState):
    """The conv stem's tails and the transformer's ring caches of ``B`` streams."""

    convs: list[ConvTailState]
    transformer: RingState


class CausalAudioEncoder(StreamingModule):
    """log-mel [B, n_mels, T] -> encoder states [B, T // 2, dim] at 50 Hz.

    With ``ada_rms_norm_t_cond`` in its args the encoder is delay-conditioned like the decoder (an
    option of voxkit's own recipes, DESIGN §4; the published model conditions the decoder only).
    """

    def __init__(self, args: TransformerArgs, n_mels: int = 128) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(
            [CausalConv1d(n_mels, args.dim, 3, stride=1), CausalConv1d(args.dim, args.dim, 3, stride=2)]
        )
        # The encoder never embeds tokens: build the stack without vocabulary whatever params.json says.
        self.transformer = Transformer(dataclasses.replace(args, vocab_size=0, tied_embeddings=False))

    def init_state(
        self, batch_size: int, *, capacity: int | None = None, dtype: torch.dtype | None = None, static: bool = False
    ) -> EncoderState:
        """capacity: ring positions (50 Hz frames) per layer; static: see :meth:`Transformer.init_state`."""
        dtype = dtype or self.transformer.norm.weight.dtype
        return EncoderState(
            convs=[conv.init_state(batch_size, dtype) for conv in self.conv_layers],
            transformer=self.transformer.init_state(batch_size, capacity=capacity, dtype=dtype, static=static),
        )

    def forward(
        self, mel: torch.Tensor, num_delay_tokens: torch.Tensor | None = None, state: EncoderState | None = None
    ) -> torch.Tensor:
        """``num_delay_tokens`` [B] is needed only by a delay-conditioned encoder (ignored otherwise)."""
        x = mel
        for i, conv in enumerate(self.conv_layers):
            x = F.gelu(conv(x, None if state is None else state.convs[i]))  # [B, dim, T'] exact (erf) GELU as published
        hidden = x.transpose(1, 2)  # [B, T // 2, dim]
        ring = None if state is None else state.transformer
        return self.transformer.forward_embeddings(hidden, state=ring, num_delay_tokens=num_delay_tokens)  # [B, T // 2, dim]


class AudioAdapter(nn.Sequential):
    """Four consecutive 50 Hz frames, concatenated in time order -> one 12.5 Hz decoder input.

    Keys ``audio_language_projection.{0,2}.weight``: Linear(4 d_enc, d) -> GELU -> Linear(d, d).
    """

    def __init__(self, encoder_dim: int, decoder_dim: int, factor: int = 4) -> None:
        super().__init__(
            nn.Linear(encoder_dim * factor, decoder_dim, bias=False), nn.GELU(), nn.Linear(decoder_dim, decoder_dim, bias=False)
        )
        self.factor = factor

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, T, d_enc] (T a multiple of 4) -> [B, T / 4, d]."""
        B, T, D = frames.shape
        if T % self.factor:
            raise ValueError(f"the adapter needs a multiple of {self.factor} encoder frames, got {T}")
        return super().forward(frames.reshape(B, T // self.factor, D * self.factor))
