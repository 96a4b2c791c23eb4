"""Conversion between transformers' (HF) checkpoints and the mistral-native layout.

Two differences matter. Key names: ``model.layers.{i}.self_attn.q_proj`` is native
``layers.{i}.attention.wq`` and so on. RoPE layout: HF rotates halves of each head (i, i + hd/2)
while native rotates interleaved pairs (2i, 2i+1); permuting the rows of wq and wk (never wv/wo)
makes the two computations identical.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

from voxkit.checks import is_number, is_whole
from voxkit.errors import CheckpointError
from voxkit.lm.args import Llama4ScalingArgs, MoeArgs, TransformerArgs, YarnArgs

# (native pattern, HF pattern); {i} = layer, {e} = expert.
_LAYER_KEYS: list[tuple[str, str]] = [
    ("attention.wq.{p}", "self_attn.q_proj.{p}"),
    ("attention.wk.{p}", "self_attn.k_proj.{p}"),
    ("attention.wv.{p}", "self_attn.v_proj.{p}"),
    ("attention.wo.{p}", "self_attn.o_proj.{p}"),
    ("attention_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("feed_forward.w1.{p}", "mlp.gate_proj.{p}"),
    ("feed_forward.w2.{p}", "mlp.down_proj.{p}"),
    ("feed_forward.w3.{p}", "mlp.up_proj.{p}"),
    ("ada_rms_norm_t_cond.0.weight", "ada_rms_norm.linear1.weight"),
    ("ada_rms_norm_t_cond.2.weight", "ada_rms_norm.linear2.weight"),
    ("feed_forward.gate.weight", "block_sparse_moe.gate.weight"),
    ("feed_forward.experts.{e}.w1.weight", "block_sparse_moe.experts.{e}.w1.weight"),
    ("feed_forward.experts.{e}.w2.weight", "block_sparse_moe.experts.{e}.w2.weight"),
    ("feed_forward.experts.{e}.w3.weight", "block_sparse_moe.experts.{e}.w3.weight"),
]
_TOP_KEYS: list[tuple[str, str]] = [
    ("tok_embeddings.weight", "model.embed_tokens.weight"),
    ("norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
]


def _regex(pattern: str) -> re.Pattern[str]:
    """``layers.{i}.attention.wq.{p}`` -> a regex with named groups i, e, p."""
    escaped = re.escape(pattern)
    for name, group in (("i", r"\d+"), ("e", r"\d+"), ("p", "weight|bias")):
        escaped = escaped.replace(r"\{" + name + r"\}", f"(?P<{name}>{group})")
    return re.compile(escaped + "$")


_NATIVE_TO_HF = [(_regex("layers.{i}." + n), "model.layers.{i}." + h) for n, h in _LAYER_KEYS]
_NATIVE_TO_HF += [(_regex(n), h) for n, h in _TOP_KEYS]
_HF_TO_NATIVE = [(_regex("model.layers.{i}." + h), "layers.{i}." + n) for n, h in _LAYER_KEYS]
_HF_TO_NATIVE += [(_regex(h), n) for n, h in _TOP_KEYS]


def _rename(key: str, table: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, template in table:
        m = pattern.match(key)
        if m:
            return template.format(**m.groupdict())
    return None


def _check_rope_rows(w: torch.Tensor, n_heads: int, head_dim: int) -> None:
    """A wq/wk matrix must have n_heads * head_dim rows before its rows can be regrouped per head."""
    if w.dim() < 1 or w.shape[0] != n_heads * head_dim:
        raise CheckpointError(
            f"a query/key projection of shape {tuple(w.shape)} does not have {n_heads} heads x {head_dim} = "
            f"{n_heads * head_dim} rows"
        )


def rope_rows_to_hf(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Interleaved (native) wq/wk rows -> rotate-half (HF) rows. w: [n_heads*hd, *]."""
    _check_rope_rows(w, n_heads, head_dim)
    rest = w.shape[1:]
    return w.reshape(n_heads, head_dim // 2, 2, *rest).transpose(1, 2).reshape(n_heads * head_dim, *rest)


def rope_rows_to_native(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Rotate-half (HF) wq/wk rows -> interleaved (native) rows; inverse of :func:`rope_rows_to_hf`."""
    _check_rope_rows(w, n_heads, head_dim)
    rest = w.shape[1:]
    return w.reshape(n_heads, 2, head_dim // 2, *rest).transpose(1, 2).reshape(n_heads * head_dim, *rest)


# Older transformers versions saved the rotary table's inverse frequencies with the weights; they are
# recomputed from the config, and transformers itself ignores them on load.
DERIVED_HF_KEYS = re.compile(r"(^|\.)rotary_emb\.inv_freq$")


def permute_qk_rows(
    value: torch.Tensor, native_key: str, source_key: str, args: TransformerArgs,
    permute: Callable[[torch.Tensor, int, int], torch.Tensor],
) -> torch.Tensor:
    """``value`` with ``permute`` applied to its rows when ``native_key`` is a query or key projection.

    Why shared: every stack stored in transformers' names (the backbone, the recogniser's encoder)
    orders RoPE's rotated pairs differently from the native layout in those two projections only; a
    wrong shape is reported under ``source_key``, the name the folder's author wrote.
    """
    try:
        if ".attention.wq." in native_key:
            return permute(value, args.n_heads, args.head_dim)
        if ".attention.wk." in native_key:
            return permute(value, args.n_kv_heads, args.head_dim)
    except CheckpointError as err:
        raise CheckpointError(f"{source_key}: {err}") from None
    return value


def _convert(state: dict[str, torch.Tensor], args: TransformerArgs, to_hf: bool) -> dict[str, torch.Tensor]:
    table = _NATIVE_TO_HF if to_hf else _HF_TO_NATIVE
    permute = rope_rows_to_hf if to_hf else rope_rows_to_native
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if not to_hf and DERIVED_HF_KEYS.search(key):
            continue
        new = _rename(key, table)
        if new is None:
            unknown.append(key)
            continue
        out[new] = permute_qk_rows(value, key if to_hf else new, key, args, permute)
    if unknown:
        shown = ", ".join(sorted(unknown)[:8])
        raise CheckpointError(f"keys with no {'HF' if to_hf else 'native'} counterpart: {shown}")
    return out


def native_to_hf_state(state: dict[str, torch.Tensor], args: TransformerArgs) -> dict[str, torch.Tensor]:
    return _convert(state, args, to_hf=True)


def hf_to_native_state(state: dict[str, torch.Tensor], args: TransformerArgs) -> dict[str, torch.Tensor]:
    return _convert(state, args, to_hf=False)


# --------------------------------------------------------------------------------- configs

SUPPORTED_HF_TYPES = ("mistral", "mixtral", "ministral", "ministral3")
GATE_ACTIVATIONS = ("silu", "swish")  # the SwiGLU gate's activation, under both of its names

_MISTRAL_DEFAULTS: dict[str, Any] = {
    "num_key_value_heads": 8, "rms_norm_eps": 1e-6, "sliding_window": 4096, "max_position_embeddings": 131072,
    "rope_theta": 10000.0,
}
# What transformers' config classes assume for a field that config.json leaves out: a folder must
# mean the same model to voxkit as to transformers, including hand-written or trimmed configs.
HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "mistral": _MISTRAL_DEFAULTS,
    "ministral": _MISTRAL_DEFAULTS,
    "mixtral": {
        "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "sliding_window": None, "max_position_embeddings": 131072,
        "rope_theta": 1e6, "num_local_experts": 8, "num_experts_per_tok": 2,
    },
    "ministral3": {
        "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-5, "sliding_window": None,
        "max_position_embeddings": 262144,
        "rope_parameters": {
            "rope_type": "yarn", "rope_theta": 1e6, "factor": 16.0, "original_max_position_embeddings": 16384,
            "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "llama_4_scaling_beta": 0.1,
        },
    },
}


def _with_defaults(config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """``config`` completed with transformers' defaults for ``model_type`` (explicit values, null included, win).

    Except for a model type whose config class has a RoPE section of its own (Ministral-3's YaRN):
    that section stands in unless the file gives a non-null ``rope_parameters`` or ``rope_scaling``,
    and a top-level ``rope_theta`` (the older spelling) is ignored, as transformers' class does.
    """
    defaults = HF_DEFAULTS[model_type]
    merged = {**defaults, **config}
    if "rope_parameters" in defaults:
        merged["rope_parameters"] = config.get("rope_parameters") or config.get("rope_scaling") or defaults["rope_parameters"]
    return merged


def _layer_windows(config: dict[str, Any], n_layers: int) -> int | list[int | None] | None:
    """The sliding window of each layer: Ministral's ``layer_types`` mixes windowed and full layers."""
    window = config.get("sliding_window")
    types = config.get("layer_types") if config.get("model_type") == "ministral" else None
    if types is None or window is None:
        return window
    if not isinstance(types, list) or len(types) != n_layers:
        raise CheckpointError(f"config.json layer_types must list one type per layer ({n_layers}), got {types!r}")
    unknown = sorted({t for t in types if t not in ("sliding_attention", "full_attention")})
    if unknown:
        raise CheckpointError(f"config.json layer_types has unknown types {unknown} (expected sliding_attention, full_attention)")
    windows = [window if t == "sliding_attention" else None for t in types]
    if all(w == window for w in windows):
        return window
    return None if all(w is None for w in windows) else windows


def hf_config_to_args(config: dict[str, Any]) -> TransformerArgs:
    """Build TransformerArgs from a transformers ``config.json`` of a supported text model.

    Fields the file leaves out take the values transformers' config class gives them
    (:data:`HF_DEFAULTS`), and anything the Mistral block cannot compute (another activation,
    another RoPE scaling) is refused by name instead of being read as something else.
    """
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_HF_TYPES:
        raise CheckpointError(f"config.json model_type {model_type!r} is not supported (supported: {', '.join(SUPPORTED_HF_TYPES)})")
    config = _with_defaults(config, model_type)
    act = config.get("hidden_act", "silu")
    if act not in GATE_ACTIVATIONS:
        raise CheckpointError(f"config.json hidden_act {act!r} is not supported: the Mistral block's MLP gate is silu")
    try:
        rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
        theta = rope.get("rope_theta", config.get("rope_theta"))
        n_heads = config["num_attention_heads"]
        n_layers = config["num_hidden_layers"]
        args = TransformerArgs(
            dim=config["hidden_size"],
            n_layers=n_layers,
            head_dim=config.get("head_dim") or config["hidden_size"] // n_heads,
            hidden_dim=config["intermediate_size"],
            n_heads=n_heads,
            n_kv_heads=config.get("num_key_value_heads") or n_heads,
            norm_eps=config.get("rms_norm_eps", 1e-5),
            vocab_size=config["vocab_size"],
            rope_theta=float(theta) if theta is not None else 10000.0,
            sliding_window=_layer_windows(config, n_layers),
            tied_embeddings=config.get("tie_word_embeddings", False) is True,
            max_seq_len=config.get("max_position_embeddings"),
        )
        if model_type == "mixtral":
            args.moe = MoeArgs(num_experts=config["num_local_experts"], num_experts_per_tok=config["num_experts_per_tok"])
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type == "yarn":
            args.yarn = YarnArgs(
                factor=float(rope["factor"]),
                original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
                beta=float(rope.get("beta_fast") or 32.0),
                alpha=float(rope.get("beta_slow") or 1.0),
                apply_scale=True,
                mscale=rope.get("mscale"),
                mscale_all_dim=rope.get("mscale_all_dim"),
            )
        elif rope_type != "default":
            raise CheckpointError(f"rope type {rope_type!r} is not supported")
        if rope.get("llama_4_scaling_beta") is not None:
            args.llama_4_scaling = Llama4ScalingArgs(
                original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
                beta=float(rope["llama_4_scaling_beta"]),
            )
    except KeyError as err:
        section = " in its RoPE section" if err.args and err.args[0] in ("factor", "original_max_position_embeddings") else ""
        raise CheckpointError(f"config.json lacks required field {err}{section}") from None
    except (TypeError, ValueError, ZeroDivisionError) as err:
        raise CheckpointError(f"config.json does not describe a valid {model_type} model: {err}") from None
    _check_sizes(args, config)
    return args


_HF_SIZES = {  # voxkit's name -> transformers' name
    "dim": "hidden_size", "n_layers": "num_hidden_layers", "head_dim": "head_dim", "hidden_dim": "intermediate_size",
    "n_heads": "num_attention_heads", "n_kv_heads": "num_key_value_heads", "vocab_size": "vocab_size",
}


def _check_sizes(args: TransformerArgs, config: dict[str, Any]) -> None:
    """Sizes must be positive integers, the window one too (or null), the norm's epsilon a positive
    finite number, the experts chosen per token at most those there are, and ``tie_word_embeddings``
    a boolean. Why: a string or a zero fails deep inside torch or a kernel, and a string "false"
    would read as true and drop the stored output head without a word."""
    for name, hf_name in _HF_SIZES.items():
        value = getattr(args, name)
        if not is_whole(value) or value < 1:
            raise CheckpointError(f"config.json: {hf_name} must be a positive integer, got {value!r}")
    window = config.get("sliding_window")
    if window is not None and (not is_whole(window) or window < 1):
        raise CheckpointError(f"config.json: sliding_window must be a positive integer or null, got {window!r}")
    eps = args.norm_eps
    if not is_number(eps) or not math.isfinite(eps) or eps <= 0:
        raise CheckpointError(f"config.json: rms_norm_eps must be a positive number, got {eps!r}")
    tied = config.get("tie_word_embeddings", False)
    if not isinstance(tied, bool):
        raise CheckpointError(f"config.json: tie_word_embeddings must be true or false, got {tied!r}")
    if args.moe is not None:
        experts, chosen = args.moe.num_experts, args.moe.num_experts_per_tok
        if not is_whole(experts) or experts < 1 or not is_whole(chosen) or not 1 <= chosen <= experts:
            raise CheckpointError(f"config.json: num_experts_per_tok must be a whole number from 1 to num_local_experts "
                                  f"({experts!r}), got {chosen!r}")


def hf_model_type(args: TransformerArgs) -> str:
    if args.moe is not None:
        return "mixtral"
    if args.yarn is not None or args.llama_4_scaling is not None:
        return "ministral3"
    return "mistral"


def args_to_hf_config(args: TransformerArgs) -> dict[str, Any]:
    """A transformers ``config.json`` dict describing the same model."""
    if args.use_biases or args.ada_rms_norm_t_cond or not args.causal or args.vocab_size <= 0:
        raise CheckpointError("this model has no transformers text-model counterpart (biases, Ada-RMSNorm or encoder)")
    window, layer_types = _hf_windows(args)
    model_type = "ministral" if layer_types is not None else hf_model_type(args)
    arch = {"mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM", "ministral3": "Ministral3ForCausalLM",
            "ministral": "MinistralForCausalLM"}[model_type]
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": args.theta}
    if args.yarn is not None:
        y = args.yarn
        rope.update(
            rope_type="yarn",
            factor=y.factor,
            original_max_position_embeddings=y.original_max_position_embeddings,
            beta_fast=y.beta,
            beta_slow=y.alpha,
        )
        if y.mscale is not None:
            rope["mscale"] = y.mscale
        if y.mscale_all_dim is not None:
            rope["mscale_all_dim"] = y.mscale_all_dim
    if args.llama_4_scaling is not None:
        rope["llama_4_scaling_beta"] = args.llama_4_scaling.beta
        rope.setdefault("original_max_position_embeddings", args.llama_4_scaling.original_max_position_embeddings)
    config: dict[str, Any] = {
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": args.dim,
        "num_hidden_layers": args.n_layers,
        "head_dim": args.head_dim,
        "intermediate_size": args.hidden_dim,
        "num_attention_heads": args.n_heads,
        "num_key_value_heads": args.n_kv_heads,
        "rms_norm_eps": args.norm_eps,
        "vocab_size": args.vocab_size,
        "rope_parameters": rope,
        "sliding_window": window,
        "tie_word_embeddings": args.tied_embeddings,
        "max_position_embeddings": args.max_seq_len or 32768,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if layer_types is not None:
        config["layer_types"] = layer_types
    if args.moe is not None:
        config["num_local_experts"] = args.moe.num_experts
        config["num_experts_per_tok"] = args.moe.num_experts_per_tok
    return config


def _hf_windows(args: TransformerArgs) -> tuple[int | None, list[str] | None]:
    """(sliding_window, layer_types) of a transformers config for ``args``' windows.

    Per-layer windows are what transformers' Ministral spells as ``layer_types``: one window shared
    by the windowed layers, the others full. Other mixes (two window sizes, or windows with MoE or
    YaRN, which Ministral lacks) have no transformers counterpart and are refused by name.
    """
    windows = args.sliding_window
    if not isinstance(windows, list):
        return windows, None
    per_layer = [windows[i % len(windows)] for i in range(args.n_layers)]  # the list cycles over layers
    sizes = {w for w in per_layer if w is not None}
    if len(sizes) == 1 and None not in per_layer:
        return sizes.pop(), None
    if len(sizes) > 1 or args.moe is not None or args.yarn is not None or args.llama_4_scaling is not None:
        raise CheckpointError(f"per-layer sliding windows {windows} have no transformers counterpart (Ministral's "
                              "layer_types holds one window size, without experts or YaRN): save it in the native layout")
    if not sizes:
        return None, None
    return sizes.pop(), ["full_attention" if w is None else "sliding_attention" for w in per_layer]
