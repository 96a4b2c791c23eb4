"""Load and save backbone checkpoints in both published layouts."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from voxkit.checkpoint import (
    Layout,
    build_and_load,
    detect_layout,
    read_config,
    read_tensors,
    training_model,
    weight_files,
    write_folder,
)
from voxkit.errors import CheckpointError
from voxkit.lm.args import TransformerArgs
from voxkit.lm.convert import args_to_hf_config, hf_config_to_args, hf_to_native_state, native_to_hf_state
from voxkit.lm.transformer import Transformer


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
        return hf_config_to_args(config), layout
    try:
        return TransformerArgs.from_dict(config), layout
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{Path(folder) / 'params.json'} is not a valid backbone config: {err}") from None


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
        if args.tied_embeddings:
            state.pop("lm_head.weight", None)  # transformers may store the tied copy
        state = hf_to_native_state(state, args)
    return build_and_load(lambda: Transformer(args), state, device=device, dtype=dtype, where=str(folder))


def save_transformer(model: Transformer, folder: str | os.PathLike[str], layout: Layout = "native") -> Path:
    """Write ``model`` as a native (params.json + consolidated.safetensors) or HF folder."""
    state = {k: v for k, v in model.state_dict().items()}
    if layout == "native":
        return write_folder(folder, "native", model.args.to_dict(), state)
    return write_folder(folder, "hf", args_to_hf_config(model.args), native_to_hf_state(state, model.args))
