"""Arguments of the VQ-FSQ speech codec (DESIGN §5), one dataclass for the full and the small sizes.

Field names follow the published codec's ``codec_args`` section (``pretransform_patch_size``,
``encoder_convs_kernels_str``, ...), so a params.json written by voxkit reads like the published
one and unknown published keys survive a round trip (:class:`voxkit.config.JsonArgs`). What voxkit
adds (the EMA decay of the semantic codebook, its dead-code threshold) has its own names.

The transformer stages are configurations of the shared backbone (:class:`voxkit.lm.TransformerArgs`):
RMSNorm, QK-norm, LayerScale, causal sliding-window attention with ALiBi, no vocabulary.
"""

from __future__ import annotations

import dataclasses
import math

from voxkit.config import JsonArgs
from voxkit.lm import TransformerArgs


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


@dataclasses.dataclass
class CodecArgs(JsonArgs):
    """Defaults: the full-size codec (d 1024, ~300M parameters). :meth:`small` is the bundled size."""

    channels: int = 1
    sampling_rate: int = 24000
    pretransform_patch_size: int = 240
    patch_proj_kernel_size: int = 7
    semantic_codebook_size: int = 8192
    semantic_dim: int = 256
    acoustic_codebook_size: int = 21  # FSQ levels per acoustic dimension
    acoustic_dim: int = 36
    conv_weight_norm: bool = True
    causal: bool = True
    attn_sliding_window_size: int = 16  # the first encoder stage's window (in its frames)
    half_attn_window_upon_downsampling: bool = True
    dim: int = 1024
    hidden_dim: int = 4096
    head_dim: int = 128
    n_heads: int = 8
    n_kv_heads: int = 8
    qk_norm_eps: float = 1e-6
    qk_norm: bool = True
    use_biases: bool = False
    norm_eps: float = 1e-2
    layer_scale: bool = True
    layer_scale_init: float | None = 0.01
    encoder_transformer_lengths_str: str = "2,2,2,2"
    encoder_convs_kernels_str: str = "4,4,4,3"
    encoder_convs_strides_str: str = "2,2,2,1"
    decoder_transformer_lengths_str: str = "2,2,2,2"
    decoder_convs_kernels_str: str = "3,4,4,4"
    decoder_convs_strides_str: str = "1,2,2,2"
    # voxkit's own: the semantic VQ's EMA decay, and the EMA usage (vectors per step) below which a
    # code is re-seeded from the batch. Relative to a uniform code's usage, (vectors per step) / 8192:
    # 1e-3 is a tenth of it at ~80 frames x 100 clips per step; an absolute 2 would re-seed every
    # code at every step of any batch smaller than 16k frames, so the codebook would never settle.
    vq_decay: float = 0.99
    vq_dead_code_threshold: float = 1e-3

    def __post_init__(self) -> None:
        enc = (self.encoder_transformer_lengths, self.encoder_convs_kernels, self.encoder_convs_strides)
        dec = (self.decoder_transformer_lengths, self.decoder_convs_kernels, self.decoder_convs_strides)
        if len({len(v) for v in enc}) != 1 or len({len(v) for v in dec}) != 1:
            raise ValueError("the encoder's (and the decoder's) lengths, kernels and strides must list one value per stage")
        if math.prod(self.encoder_convs_strides) != math.prod(self.decoder_convs_strides):
            raise ValueError("the decoder must upsample by what the encoder downsamples")
        if any(s not in (1, 2) for s in self.encoder_convs_strides + self.decoder_convs_strides):
            raise ValueError("conv strides must be 1 or 2 (a stride of 2 halves or doubles the attention window)")
        if self.channels != 1:
            raise ValueError("voxkit's codec is mono (channels = 1)")
        if self.acoustic_codebook_size < 2 or self.acoustic_codebook_size % 2 == 0:
            raise ValueError(f"acoustic_codebook_size must be an odd number of FSQ levels, got {self.acoustic_codebook_size}")

    @classmethod
    def small(cls, **overrides: object) -> CodecArgs:
        """The size voxkit trains on CPUs and bundles: the full layout at d 256."""
        base: dict[str, object] = {"dim": 256, "hidden_dim": 768, "head_dim": 64, "n_heads": 4, "n_kv_heads": 4}
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------- derived

    encoder_transformer_lengths = property(lambda self: _ints(self.encoder_transformer_lengths_str))
    encoder_convs_kernels = property(lambda self: _ints(self.encoder_convs_kernels_str))
    encoder_convs_strides = property(lambda self: _ints(self.encoder_convs_strides_str))
    decoder_transformer_lengths = property(lambda self: _ints(self.decoder_transformer_lengths_str))
    decoder_convs_kernels = property(lambda self: _ints(self.decoder_convs_kernels_str))
    decoder_convs_strides = property(lambda self: _ints(self.decoder_convs_strides_str))

    @property
    def latent_dim(self) -> int:
        return self.semantic_dim + self.acoustic_dim

    @property
    def num_codebooks(self) -> int:
        """Tokens per frame: one semantic code and one per acoustic dimension (37)."""
        return 1 + self.acoustic_dim

    @property
    def downsample(self) -> int:
        """Patch frames per latent frame (8)."""
        return math.prod(self.encoder_convs_strides)

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per latent frame (1920 = 80 ms at 24 kHz)."""
        return self.pretransform_patch_size * self.downsample

    @property
    def frame_rate(self) -> float:
        return self.sampling_rate / self.samples_per_frame

    @property
    def bitrate_bps(self) -> float:
        """Bits per second of the codes: log2 of each codebook's size, per frame."""
        bits = math.log2(self.semantic_codebook_size) + self.acoustic_dim * math.log2(self.acoustic_codebook_size)
        return bits * self.frame_rate

    def encoder_windows(self) -> list[int]:
        """Attention window of each encoder stage, in that stage's frames (16, 8, 4, 2)."""
        windows, w = [], self.attn_sliding_window_size
        for stride in self.encoder_convs_strides:
            windows.append(w)
            if self.half_attn_window_upon_downsampling and stride == 2:
                w = max(w // 2, 1)
        return windows

    def decoder_windows(self) -> list[int]:
        """Attention window of each decoder stage (2, 4, 8, 16): the encoder's, mirrored."""
        w = self.encoder_windows()[-1]
        if self.half_attn_window_upon_downsampling and self.encoder_convs_strides[-1] == 2:
            w = max(w // 2, 1)
        windows = []
        strides = self.decoder_convs_strides
        for i in range(len(strides)):
            if self.half_attn_window_upon_downsampling and strides[i] == 2:
                w *= 2  # the conv before stage i upsampled
            windows.append(w)
        return windows

    def stage_args(self, n_layers: int, window: int) -> TransformerArgs:
        """One transformer stage as a configuration of the shared backbone, computing what the
        published codec's stages compute: a frame attends to itself and the ``window`` frames
        before it (lm counts the frame itself: ``window + 1``), QK-norm over all heads at once,
        ALiBi slopes starting at 1, RMSNorm with ``norm_eps``, LayerScale, no final norm.
        """
        return TransformerArgs(
            dim=self.dim,
            n_layers=n_layers,
            head_dim=self.head_dim,
            hidden_dim=self.hidden_dim,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            norm_eps=self.norm_eps,
            vocab_size=0,
            sliding_window=window + 1,
            use_biases=self.use_biases,
            causal=self.causal,
            positions="alibi",
            alibi_slopes="from_one",
            qk_norm=self.qk_norm,
            qk_norm_scope="all",
            qk_norm_eps=self.qk_norm_eps,
            layer_scale=(self.layer_scale_init or 0.01) if self.layer_scale else None,
            final_norm=False,
        )
