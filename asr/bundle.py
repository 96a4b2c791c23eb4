"""A recogniser with its tokenizer: what transcription needs from a model folder.

A folder holds the published layout (params.json + consolidated.safetensors) plus its tokenizer:
``vocab_subset.json`` (a compact vocabulary over Tekken, voxkit's small models), ``tekken.json``
(published models), or nothing (the Tekken file shipped with mistral-common). A training
checkpoint (``voxkit train``) loads too, with the tokenizer its run recorded; when that cannot be
found, the error names the export command that writes a self-contained folder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from voxkit.asr.checkpoint import load_recognizer, save_recognizer
from voxkit.asr.model import RealtimeRecognizer
from voxkit.checkpoint import detect_layout, recorded_tokenizer, recorded_tokenizer_spec
from voxkit.errors import CheckpointError
from voxkit.lm.fused_step import prepare_for_inference
from voxkit.ops.stored_weights import keep_16bit_weights
from voxkit.subset_tokenizer import SUBSET_FILE, SubsetTokenizer, load_folder_tokenizer
from voxkit.tokenizer import ByteTokenizer, Tokenizer


def default_model_dir() -> Path:
    """The small recogniser that ships inside the package."""
    from importlib.resources import files

    return Path(str(files("voxkit") / "assets" / "realtime-tiny"))


@dataclasses.dataclass
class RecognizerBundle:
    model: RealtimeRecognizer
    tokenizer: Tokenizer
    folder: Path


def load_bundle(
    folder: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.float32,
    keep_16bit: bool = True,
) -> RecognizerBundle:
    """Load a recogniser folder for inference.

    ``keep_16bit``: on a CPU, weights saved in float16 stay float16 in memory and are widened at
    each use (:mod:`voxkit.ops.stored_weights`): the same outputs as float32, half the memory
    traffic per streaming step. Projections that share an input are fused (:mod:`voxkit.lm.fusion`),
    and on a CPU the fused streaming step's C kernels are built now (:mod:`voxkit.lm.fused_step`).
    """
    path = Path(folder) if folder is not None else default_model_dir()
    if folder is None and not (path / "params.json").exists():
        raise CheckpointError(
            "this voxkit has no bundled recogniser yet (its first small model is still in training, see "
            "docs/asr.md): pass --model DIR with a recogniser folder, e.g. the published Voxtral Realtime "
            "weights or one made with 'voxkit train' + 'voxkit export asr'"
        )
    tokenizer = None
    if detect_layout(path) == "training":  # the tokenizer first: a missing one fails before the weights load
        remedy = f"export it with its tokenizer: voxkit export asr {path} --out DIR --tokenizer TOKENIZER_DIR"
        tokenizer = training_tokenizer(path, remedy)
    model = load_recognizer(path, device=device, dtype=dtype)
    if keep_16bit and torch.device(device).type == "cpu" and dtype == torch.float32:
        keep_16bit_weights(model)
    prepare_for_inference(model, device)  # fused projections and, on a CPU, the fused step's kernels
    if tokenizer is None:
        tokenizer = load_folder_tokenizer(path)
    if tokenizer.vocab_size != model.args.decoder.vocab_size:
        raise CheckpointError(
            f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model {model.args.decoder.vocab_size}"
        )
    return RecognizerBundle(model, tokenizer, path)


def training_tokenizer(path: str | os.PathLike[str], remedy: str) -> Tokenizer:
    """The tokenizer a training checkpoint's run recorded; a one-line CheckpointError ending in ``remedy`` otherwise."""
    tokenizer = recorded_tokenizer(path)
    if tokenizer is None:
        spec = recorded_tokenizer_spec(path)
        why = f"its recipe names {spec!r}, which is not a folder from here" if spec else "it has no recipe.json"
        raise CheckpointError(f"cannot tell the tokenizer of training checkpoint {path} ({why}): {remedy}")
    return tokenizer


def save_bundle(model: RealtimeRecognizer, tokenizer: Tokenizer, folder: str | os.PathLike[str], dtype: torch.dtype | None = None) -> Path:
    # the folder must name its tokenizer: a subset is saved, a byte tokenizer is named in params.json
    # (voxkit.tokenizer.load_tokenizer's rule), and nothing means the shipped Tekken. Tokenizer files
    # an earlier export left in the folder would take precedence over that, so they go (a Tekken
    # file is left only for a Tekken tokenizer, which may have been read from it).
    extra = {"tokenizer": "byte"} if isinstance(tokenizer, ByteTokenizer) else None
    path = save_recognizer(model, folder, dtype=dtype, extra_params=extra)
    stale = [] if isinstance(tokenizer, SubsetTokenizer) else [path / SUBSET_FILE]
    if isinstance(tokenizer, ByteTokenizer):
        stale += sorted(path.glob("tekken*.json"))
    for file in stale:
        file.unlink(missing_ok=True)
    if isinstance(tokenizer, SubsetTokenizer):
        tokenizer.save(path)
    return path
