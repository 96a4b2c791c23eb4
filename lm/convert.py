"""Conversion between transformers' (HF) checkpoints and the mistral-native layout.

Two differences matter. Key names: ``model.layers.{i}.self_attn.q_proj`` is native
``layers.{i}.attention.wq`` and so on. RoPE layout: HF rotates halves of each head (i, i + hd/2)
while native rotates interleaved pairs (2i, 2i+1); permuting the rows of wq and wk (never wv/wo)
makes the two computations identical.
"""

from __future__ import annotations

import re
from typing import Any

import torch

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


def rope_rows_to_hf(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Interleaved (native) wq/wk rows -> rotate-half (HF) rows. w: [n_heads*hd, *]."""
    rest = w.shape[1:]
    return w.reshape(n_heads, head_dim // 2, 2, *rest).transpose(1, 2).reshape(n_heads * head_dim, *rest)


def rope_rows_to_native(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Rotate-half (HF) wq/wk rows -> interleaved (native) rows; inverse of :func:`rope_rows_to_hf`."""
    rest = w.shape[1:]
    return w.reshape(n_heads, 2, head_dim // 2, *rest).transpose(1, 2).reshape(n_heads * head_dim, *rest)


def _convert(state: dict[str, torch.Tensor], args: TransformerArgs, to_hf: bool) -> dict[str, torch.Tensor]:
    table = _NATIVE_TO_HF if to_hf else _HF_TO_NATIVE
    permute = rope_rows_to_hf if to_hf else rope_rows_to_native
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        new = _rename(key, table)
        if new is None:
            unknown.append(key)
            continue
        native_key = key if to_hf else new
        if ".attention.wq." in native_key:
            value = permute(value, args.n_heads, args.head_dim)
        elif ".attention.wk." in native_key:
            value = permute(value, args.n_kv_heads, args.head_dim)
        out[new] = value
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


def hf_config_to_args(config: dict[str, Any]) -> TransformerArgs:
    """Build TransformerArgs from a transformers ``config.json`` of a supported text model."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_HF_TYPES:
        raise CheckpointError(f"config.json model_type {model_type!r} is not supported (supported: {', '.join(SUPPORTED_HF_TYPES)})")
    try:
        rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
        theta = rope.get("rope_theta", config.get("rope_theta"))
        n_heads = config["num_attention_heads"]
        args = TransformerArgs(
            dim=config["hidden_size"],
            n_layers=config["num_hidden_layers"],
            head_dim=config.get("head_dim") or config["hidden_size"] // n_heads,
            hidden_dim=config["intermediate_size"],
            n_heads=n_heads,
            n_kv_heads=config.get("num_key_value_heads") or n_heads,
            norm_eps=config.get("rms_norm_eps", 1e-5),
            vocab_size=config["vocab_size"],
            rope_theta=float(theta) if theta is not None else 10000.0,
            sliding_window=config.get("sliding_window"),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_seq_len=config.get("max_position_embeddings"),
        )
    except KeyError as err:
        raise CheckpointError(f"config.json lacks required field {err}") from None
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
    return args


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
    if isinstance(args.sliding_window, list):
        raise CheckpointError("per-layer sliding windows have no transformers Mistral counterpart")
    model_type = hf_model_type(args)
    arch = {"mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM", "ministral3": "Ministral3ForCausalLM"}[model_type]
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
        "sliding_window": args.sliding_window,
        "tie_word_embeddings": args.tied_embeddings,
        "max_position_embeddings": args.max_seq_len or 32768,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if args.moe is not None:
        config["num_local_experts"] = args.moe.num_experts
        config["num_experts_per_tok"] = args.moe.num_experts_per_tok
    return config
