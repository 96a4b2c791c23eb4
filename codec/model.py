"""The VQ-FSQ speech codec: 24 kHz waveform <-> 12.5 Hz frames of 37 codes (DESIGN §5).

Encoder: 240-sample patches (100 Hz) -> causal conv k7 -> 4 stages of [2 causal transformer
layers with ALiBi sliding windows 16, 8, 4, 2 + a causal conv (strides 2, 2, 2, 1)] -> a 292-d
latent at 12.5 Hz -> :class:`~voxkit.codec.quantizer.CodecQuantizer`. The decoder mirrors it:
causal conv k3 -> 4 stages with windows 2, 4, 8, 16, upsampled by causal transposed convs between
them -> causal conv k7 back to 240-sample patches.

Every layer is causal, so the codes of a frame never depend on later audio, and every layer
streams with state in the caller's :class:`CodecState` (convs keep their tails, transposed convs
their overlap, transformer stages a ring KV cache of their window). Streaming frame by frame gives
the one-shot codes and waveform: the same modules run with and without a state. A streaming call
takes any whole number of frames: up to :data:`STREAM_FRAMES` go through every stage in one pass
(each ring holds its window plus that many frames), a longer chunk in pieces of that size. Why
several frames per pass: a live caller that hands over a second of audio at once pays the per-call
overhead of each layer once, not once per frame (docs/codec.md, Speed).

The top-level names (``input_proj``, ``encoder_blocks``, ``decoder_blocks``, ``quantizer``,
``output_proj``) follow the published codec's checkpoint; inside a stage the keys are the shared
backbone's (``layers.{i}.attention.wq.weight``, ...).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from voxkit.codec.args import CodecArgs
from voxkit.codec.quantizer import CodecQuantizer, Quantized
from voxkit.conv import CausalConv1d, CausalConvTranspose1d
from voxkit.errors import VoxkitError
from voxkit.lm import Transformer
from voxkit.streaming import StreamingModule, StreamingState

# Most codec frames one streaming pass takes (the rings are sized for it): a second of audio at
# once, with room to spare. Larger chunks are cut into pieces of this many frames.
STREAM_FRAMES = 16


@dataclasses.dataclass
class CodecState(StreamingState):
    """One entry per streaming block, in block order (conv tails, overlaps, ring caches)."""

    blocks: list[StreamingState]
    frames: int = STREAM_FRAMES  # most frames one pass takes (what the rings are sized for)


Block = Transformer | CausalConv1d | CausalConvTranspose1d


def _run(blocks: list[Block], x: torch.Tensor, states: list[StreamingState] | None) -> torch.Tensor:
    """x [B, T, D] through convs (channels first) and transformer stages (channels last)."""
    for i, block in enumerate(blocks):
        state = None if states is None else states[i]
        if isinstance(block, Transformer):
            x = block.forward_embeddings(x, state=state)  # type: ignore[arg-type]  # [B, T, D]
            continue
        x = block(x.transpose(1, 2), state).transpose(1, 2)  # type: ignore[arg-type]  # [B, T * s or T / s, D']
    return x


class CodecModel(StreamingModule):
    """Waveform [B, N] (N a multiple of 1920 samples) <-> codes [B, N / 1920, 37]."""

    def __init__(self, args: CodecArgs) -> None:
        super().__init__()
        self.args = args
        wn = args.conv_weight_norm
        patch = args.pretransform_patch_size
        self.input_proj = CausalConv1d(patch, args.dim, args.patch_proj_kernel_size, pad_mode="reflect", weight_norm=wn, bias=False)
        encoder: list[nn.Module] = []
        enc_strides = args.encoder_convs_strides
        for i, (n_layers, window) in enumerate(zip(args.encoder_transformer_lengths, args.encoder_windows(), strict=True)):
            encoder.append(Transformer(args.stage_args(n_layers, window)))
            last = i == len(enc_strides) - 1
            out = args.latent_dim if last else args.dim
            encoder.append(
                CausalConv1d(args.dim, out, args.encoder_convs_kernels[i], enc_strides[i], pad_mode="replicate", weight_norm=wn, bias=False)
            )
        self.encoder_blocks = nn.ModuleList(encoder)
        dec_kernels, dec_strides = args.decoder_convs_kernels, args.decoder_convs_strides
        decoder: list[nn.Module] = [
            CausalConv1d(args.latent_dim, args.dim, dec_kernels[0], dec_strides[0], pad_mode="replicate", weight_norm=wn, bias=False)
        ]
        windows = args.decoder_windows()
        for i, n_layers in enumerate(args.decoder_transformer_lengths):
            decoder.append(Transformer(args.stage_args(n_layers, windows[i])))
            if i + 1 < len(dec_strides):
                up = CausalConvTranspose1d(args.dim, args.dim, dec_kernels[i + 1], dec_strides[i + 1], weight_norm=wn, bias=False)
                decoder.append(up)
        self.decoder_blocks = nn.ModuleList(decoder)
        self.quantizer = CodecQuantizer(args)
        self.output_proj = CausalConv1d(args.dim, patch, args.patch_proj_kernel_size, pad_mode="reflect", weight_norm=wn, bias=False)
        self.has_encoder = True  # False for a decoder-only checkpoint (the open published one)

    # ----------------------------------------------------------------------------- shapes

    @property
    def samples_per_frame(self) -> int:
        return self.args.samples_per_frame

    def _patches(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, 240, N / 240] (patch t holds samples 240 t .. 240 t + 239 as channels)."""
        B, N = wave.shape
        if N % self.samples_per_frame:
            raise ValueError(f"the codec takes whole 80 ms frames: {N} samples is not a multiple of {self.samples_per_frame}")
        return wave.view(B, N // self.args.pretransform_patch_size, self.args.pretransform_patch_size).transpose(1, 2)

    # ----------------------------------------------------------------------------- streaming

    def init_state(self, batch_size: int, *, dtype: torch.dtype | None = None, frames: int = STREAM_FRAMES) -> CodecState:
        """State for ``batch_size`` streams, encoder and decoder; chunks of any whole number of frames.

        Each transformer stage's ring holds its window plus ``frames`` codec frames' worth of its
        steps, so a chunk of up to ``frames`` frames passes every stage in one call; a longer one
        is cut into pieces of that size (the rings are never reallocated).
        """
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        dtype = dtype or self.output_proj.conv.weight.dtype
        states: list[StreamingState] = [self.input_proj.init_state(batch_size, dtype)]
        steps = self.args.downsample * frames  # stage steps per pass: 8, 4, 2, 1 per frame in the encoder
        for block in self.encoder_blocks:
            states.append(self._block_state(block, batch_size, steps, dtype))
            if isinstance(block, CausalConv1d):
                steps //= block.stride
        for block in self.decoder_blocks:
            if isinstance(block, CausalConvTranspose1d):
                steps *= block.stride
            elif isinstance(block, CausalConv1d):
                steps //= block.stride
            states.append(self._block_state(block, batch_size, steps, dtype))
        states.append(self.output_proj.init_state(batch_size, dtype))
        return CodecState(blocks=states, frames=frames)

    @staticmethod
    def _block_state(block: nn.Module, batch_size: int, steps: int, dtype: torch.dtype) -> StreamingState:
        if isinstance(block, Transformer):  # the window plus one pass's steps: a pass evicts nothing it needs
            window = block.args.max_window or 1
            return block.init_state(batch_size, capacity=window + steps - 1, dtype=dtype)
        return block.init_state(batch_size, dtype)  # type: ignore[operator]

    def _split_state(self, state: CodecState | None) -> tuple[list[StreamingState] | None, list[StreamingState] | None]:
        if state is None:
            return None, None
        n_enc = 1 + len(self.encoder_blocks)
        return state.blocks[:n_enc], state.blocks[n_enc:]

    # ----------------------------------------------------------------------------- forward

    def encode_latent(self, wave: torch.Tensor, state: CodecState | None = None) -> torch.Tensor:
        """wave [B, N] -> continuous latent [B, N / 1920, 292] (before quantization)."""
        if not self.has_encoder:
            raise VoxkitError(
                "this codec checkpoint has no encoder weights (the open published codec ships its decoder only): "
                "it decodes codes but cannot encode audio"
            )
        piece = None if state is None else state.frames * self.samples_per_frame
        if piece is not None and wave.shape[1] > piece:  # longer than the rings take in one pass
            self._patches(wave)  # whole frames, checked before a first piece moves the state on
            return torch.cat([self.encode_latent(wave[:, i : i + piece], state) for i in range(0, wave.shape[1], piece)], dim=1)
        enc, _ = self._split_state(state)
        wave = wave.to(self.output_proj.conv.weight.dtype)  # audio comes as float32; a codec may be stored in 16 bits
        x = self.input_proj(self._patches(wave), None if enc is None else enc[0])  # [B, dim, N / 240]
        return _run(list(self.encoder_blocks), x.transpose(1, 2), None if enc is None else enc[1:])  # type: ignore[arg-type]

    def decode_latent(self, latent: torch.Tensor, state: CodecState | None = None) -> torch.Tensor:
        """quantized latent [B, T, 292] -> wave [B, T * 1920]."""
        if state is not None and latent.shape[1] > state.frames:  # longer than the rings take in one pass
            pieces = range(0, latent.shape[1], state.frames)
            return torch.cat([self.decode_latent(latent[:, i : i + state.frames], state) for i in pieces], dim=1)
        _, dec = self._split_state(state)
        x = _run(list(self.decoder_blocks), latent, None if dec is None else dec[:-1])  # type: ignore[arg-type]  # [B, 8 T, dim]
        patches = self.output_proj(x.transpose(1, 2), None if dec is None else dec[-1])  # type: ignore[arg-type]  # [B, 240, 8 T]
        return patches.transpose(1, 2).reshape(latent.shape[0], -1)  # [B, T * 1920]

    @torch.no_grad()
    def encode(self, wave: torch.Tensor, state: CodecState | None = None) -> torch.Tensor:
        """wave [B, N] (N a multiple of 1920) -> codes [B, N / 1920, 37] int64."""
        return self.quantizer.encode(self.encode_latent(wave, state))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, state: CodecState | None = None) -> torch.Tensor:
        """codes [B, T, 37] -> wave [B, T * 1920]."""
        latent = self.quantizer.decode(codes).to(self.output_proj.conv.weight.dtype)  # [B, T, 292]
        return self.decode_latent(latent, state)

    def forward(
        self, wave: torch.Tensor, vq_on: torch.Tensor | None = None, fsq_mode: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Quantized]:
        """Training pass: wave [B, N] -> (reconstruction [B, N], :class:`Quantized`)."""
        quantized = self.quantizer(self.encode_latent(wave), vq_on, fsq_mode)
        return self.decode_latent(quantized.latent), quantized
