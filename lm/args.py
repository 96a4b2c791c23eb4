"""Arguments of the Mistral-style backbone, mirroring mistral-native ``params.json``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from voxkit.config import JsonArgs

NormKind = Literal["rms", "layer"]
MlpKind = Literal["swiglu", "gelu"]
PositionsKind = Literal["rope", "alibi", "sinusoidal", "none"]
NORM_KINDS: tuple[str, ...] = ("rms", "layer")
MLP_KINDS: tuple[str, ...] = ("swiglu", "gelu")
POSITIONS_KINDS: tuple[str, ...] = ("rope", "alibi", "sinusoidal", "none")

# The block-layout fields and the values that reproduce the Mistral block. A params.json without
# them describes a Mistral block, so they are written back only when they differ from these values
# or when the file being round-tripped spelled them out (see TransformerArgs.to_dict).
_LAYOUT_DEFAULTS: dict[str, Any] = {
    "norm": "rms", "mlp": "swiglu", "positions": "rope", "qk_norm": False, "qk_norm_scope": "head", "alibi_slopes": "paper",
    "final_norm": True,
}
QK_NORM_SCOPES: tuple[str, ...] = ("head", "all")
ALIBI_SLOPES: tuple[str, ...] = ("paper", "from_one")


ADA_COND_DIM = 32  # Ada-RMSNorm gain width of the published Voxtral Realtime decoder (when params.json omits it)


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
    """One transformer stack: a text decoder (vocab_size > 0) or an encoder body (vocab_size 0).

    The defaults are the Mistral block (RMSNorm, SwiGLU, interleaved RoPE, causal). The layout
    fields make the other stacks of the suite configurations of the same class instead of copies:

    - ``norm``: ``"rms"`` (RMSNorm, weight only) or ``"layer"`` (LayerNorm with weight and bias,
      as Whisper). Applies to the two pre-norms of every block and to the stack's final norm.
    - ``mlp``: ``"swiglu"`` (``w2(silu(w1 x) * w3 x)``) or ``"gelu"`` (``w2(gelu(w1 x))``, exact
      GELU; Whisper's fc1/fc2 are w1/w2). Mixture of experts needs ``"swiglu"``.
    - ``positions``: ``"rope"`` (interleaved rotary, theta/yarn/llama_4_scaling apply), ``"alibi"``
      (linear attention bias per head, the codec), ``"sinusoidal"`` (Whisper's absolute table of
      ``max_seq_len`` rows added to the input), or ``"none"``.
    - ``qk_norm``: RMSNorm of queries and keys before RoPE. ``qk_norm_scope`` ``"head"``: each head
      over head_dim (weights [head_dim]); ``"all"``: all heads' channels at once (weights
      [n_heads * head_dim] and [n_kv_heads * head_dim], the published codec). ``qk_norm_eps``: its
      epsilon (default ``norm_eps``).
    - ``alibi_slopes``: ``"paper"`` (``2^(-8 i / n)``, i = 1..n) or ``"from_one"`` (i = 0..n-1: the
      first head's slope is 1, the published codec).
    - ``final_norm``: False leaves out the stack's final norm (the codec's stages have none).
    - ``layer_scale``: initial value of LayerScale, a learnt per-channel gain [dim] on each residual
      branch (the codec uses 0.01); None: no LayerScale.
    - ``use_biases``: the bias pattern shared by Voxtral's encoder and Whisper. Attention: wq, wv
      and wo carry biases, wk never (a key bias shifts every score of a query equally, which the
      softmax cancels). MLP: with SwiGLU only w2 (w1 and w3 never, as Voxtral); with GELU both w1
      and w2 (Whisper's fc1 and fc2). A LayerNorm always has its bias; RMSNorm has none.
    - ``causal``: False for bidirectional stacks (Whisper's encoder, the flow-matching head).
    """

    dim: int = 4096
    n_layers: int = 32
    head_dim: int = 128
    hidden_dim: int = 14336
    n_heads: int = 32
    n_kv_heads: int = 8
    norm_eps: float = 1e-5
    vocab_size: int = 32000
    rope_theta: float | None = None
    # Keys attend within the last ``sliding_window`` positions (a list cycles over layers; None: that layer sees everything).
    sliding_window: int | list[int | None] | None = None
    tied_embeddings: bool = False
    # Bias pattern (see the class docstring): wq, wv, wo and the MLP's output carry biases, wk never.
    use_biases: bool = False
    causal: bool = True
    moe: MoeArgs | None = None
    ada_rms_norm_t_cond: bool = False
    ada_rms_norm_t_cond_dim: int | None = None
    yarn: YarnArgs | None = None
    llama_4_scaling: Llama4ScalingArgs | None = None
    max_seq_len: int | None = None
    # Block layout (class docstring). Defaults: the Mistral block.
    norm: NormKind = "rms"
    mlp: MlpKind = "swiglu"
    positions: PositionsKind = "rope"
    qk_norm: bool = False
    layer_scale: float | None = None
    qk_norm_scope: str = "head"
    qk_norm_eps: float | None = None
    alibi_slopes: str = "paper"
    final_norm: bool = True

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        _check_choice("norm", self.norm, NORM_KINDS)
        _check_choice("mlp", self.mlp, MLP_KINDS)
        _check_choice("positions", self.positions, POSITIONS_KINDS)
        _check_choice("qk_norm_scope", self.qk_norm_scope, QK_NORM_SCOPES)
        _check_choice("alibi_slopes", self.alibi_slopes, ALIBI_SLOPES)
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")
        if self.positions != "rope":
            used = [name for name in ("rope_theta", "yarn", "llama_4_scaling") if getattr(self, name) is not None]
            if used:
                raise ValueError(f"{', '.join(used)} configure RoPE, which positions={self.positions!r} does not use: remove them")
        if self.positions == "sinusoidal":
            if not self.max_seq_len or self.max_seq_len < 1:
                raise ValueError("positions='sinusoidal' needs max_seq_len (the length of the position table)")
            if self.dim % 2 or self.dim < 4:
                raise ValueError(f"positions='sinusoidal' needs an even dim >= 4 (sin and cos halves), got {self.dim}")
        if self.moe is not None and self.mlp != "swiglu":
            raise ValueError(f"mixture of experts uses SwiGLU experts: mlp={self.mlp!r} cannot be combined with moe")
        if not isinstance(self.qk_norm, bool):
            raise ValueError(f"qk_norm must be true or false, got {self.qk_norm!r}")
        if self.layer_scale is not None:
            if isinstance(self.layer_scale, bool) or not isinstance(self.layer_scale, (int, float)):
                raise ValueError(f"layer_scale is LayerScale's initial gain (e.g. 0.01) or null, got {self.layer_scale!r}")
            if not math.isfinite(self.layer_scale) or self.layer_scale <= 0:
                raise ValueError(f"layer_scale must be a positive initial gain (e.g. 0.01), got {self.layer_scale}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerArgs:
        obj = super().from_dict(data)
        # Remember which layout fields the source spelled out, so that to_dict writes them back
        # even at their default value (a lossless round trip of any params.json).
        obj._spelled_layout = frozenset(key for key in _LAYOUT_DEFAULTS if key in data)  # type: ignore[attr-defined]
        return obj

    def to_dict(self) -> dict[str, Any]:
        """As JsonArgs, but a layout field at its Mistral default is left out unless the source
        spelled it: the params.json of an existing model does not grow new keys."""
        out = super().to_dict()
        spelled = getattr(self, "_spelled_layout", frozenset())
        for key, default in _LAYOUT_DEFAULTS.items():
            if key not in spelled and out.get(key) == default:
                del out[key]
        return out

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
        return self.ada_rms_norm_t_cond_dim or ADA_COND_DIM


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")
