"""Arguments of the Mistral-style backbone, mirroring mistral-native ``params.json``."""

from __future__ import annotations

import dataclasses

from voxkit.config import JsonArgs


@dataclasses.dataclass
class MoeArgs(JsonArgs):
    """Mixtral-style sparse mixture of experts."""

    num_experts: int = 8
    num_experts_per_tok: int = 2


@dataclasses.dataclass
class YarnArgs(JsonArgs):
    """YaRN RoPE scaling (Ministral-3 ``yarn`` section)."""

    factor: float = 1.0
    original_max_position_embeddings: int = 4096
    beta: float = 32.0  # beta_fast in transformers
    alpha: float = 1.0  # beta_slow in transformers
    apply_scale: bool = True  # multiply cos/sin by the attention factor
    # transformers' mscale / mscale_all_dim (1.0 / 1.0 in Ministral-3 configs: attention factor 1).
    mscale: float | None = None
    mscale_all_dim: float | None = None


@dataclasses.dataclass
class Llama4ScalingArgs(JsonArgs):
    """Position-dependent query scale ``1 + beta * log(1 + floor(pos / original_max))``."""

    original_max_position_embeddings: int = 4096
    beta: float = 0.1


@dataclasses.dataclass
class TransformerArgs(JsonArgs):
    """One transformer stack: a text decoder (vocab_size > 0) or an encoder body (vocab_size 0)."""

    dim: int = 4096
    n_layers: int = 32
    head_dim: int = 128
    hidden_dim: int = 14336
    n_heads: int = 32
    n_kv_heads: int = 8
    norm_eps: float = 1e-5
    vocab_size: int = 32000
    rope_theta: float | None = None
    # Keys attend within the last ``sliding_window`` positions (a list cycles over layers).
    sliding_window: int | list[int] | None = None
    tied_embeddings: bool = False
    # Voxtral bias pattern: wq, wv, wo and w2 carry biases; wk, w1, w3 never do.
    use_biases: bool = False
    causal: bool = True
    moe: MoeArgs | None = None
    ada_rms_norm_t_cond: bool = False
    ada_rms_norm_t_cond_dim: int | None = None
    yarn: YarnArgs | None = None
    llama_4_scaling: Llama4ScalingArgs | None = None
    max_seq_len: int | None = None

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even for RoPE")

    @property
    def theta(self) -> float:
        """RoPE base: v0.1 Mistral (sliding window, no rope_theta) used 1e4; later models 1e6."""
        if self.rope_theta is not None:
            return float(self.rope_theta)
        return 10000.0 if self.sliding_window is not None else 1_000_000.0

    def window_for_layer(self, layer: int) -> int | None:
        sw = self.sliding_window
        if isinstance(sw, list):
            return sw[layer % len(sw)] if sw else None
        return sw

    @property
    def max_window(self) -> int | None:
        """The largest window over layers, or None if any layer attends to everything."""
        windows = [self.window_for_layer(i) for i in range(self.n_layers)]
        if any(w is None for w in windows):
            return None
        return max(windows)  # type: ignore[type-var]

    @property
    def ada_dim(self) -> int:
        return self.ada_rms_norm_t_cond_dim or 32
