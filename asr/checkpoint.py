"""Recogniser checkpoints: the published mistral-native layout, transformers' layout, and training checkpoints.

Native keys (``consolidated.safetensors``): the decoder at the top level (``layers.*``, ``norm``,
``output`` when untied), and the audio side under ``mm_streams_embeddings.embedding_module.``:
``whisper_encoder.*``, ``audio_language_projection.{0,2}``, ``tok_embeddings``. voxkit's module
tree (``encoder``, ``adapter``, ``decoder``) differs only by these prefixes. A training checkpoint
(``voxkit train``) holds the module tree's own keys and the native params as its ``config.json``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.model import RealtimeRecognizer
from voxkit.checkpoint import build_and_load, check_training_model, detect_layout, read_config, read_tensors, weight_files, write_folder
from voxkit.errors import CheckpointError
from voxkit.lm import TransformerArgs
from voxkit.lm.convert import hf_to_native_state, permute_qk_rows, rope_rows_to_native

RECOGNIZER_MODEL = "realtime_recognizer"  # the recipe's [model] name, recorded in training checkpoints
TRAINING_ONLY_PREFIXES = ("ctc_head.",)  # training-only heads: not part of the published layout
AUDIO = "mm_streams_embeddings.embedding_module."
_PREFIXES = [  # (native, voxkit module tree)
    (AUDIO + "whisper_encoder.", "encoder."),
    (AUDIO + "audio_language_projection.", "adapter."),
    (AUDIO + "tok_embeddings.", "decoder.tok_embeddings."),
]


def native_to_module_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "tok_embeddings.weight" and AUDIO + "tok_embeddings.weight" in state:
            continue  # some exports store the (identical) embedding twice
        for native, ours in _PREFIXES:
            if key.startswith(native):
                out[ours + key[len(native) :]] = value
                break
        else:
            out["decoder." + key] = value
    return out


def module_to_native_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(TRAINING_ONLY_PREFIXES):
            continue
        for native, ours in _PREFIXES:
            if key.startswith(ours):
                out[native + key[len(ours) :]] = value
                break
        else:
            if not key.startswith("decoder."):
                raise CheckpointError(f"unexpected recogniser key {key}")
            out[key[len("decoder.") :]] = value
    return out


# ------------------------------------------------------------------------------ transformers

_HF_ENCODER = [
    (r"embedder\.conv1\.(weight|bias)", r"conv_layers.0.conv.\1"),
    (r"embedder\.conv2\.(weight|bias)", r"conv_layers.1.conv.\1"),
    (r"layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", r"transformer.layers.\1.attention.wq.\2"),
    (r"layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)", r"transformer.layers.\1.attention.wk.\2"),
    (r"layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", r"transformer.layers.\1.attention.wv.\2"),
    (r"layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", r"transformer.layers.\1.attention.wo.\2"),
    (r"layers\.(\d+)\.self_attn_layer_norm\.weight", r"transformer.layers.\1.attention_norm.weight"),
    (r"layers\.(\d+)\.final_layer_norm\.weight", r"transformer.layers.\1.ffn_norm.weight"),
    (r"layers\.(\d+)\.mlp\.gate_proj\.(weight|bias)", r"transformer.layers.\1.feed_forward.w1.\2"),
    (r"layers\.(\d+)\.mlp\.down_proj\.(weight|bias)", r"transformer.layers.\1.feed_forward.w2.\2"),
    (r"layers\.(\d+)\.mlp\.up_proj\.(weight|bias)", r"transformer.layers.\1.feed_forward.w3.\2"),
    (r"norm\.weight", r"transformer.norm.weight"),
]


def hf_to_module_state(state: dict[str, torch.Tensor], args: RealtimeArgs) -> dict[str, torch.Tensor]:
    """transformers VoxtralRealtime keys (legacy or current prefixes) -> voxkit module keys."""
    decoder: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    enc = args.encoder
    for key, value in state.items():
        key = re.sub(r"^model\.", "", key)
        if key.startswith("audio_tower."):
            rest = key[len("audio_tower.") :]
            for pattern, repl in _HF_ENCODER:
                if re.fullmatch(pattern, rest):
                    new = re.sub(pattern, repl, rest)
                    break
            else:
                raise CheckpointError(f"unknown audio encoder key {key}")
            out["encoder." + new] = permute_qk_rows(value, new, key, enc, rope_rows_to_native)
        elif key.startswith("multi_modal_projector."):
            layer = {"linear_1": "0", "linear_2": "2"}[key.split(".")[1]]
            out[f"adapter.{layer}.{key.split('.')[-1]}"] = value
        elif key.startswith("language_model.") and key != "language_model.lm_head.weight":
            # saved: language_model.model.X (transformers 5.24), language_model.model.model.X
            # (5.17 doubles the inner prefix when saving); in memory: language_model.X
            decoder["model." + re.sub(r"^(model\.)+", "", key[len("language_model.") :])] = value
        elif key in ("lm_head.weight", "language_model.lm_head.weight"):
            if not args.decoder.tied_embeddings:
                decoder["lm_head.weight"] = value
        else:
            raise CheckpointError(f"unknown recogniser key {key}")
    for key, value in hf_to_native_state(decoder, args.decoder).items():
        out["decoder." + key] = value
    return out


# What transformers' VoxtralRealtimeConfig gives the fields a config.json leaves out (the published
# model's values): a trimmed file means that model to transformers, so it must to voxkit.
REALTIME_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 131072, "hidden_size": 3072, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-5, "sliding_window": 8192,
}
REALTIME_AUDIO_DEFAULTS: dict[str, Any] = {
    "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 32, "head_dim": 64,
    "rms_norm_eps": 1e-5, "sliding_window": 750, "num_mel_bins": 128,
}


def hf_config_to_args(config: dict[str, Any]) -> RealtimeArgs:
    text = {**REALTIME_TEXT_DEFAULTS, **(config.get("text_config") or {})}
    audio = {**REALTIME_AUDIO_DEFAULTS, **(config.get("audio_config") or {})}

    def rope_theta(c: dict[str, Any], default: float) -> float:
        return float((c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta", default)))

    try:
        heads = text["num_attention_heads"]
        decoder = TransformerArgs(
            dim=text["hidden_size"], n_layers=text["num_hidden_layers"], head_dim=text.get("head_dim") or text["hidden_size"] // heads,
            hidden_dim=text["intermediate_size"], n_heads=heads, n_kv_heads=text.get("num_key_value_heads", heads),
            norm_eps=text.get("rms_norm_eps", 1e-5), vocab_size=text["vocab_size"], rope_theta=rope_theta(text, 1e6),
            sliding_window=text.get("sliding_window"), tied_embeddings=bool(config.get("tie_word_embeddings", True)),
            ada_rms_norm_t_cond=True, ada_rms_norm_t_cond_dim=32,
        )
        aheads = audio["num_attention_heads"]
        encoder = TransformerArgs(
            dim=audio["hidden_size"], n_layers=audio["num_hidden_layers"], head_dim=audio.get("head_dim") or audio["hidden_size"] // aheads,
            hidden_dim=audio["intermediate_size"], n_heads=aheads, n_kv_heads=aheads, norm_eps=audio.get("rms_norm_eps", 1e-5),
            vocab_size=0, rope_theta=rope_theta(audio, 1e4), sliding_window=audio.get("sliding_window"), use_biases=True,
        )
    except KeyError as err:
        raise CheckpointError(f"config.json lacks {err} for a VoxtralRealtime model") from None
    except (TypeError, ValueError, ZeroDivisionError) as err:  # a size that is no positive integer
        raise CheckpointError(f"config.json does not describe a valid VoxtralRealtime model: {err}") from None
    return RealtimeArgs(
        decoder=decoder, encoder=encoder, downsample_factor=int(config.get("downsample_factor", 4)),
        n_mels=int(audio.get("num_mel_bins", 128)), default_delay_tokens=int(config.get("default_num_delay_tokens", 6)),
    )


# ------------------------------------------------------------------------------ load / save


def load_recognizer(
    folder: str | os.PathLike[str], *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> RealtimeRecognizer:
    """Load a recogniser from a native (published), transformers or training checkpoint folder.

    A training checkpoint loads without its training-only heads; it has no tokenizer of its own,
    which :func:`voxkit.asr.bundle.load_bundle` finds through the run's recipe.
    """
    layout = detect_layout(folder)
    config = read_config(folder, layout)
    if layout == "training":
        check_training_model(folder, RECOGNIZER_MODEL, "a recogniser")
    state = read_tensors(weight_files(folder, layout))
    if layout == "native":
        args = RealtimeArgs.from_params(config)
        state = native_to_module_state(state)
    elif layout == "training":
        try:
            args = RealtimeArgs.from_params(config)
        except CheckpointError as err:
            raise CheckpointError(f"{Path(folder) / 'config.json'}: {err}") from None
        state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}
    else:
        if config.get("model_type") != "voxtral_realtime":
            raise CheckpointError(f"{folder}: config.json model_type {config.get('model_type')!r} is not voxtral_realtime")
        args = hf_config_to_args(config)
        state = hf_to_module_state(state, args)
    return build_and_load(lambda: RealtimeRecognizer(args), state, device=device, dtype=dtype, where=str(folder))


def save_recognizer(
    model: RealtimeRecognizer, folder: str | os.PathLike[str], dtype: torch.dtype | None = None, extra_params: dict[str, Any] | None = None
) -> Path:
    """Write the published native layout (params.json + consolidated.safetensors); ``extra_params`` join params.json."""
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    return write_folder(folder, "native", model.args.to_params() | (extra_params or {}), module_to_native_state(state))
