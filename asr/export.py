"""Turn a training checkpoint into a recogniser folder in the published layout (+ tokenizer).

Training checkpoints hold voxkit's module keys (and training-only heads such as the auxiliary
CTC head) next to ``config.json`` (the params.json the model exports). The shipped folder is the
published native layout plus the vocabulary subset, optionally stored in half precision.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.bundle import save_bundle
from voxkit.asr.model import RealtimeRecognizer
from voxkit.checkpoint import build_and_load, read_tensors
from voxkit.errors import CheckpointError
from voxkit.tokenizer import Tokenizer


def load_training_checkpoint(checkpoint: str | os.PathLike[str]) -> RealtimeRecognizer:
    path = Path(checkpoint)
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise CheckpointError(f"{path} is not a training checkpoint (config.json + model.safetensors)")
    args = RealtimeArgs.from_params(json.loads((path / "config.json").read_text(encoding="utf-8")))
    state = {k: v for k, v in read_tensors([path / "model.safetensors"]).items() if not k.startswith("ctc_head.")}
    return build_and_load(lambda: RealtimeRecognizer(args), state, where=str(path))


def export_checkpoint(
    checkpoint: str | os.PathLike[str], tokenizer: Tokenizer, out: str | os.PathLike[str], dtype: torch.dtype | None = None
) -> Path:
    model = load_training_checkpoint(checkpoint)
    if tokenizer.vocab_size != model.args.decoder.vocab_size:
        raise CheckpointError(f"tokenizer has {tokenizer.vocab_size} tokens, the checkpoint {model.args.decoder.vocab_size}")
    return save_bundle(model, tokenizer, out, dtype=dtype)
