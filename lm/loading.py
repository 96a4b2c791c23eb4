"""Load and save backbone checkpoints in both published layouts.

A folder is checked in the names its author wrote before anything is converted: a params.json's
fields against their types, a transformers config against the architectures voxkit computes, and a
transformers folder's tensors against the names and shapes transformers itself would expect. A
mistake therefore reads as the author's own key, not as a key of voxkit's internal layout.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

import torch

from voxkit.checkpoint import (
    Layout,
    build_and_load,
    check_shapes,
    detect_layout,
    read_config,
    read_tensors,
    training_model,
    weight_files,
    write_folder,
)
from voxkit.checks import is_whole
from voxkit.config import ConfigError, JsonArgs, check_table, table_fields
from voxkit.errors import CheckpointError
from voxkit.lm.args import TransformerArgs
from voxkit.lm.convert import DERIVED_HF_KEYS, args_to_hf_config, hf_config_to_args, hf_to_native_state, native_to_hf_state
from voxkit.lm.transformer import Transformer

# params.json fields without which no backbone can be built (the reference implementation has no
# defaults for them either); a missing one would otherwise take a default of a 7B model.
REQUIRED_PARAMS = ("dim", "n_layers", "head_dim", "hidden_dim", "n_heads", "n_kv_heads", "norm_eps", "vocab_size")
CAUSAL_LM_SUFFIX = "ForCausalLM"


def _check_known_fields(cls: type[JsonArgs], data: dict[str, Any], path: tuple[str, ...]) -> None:
    """Type-check the fields ``cls`` knows (nested sections too); unknown keys are kept as ``extra``, not refused."""
    fields = table_fields(cls)
    known = {k: v for k, v in data.items() if k in fields}
    hints = typing.get_type_hints(cls)
    sections = {}
    for key, value in known.items():
        sub = next((a for a in (hints[key], *typing.get_args(hints[key])) if dataclasses.is_dataclass(a)), None)
        if sub is not None and isinstance(value, dict):
            sections[key] = (sub, value)
    check_table(cls, {k: v for k, v in known.items() if k not in sections}, path)
    for key, (sub, value) in sections.items():
        _check_known_fields(sub, value, (*path, key))


def _params_args(config: dict[str, Any], file: Path, required: bool) -> TransformerArgs:
    """TransformerArgs of a params-style config, or a one-line CheckpointError naming the field at fault."""
    if "vision_encoder" in config:  # the published Ministral-3 / Mistral-Small repositories: text and vision
        raise CheckpointError(f"{file} describes a vision-language model (its vision_encoder section): voxkit loads "
                              "text backbones only (a params.json without vision_encoder, or a transformers ...ForCausalLM folder)")
    if required:
        missing = [k for k in REQUIRED_PARAMS if k not in config]
        if missing:
            raise CheckpointError(f"{file} lacks {', '.join(missing)}: a backbone's params.json must give them")
        for key in REQUIRED_PARAMS:
            value, least = config[key], 0 if key == "vocab_size" else 1  # vocab_size 0: an encoder body, no embedding
            if key != "norm_eps" and (not is_whole(value) or value < least):
                kind = "a positive integer" if least else "a whole number (0: an encoder body)"
                raise CheckpointError(f"{file}: {key} must be {kind}, got {value!r}")
    try:
        _check_known_fields(TransformerArgs, config, ())
        return TransformerArgs.from_dict(config)
    except ConfigError as err:
        raise CheckpointError(f"{file}: {err}") from None
    except (TypeError, ValueError, ZeroDivisionError) as err:
        raise CheckpointError(f"{file} is not a valid backbone config: {err}") from None


def _check_architecture(config: dict[str, Any], folder: str | os.PathLike[str]) -> None:
    """A transformers folder of a base model or of a task head (``MistralModel``, ``...ForSequenceClassification``)
    has no language-model head under transformers' names: say so instead of listing its keys as foreign."""
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures:
        return
    if not any(isinstance(a, str) and a.endswith(CAUSAL_LM_SUFFIX) for a in architectures):
        raise CheckpointError(
            f"{Path(folder) / 'config.json'} describes {', '.join(map(str, architectures))}, not a causal language model "
            f"(voxkit loads ...{CAUSAL_LM_SUFFIX} folders)"
        )


def load_args(folder: str | os.PathLike[str]) -> tuple[TransformerArgs, Layout]:
    layout = detect_layout(folder)
    config = read_config(folder, layout)
    if layout == "training" and "multimodal" in config:
        # A whole model's training checkpoint (a recogniser's, ...), not a bare backbone's.
        what = training_model(folder) or "a multimodal model"
        raise CheckpointError(
            f"{folder} is a training checkpoint of {what!r}, not a backbone folder: load it with that model's "
            f"loader, or export it first (voxkit export asr {folder} --out DIR)"
        )
    if layout == "hf":
        try:
            args = hf_config_to_args(config)
        except CheckpointError as err:
            raise CheckpointError(f"{folder}: {err}") from None
        _check_architecture(config, folder)
        return args, layout
    name = "params.json" if layout == "native" else "config.json"
    return _params_args(config, Path(folder) / name, required=layout == "native"), layout


def hf_shapes(args: TransformerArgs) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes of a transformers folder of this model (no memory is spent: meta tensors)."""
    with torch.device("meta"):
        model = Transformer(args)
    return {k: tuple(v.shape) for k, v in native_to_hf_state(model.state_dict(), args).items()}


def load_transformer(
    folder: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Transformer:
    """Build a backbone from a native or HF folder (meta device, strict ``assign=True`` load).

    dtype None keeps the checkpoint's dtype.
    """
    args, layout = load_args(folder)
    state = read_tensors(weight_files(folder, layout))
    if layout == "hf":
        state = {k: v for k, v in state.items() if not DERIVED_HF_KEYS.search(k)}
        if args.tied_embeddings:
            state.pop("lm_head.weight", None)  # transformers may store the tied copy
        check_shapes(hf_shapes(args), state, str(folder))
        state = hf_to_native_state(state, args)
    return build_and_load(lambda: Transformer(args), state, device=device, dtype=dtype, where=str(folder))


def save_transformer(model: Transformer, folder: str | os.PathLike[str], layout: Layout = "native") -> Path:
    """Write ``model`` as a native (params.json + consolidated.safetensors) or HF folder."""
    state = {k: v for k, v in model.state_dict().items()}
    if layout == "native":
        return write_folder(folder, "native", model.args.to_dict(), state)
    return write_folder(folder, "hf", args_to_hf_config(model.args), native_to_hf_state(state, model.args))
