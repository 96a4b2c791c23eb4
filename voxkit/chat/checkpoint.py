"""Chat-model checkpoints: the published Voxtral layout, transformers' layout, training checkpoints,
and Whisper encoders from transformers' Whisper folders or CTranslate2 models.

Published keys (``consolidated.safetensors``): the decoder at the top level (``layers.*``,
``norm``, ``output`` when untied) and the audio side under ``mm_whisper_embeddings.``:
``whisper_encoder.conv_layers.{0,1}.{weight,bias}``, ``whisper_encoder.transformer.*``,
``audio_language_projection.{0,2}.weight``, ``tok_embeddings.weight``. voxkit's module tree
(``encoder``, ``adapter``, ``decoder``) differs by these prefixes and by the ``.conv`` level of
the stem (voxkit's stem modules hold the convolution as ``conv``, shared with the causal encoder).

transformers (``VoxtralForConditionalGeneration``, ``WhisperModel``) name Whisper's parts
``conv1``, ``self_attn.{q,k,v,out}_proj``, ``fc1``/``fc2``, ``self_attn_layer_norm``,
``final_layer_norm``, ``layer_norm`` and keep the position table as ``embed_positions.weight``;
their text model is Llama-shaped (rotate-half RoPE rows, permuted by voxkit.lm.convert).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import torch

from voxkit.asr.whisper_encoder import WhisperDims, WhisperEncoder, hf_whisper_to_module, module_to_hf_whisper
from voxkit.chat.args import ChatArgs
from voxkit.chat.model import ChatModel
from voxkit.checkpoint import (
    Layout,
    build_and_load,
    check_training_model,
    detect_layout,
    read_config,
    read_tensors,
    weight_files,
    write_folder,
)
from voxkit.checks import is_whole
from voxkit.errors import CheckpointError
from voxkit.lm.args import TransformerArgs
from voxkit.lm.convert import args_to_hf_config as text_args_to_hf_config
from voxkit.lm.convert import hf_config_to_args as hf_config_to_text_args
from voxkit.lm.convert import hf_to_native_state, native_to_hf_state
from voxkit.lm.positions import sinusoids
from voxkit.subset_tokenizer import SubsetTokenizer
from voxkit.tokenizer import AUDIO_ID, ByteTokenizer, Tokenizer

CHAT_MODEL = "audio_chat"  # the recipe's [model] name, recorded in training checkpoints
AUDIO = "mm_whisper_embeddings."
_STEM = re.compile(r"conv_layers\.(\d)\.(weight|bias)$")
AUDIO_TOKEN = AUDIO_ID  # transformers' audio_token_id
# A stored table may be float16 (half a unit in the last place is 2.4e-4 near 1).
TABLE_TOLERANCE = 2e-3


# ----------------------------------------------------------------------------- published layout


def native_to_module_state(state: dict[str, torch.Tensor], args: ChatArgs) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "tok_embeddings.weight" and AUDIO + "tok_embeddings.weight" in state:
            continue  # some exports store the (identical) embedding twice
        if key.startswith(AUDIO + "whisper_encoder."):
            rest = key[len(AUDIO + "whisper_encoder.") :]
            if args.encoder_kind == "whisper":
                rest = _STEM.sub(r"conv_layers.\1.conv.\2", rest)
            out["encoder." + rest] = value
        elif key.startswith(AUDIO + "audio_language_projection."):
            out["adapter." + key[len(AUDIO + "audio_language_projection.") :]] = value
        elif key == AUDIO + "tok_embeddings.weight":
            out["decoder.tok_embeddings.weight"] = value
        elif key.startswith(AUDIO):
            raise CheckpointError(f"unknown audio key {key}")
        else:
            out["decoder." + key] = value
    return out


def module_to_native_state(state: dict[str, torch.Tensor], args: ChatArgs) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            rest = key[len("encoder.") :]
            if args.encoder_kind == "whisper":
                rest = re.sub(r"^conv_layers\.(\d)\.conv\.", r"conv_layers.\1.", rest)
            out[AUDIO + "whisper_encoder." + rest] = value
        elif key.startswith("adapter."):
            out[AUDIO + "audio_language_projection." + key[len("adapter.") :]] = value
        elif key == "decoder.tok_embeddings.weight":
            out[AUDIO + "tok_embeddings.weight"] = value
        elif key.startswith("decoder."):
            out[key[len("decoder.") :]] = value
        else:
            raise CheckpointError(f"unexpected chat-model key {key}")
    return out


# ----------------------------------------------------------------------------- transformers

def hf_to_module_state(state: dict[str, torch.Tensor], args: ChatArgs) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """transformers Voxtral keys (current ``model.*`` or older prefixes) -> voxkit module keys, and the
    stored position table (None when the folder has none)."""
    decoder: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    table = None
    for key, value in state.items():
        key = re.sub(r"^model\.", "", key)
        if key.startswith("audio_tower."):
            new = hf_whisper_to_module(key[len("audio_tower.") :])
            if new is None:
                raise CheckpointError(f"unknown audio encoder key {key}")
            if new == "transformer.abs_positions.table":
                table = value
            else:
                out["encoder." + new] = value
        elif key.startswith("multi_modal_projector."):
            layer = {"linear_1": "0", "linear_2": "2"}.get(key.split(".")[1])
            if layer is None:
                raise CheckpointError(f"unknown projector key {key}")
            out[f"adapter.{layer}.{key.split('.')[-1]}"] = value
        elif key in ("lm_head.weight", "language_model.lm_head.weight"):
            if not args.decoder.tied_embeddings:
                decoder["lm_head.weight"] = value
        elif key.startswith("language_model."):
            # current: language_model.X (after the model. prefix); older: language_model.model.X
            decoder["model." + re.sub(r"^(model\.)+", "", key[len("language_model.") :])] = value
        else:
            raise CheckpointError(f"unknown Voxtral key {key}")
    for key, value in hf_to_native_state(decoder, args.decoder).items():
        out["decoder." + key] = value
    return out, table


def _untie_if_stored(args: ChatArgs, state: dict[str, torch.Tensor]) -> ChatArgs:
    """transformers' Voxtral computes logits with the stored ``lm_head.weight`` even when the config
    says the embeddings are tied; a stored head that differs from the embeddings is therefore its
    own matrix, and voxkit reads the model as untied to compute the same logits."""
    if not args.decoder.tied_embeddings:
        return args
    head = next((v for k, v in state.items() if k.endswith("lm_head.weight")), None)
    table = next((v for k, v in state.items() if k.endswith("embed_tokens.weight")), None)
    if head is None or (table is not None and torch.equal(head, table)):
        return args
    return dataclasses.replace(args, decoder=dataclasses.replace(args.decoder, tied_embeddings=False))


def module_to_hf_state(model: ChatModel) -> dict[str, torch.Tensor]:
    """voxkit's chat model -> transformers ``VoxtralForConditionalGeneration`` keys (current layout)."""
    if model.args.encoder_kind != "whisper":
        raise CheckpointError("transformers' Voxtral has a Whisper encoder: a chat model on the causal encoder has no counterpart")
    out: dict[str, torch.Tensor] = {}
    decoder: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key.startswith("encoder."):
            out["model.audio_tower." + module_to_hf_whisper(key[len("encoder.") :])] = value
        elif key.startswith("adapter."):
            layer = {"0": "linear_1", "2": "linear_2"}[key.split(".")[1]]
            out[f"model.multi_modal_projector.{layer}.weight"] = value
        elif key.startswith("decoder."):
            decoder[key[len("decoder.") :]] = value
    for key, value in native_to_hf_state(decoder, model.args.decoder).items():
        out[key if key == "lm_head.weight" else "model.language_model." + key[len("model.") :]] = value
    if "lm_head.weight" not in out:
        # transformers' Voxtral never ties its output projection (whatever tie_word_embeddings says):
        # it reads lm_head.weight, so a tied model writes the shared table there too
        out["lm_head.weight"] = out["model.language_model.embed_tokens.weight"]
    encoder = model.encoder
    assert isinstance(encoder, WhisperEncoder)
    out["model.audio_tower.embed_positions.weight"] = encoder.position_table.float().clone()
    return out


# What transformers' VoxtralConfig puts under a text_config's own fields (the published 3B text
# model's values): a trimmed config.json means that model to transformers, so it must to voxkit.
VOXTRAL_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 131072, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 30, "num_key_value_heads": 8,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 1e8, "head_dim": 128,
}


def hf_config_to_args(config: dict[str, Any]) -> ChatArgs:
    text, audio = {**VOXTRAL_TEXT_DEFAULTS, **(config.get("text_config") or {})}, config.get("audio_config") or {}
    text.setdefault("model_type", "llama")
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in config:
        text["tie_word_embeddings"] = config["tie_word_embeddings"]
    decoder = _text_args(text)
    try:
        heads = audio["num_attention_heads"]
        dims = WhisperDims(dim=audio["hidden_size"], n_layers=audio["num_hidden_layers"], n_heads=heads,
                           hidden_dim=audio["intermediate_size"], n_mels=audio.get("num_mel_bins", 128),
                           n_ctx=audio.get("max_source_positions", 1500))
    except KeyError as err:
        raise CheckpointError(f"config.json lacks audio_config {err} for a Voxtral model") from None
    if config.get("audio_token_id", AUDIO_TOKEN) != AUDIO_TOKEN:
        raise CheckpointError(f"config.json audio_token_id {config.get('audio_token_id')} is not voxkit's [AUDIO] id {AUDIO_TOKEN}")
    sizes = {"hidden_size": dims.dim, "num_hidden_layers": dims.n_layers, "num_attention_heads": dims.n_heads,
             "intermediate_size": dims.hidden_dim, "num_mel_bins": dims.n_mels, "max_source_positions": dims.n_ctx}
    for name, value in sizes.items():
        if not is_whole(value) or value < 1:
            raise CheckpointError(f"config.json audio_config {name} must be a positive integer, got {value!r}")
    if dims.hidden_dim != 4 * dims.dim:
        # transformers stacks encoder frames with reshape(-1, intermediate_size): 4 frames only when this holds
        raise CheckpointError("transformers' Voxtral needs audio intermediate_size == 4 * hidden_size")
    try:
        return ChatArgs.whisper(decoder, dims)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"config.json does not describe a valid Voxtral model: {err}") from None


def _text_args(text: dict[str, Any]) -> TransformerArgs:
    """A Llama text config (Voxtral's) read as the Mistral block it is: no window, no biases."""
    if text.get("model_type") == "llama":
        if text.get("attention_bias") or text.get("mlp_bias"):
            raise CheckpointError("config.json text_config has attention or MLP biases, which the Mistral block has not")
        text = {**text, "model_type": "mistral", "sliding_window": None}
    return hf_config_to_text_args(text)


def args_to_hf_config(args: ChatArgs) -> dict[str, Any]:
    if args.encoder_kind != "whisper":
        raise CheckpointError("transformers' Voxtral has a Whisper encoder: a chat model on the causal encoder has no counterpart")
    if args.decoder.sliding_window is not None:
        raise CheckpointError("transformers' Voxtral text model (Llama) has no sliding window")
    e = args.encoder
    if e.hidden_dim != 4 * e.dim or args.downsample_factor != 4:
        raise CheckpointError("transformers' Voxtral needs an encoder MLP of 4 x its width and a downsample factor of 4")
    text = text_args_to_hf_config(args.decoder)
    text.pop("architectures", None)
    text.pop("sliding_window", None)
    text["model_type"] = "llama"
    return {
        "architectures": ["VoxtralForConditionalGeneration"],
        "model_type": "voxtral",
        "audio_token_id": AUDIO_TOKEN,
        "projector_hidden_act": "gelu",
        "audio_config": {
            "model_type": "voxtral_encoder", "hidden_size": e.dim, "intermediate_size": e.hidden_dim,
            "num_hidden_layers": e.n_layers, "num_attention_heads": e.n_heads, "num_key_value_heads": e.n_heads,
            "head_dim": e.head_dim, "num_mel_bins": args.n_mels, "max_source_positions": e.max_seq_len,
            "activation_function": "gelu",
        },
        "text_config": text,
    }


# ----------------------------------------------------------------------------- load / save


def load_chat(folder: str | os.PathLike[str], *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> ChatModel:
    """Load a chat model from a published (native), transformers or training checkpoint folder."""
    layout = detect_layout(folder)
    config = read_config(folder, layout)
    if layout == "training":
        check_training_model(folder, CHAT_MODEL, "an audio-chat model")
    state = read_tensors(weight_files(folder, layout))
    table = None
    if layout == "native":
        args = ChatArgs.from_params(config)
        state = native_to_module_state(state, args)
        if args.encoder_source is not None and not any(k.startswith("encoder.") for k in state):
            state |= _imported_encoder_state(args, folder)
    elif layout == "training":
        try:
            args = ChatArgs.from_params(config)
        except CheckpointError as err:
            raise CheckpointError(f"{Path(folder) / 'config.json'}: {err}") from None
    else:
        if config.get("model_type") != "voxtral":
            raise CheckpointError(f"{folder}: config.json model_type {config.get('model_type')!r} is not voxtral (an audio-chat model)")
        args = hf_config_to_args(config)
        args = _untie_if_stored(args, state)
        state, table = hf_to_module_state(state, args)
    model = build_and_load(lambda: ChatModel(args), state, device=device, dtype=dtype, where=str(folder))
    if table is not None:
        encoder = model.encoder
        assert isinstance(encoder, WhisperEncoder)
        encoder.set_position_table(table)
    return model


def save_chat(
    model: ChatModel,
    folder: str | os.PathLike[str],
    layout: Layout = "native",
    *,
    dtype: torch.dtype | None = None,
    tokenizer: Tokenizer | None = None,
    with_encoder: bool = False,
) -> Path:
    """Write ``model`` as the published layout (params.json + consolidated.safetensors), transformers'
    (config.json + model.safetensors) or a training checkpoint's.

    ``tokenizer``: the folder then names it (voxkit.tokenizer.load_tokenizer's rule): a vocabulary
    subset is saved beside the weights, a byte tokenizer is named in params.json, none means Tekken.
    A model whose encoder is imported (``args.encoder_source``) is written without the encoder's
    weights in the published layout unless ``with_encoder``: they are imported again at load time
    (Whisper's weights stay in their package, never in a voxkit model folder).
    """
    def cast(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keep = dtype is None  # transformers keeps the position table in float32 whatever the dtype
        return {k: v if keep or not v.is_floating_point() or "embed_positions" in k else v.to(dtype) for k, v in state.items()}

    if layout == "native":
        _check_formula_table(model)
        params = model.args.to_params() | ({"tokenizer": "byte"} if isinstance(tokenizer, ByteTokenizer) else {})
        state = dict(model.state_dict())
        if model.args.encoder_source is not None and not with_encoder:
            state = {k: v for k, v in state.items() if not k.startswith("encoder.")}  # imported again at load time
        path = write_folder(folder, "native", params, cast(module_to_native_state(state, model.args)))
    elif layout == "training":
        path = write_folder(folder, "training", model.args.to_params(), cast(dict(model.state_dict())), model=CHAT_MODEL)
    else:
        path = write_folder(folder, "hf", args_to_hf_config(model.args), cast(module_to_hf_state(model)))
    if isinstance(tokenizer, SubsetTokenizer):
        tokenizer.save(path)
    return path


def _imported_encoder_state(args: ChatArgs, folder: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The encoder weights a folder names by source instead of holding them, checked against its args."""
    from voxkit.chat.encoders import load_whisper_encoder

    encoder = load_whisper_encoder(args.encoder_source)
    if args.encoder_kind != "whisper" or encoder.transformer.args.to_dict() != args.encoder.to_dict() or encoder.n_mels != args.n_mels:
        raise CheckpointError(f"{folder}: the encoder of {args.encoder_source!r} does not have the shape params.json describes")
    return {"encoder." + k: v for k, v in encoder.state_dict().items()}


def _check_formula_table(model: ChatModel) -> None:
    """The published layout stores no position table (readers compute Whisper's sinusoids): refuse
    to write a model whose table is something else, which would silently change it."""
    encoder = model.encoder
    if not isinstance(encoder, WhisperEncoder):
        return
    table = encoder.position_table.float()
    error = (table - sinusoids(table.shape[0], table.shape[1]).to(table.device)).abs().max().item()
    if error > TABLE_TOLERANCE:
        raise CheckpointError(
            f"the encoder's position table differs from Whisper's sinusoids by {error:.3g}; the published layout cannot "
            "hold it: save as transformers' layout instead"
        )
