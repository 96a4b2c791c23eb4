"""Codec folders: the published layout (params.json + consolidated.safetensors) and training checkpoints.

params.json holds :class:`~voxkit.codec.args.CodecArgs` under ``codec_args`` (the section name the
published codec's config uses; found at the top level or one section down), and the weights carry
the published key names (codec/layout.py), so voxkit's folders and the published one read alike. A training checkpoint (``voxkit
train``) holds the training model's keys: the codec under ``codec.``, plus the discriminator and
the distillation head, which a loaded codec leaves out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils import parametrize

from voxkit.checkpoint import check_state_dict, check_training_model, detect_layout, read_config, read_tensors, weight_files, write_folder
from voxkit.codec.args import CodecArgs
from voxkit.codec.layout import ENCODER_PREFIXES, module_to_published_state, published_to_module_state
from voxkit.codec.model import CodecModel
from voxkit.conv import CausalConv1d, CausalConvTranspose1d
from voxkit.errors import CheckpointError

CODEC_MODEL = "codec"  # the recipe's [model] name, recorded in training checkpoints
CODEC_SECTION = "codec_args"
TRAINING_PREFIX = "codec."  # where the codec sits inside the training model


def codec_params(args: CodecArgs) -> dict[str, Any]:
    """params.json of a codec folder."""
    return {"model_type": "voxkit_codec", CODEC_SECTION: args.to_dict()}


def _args_from(config: dict[str, Any], where: str) -> CodecArgs:
    section = config.get(CODEC_SECTION)
    if section is None:  # nested in a larger model's config (e.g. a TTS model's audio section)
        nested = [v[CODEC_SECTION] for v in config.values() if isinstance(v, dict) and isinstance(v.get(CODEC_SECTION), dict)]
        section = nested[0] if nested else None
    if not isinstance(section, dict):
        raise CheckpointError(f"{where}: no {CODEC_SECTION!r} section (not a codec folder)")
    try:
        return CodecArgs.from_dict(section)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: {CODEC_SECTION} does not describe a codec: {err}") from None


def codec_args(folder: str | os.PathLike[str]) -> CodecArgs:
    """The arguments of a codec folder (native or training checkpoint), without loading its weights."""
    return _args_from(read_config(folder, detect_layout(folder)), str(folder))


def load_codec(folder: str | os.PathLike[str], *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> CodecModel:
    """A codec from a native (published-layout) folder or a training checkpoint of the ``codec`` model.

    ``dtype`` casts the layers (e.g. bfloat16 on a GPU); the semantic codebook stays float32.
    """
    layout = detect_layout(folder)
    config = read_config(folder, layout)
    if layout == "training":
        check_training_model(folder, CODEC_MODEL, "a codec")
    elif layout != "native":
        raise CheckpointError(f"{folder} is a transformers folder; voxkit's codec reads params.json + consolidated.safetensors")
    args = _args_from(config, str(folder))
    state = read_tensors(weight_files(folder, layout))
    if layout == "training":
        state = {k[len(TRAINING_PREFIX) :]: v for k, v in state.items() if k.startswith(TRAINING_PREFIX)}
    else:
        state = published_to_module_state(state)
    # Built on the CPU, not the meta device: the FSQ library computes its tables at construction.
    # Everything loads as float32 (a bundled codec stores its layers in float16).
    model = CodecModel(args)
    has_encoder = any(k.startswith(ENCODER_PREFIXES) for k in state)
    if not has_encoder:  # a decoder-only checkpoint (the open published one): the encoder stays unset
        state.update({k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIXES)})
    check_state_dict(model, state, str(folder))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.has_encoder = has_encoder
    if dtype is not None:  # the layers only: the codebook stays a float32 table of means
        for name, module in model.named_children():
            if name != "quantizer":
                module.to(dtype)
    return model.to(device).eval()


def save_codec(model: CodecModel, folder: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
    """Write the native layout; ``dtype`` (e.g. float16 for a bundled model) applies to the layers, not the codebook.

    A codec loaded for inference (its weight norm folded, :func:`~voxkit.conv.fold_weight_norm`)
    is written with the weight-norm keys all the same, so every codec folder reads alike.
    """
    state = _weight_norm_state(model, model.state_dict())
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() and not k.startswith("quantizer.") else v)
        for k, v in state.items()
    }
    return write_folder(folder, "native", codec_params(model.args), module_to_published_state(state))


def _weight_norm_state(model: CodecModel, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A folded conv's ``conv.weight`` -> the ``g`` and ``v`` weight norm stores (g = |w|, v = w)."""
    if not model.args.conv_weight_norm:
        return state
    state = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, (CausalConv1d, CausalConvTranspose1d)) and not parametrize.is_parametrized(module.conv, "weight"):
            weight = state.pop(f"{name}.conv.weight")  # [C_out, C_in, K] (transposed: [C_in, C_out, K])
            state[f"{name}.conv.parametrizations.weight.original0"] = torch.norm_except_dim(weight, 2, 0)  # [C, 1, 1]
            state[f"{name}.conv.parametrizations.weight.original1"] = weight
    return state
