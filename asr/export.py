"""Turn a training checkpoint into a recogniser folder in the published layout (+ tokenizer).

Training checkpoints hold voxkit's module keys (and training-only heads such as the auxiliary
CTC head) next to ``config.json`` (the params.json the model exports) and ``recipe.json``. The
shipped folder is the published native layout plus the vocabulary subset, optionally stored in
half precision. The tokenizer is the one the run recorded (the recipe's ``data.tokenizer``)
unless another is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from voxkit.asr.bundle import save_bundle, training_tokenizer
from voxkit.asr.checkpoint import load_recognizer
from voxkit.asr.model import RealtimeRecognizer
from voxkit.checkpoint import detect_layout
from voxkit.errors import CheckpointError
from voxkit.tokenizer import Tokenizer


def _require_training(checkpoint: str | os.PathLike[str]) -> None:
    layout = detect_layout(checkpoint)
    if layout != "training":
        raise CheckpointError(
            f"{checkpoint} is a {layout} model folder, not a training checkpoint (config.json + model.safetensors from voxkit train)"
        )


def load_training_checkpoint(checkpoint: str | os.PathLike[str]) -> RealtimeRecognizer:
    """The recogniser of a training checkpoint folder, without its training-only heads."""
    _require_training(checkpoint)
    return load_recognizer(checkpoint)


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    tokenizer: Tokenizer | None,
    out: str | os.PathLike[str],
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``checkpoint`` as a published-layout folder; ``tokenizer`` None: the one the run recorded."""
    _require_training(checkpoint)
    if tokenizer is None:
        tokenizer = training_tokenizer(checkpoint, "pass the tokenizer folder with --tokenizer DIR")  # before the weights
    model = load_recognizer(checkpoint)
    if tokenizer.vocab_size != model.args.decoder.vocab_size:
        raise CheckpointError(f"tokenizer has {tokenizer.vocab_size} tokens, the checkpoint {model.args.decoder.vocab_size}")
    return save_bundle(model, tokenizer, out, dtype=dtype)
