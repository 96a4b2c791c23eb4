"""TTS model folders: the backbone's native layout plus the codec and the preset voices.

A folder holds ``params.json`` (backbone fields + the ``voxkit_tts`` section), ``consolidated.safetensors``,
the tokenizer (``vocab_subset.json`` for a small vocabulary, else the params' ``tokenizer`` rule), the
codec it speaks through (a codec folder, by default the ``codec/`` sub-folder) and ``voices/``: one
safetensors file of prompt frames per preset voice. A training checkpoint of the ``tts`` recipe model
loads too (its recipe names the codec folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from voxkit.checkpoint import (
    CHECKPOINT_MARKER,
    NATIVE_WEIGHTS,
    build_and_load,
    check_training_model,
    detect_layout,
    read_config,
    read_tensors,
    recorded_folder_candidates,
    training_recipe,
    weight_files,
    write_folder,
    write_safetensors,
)
from voxkit.errors import CheckpointError
from voxkit.subset_tokenizer import SubsetTokenizer
from voxkit.tokenizer import ByteTokenizer, Tokenizer
from voxkit.tts.args import TTSArgs
from voxkit.tts.model import TTSModel

TTS_MODEL = "tts"  # the recipe's [model] name, recorded in training checkpoints
VOICES = "voices"


def load_tts(folder: str | os.PathLike[str], *, device: str | torch.device = "cpu",
             dtype: torch.dtype | None = torch.float32) -> tuple[TTSModel, Path]:
    """(model, codec folder) of a TTS folder or a training checkpoint. Weights stored in 16 bits load as ``dtype``.

    A model folder names its codec relative to itself (the published layout carries it along). A
    training checkpoint's codec is the recipe's ``model.codec``, relative to where training ran
    (see :func:`training_codec`); that one is checked here, before any weights are read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"TTS model folder not found: {folder}")
    layout = detect_layout(folder)
    config = read_config(folder, layout)
    if layout == "training":
        check_training_model(folder, TTS_MODEL, "a TTS model")
        args = TTSArgs.from_params({k: v for k, v in config.items() if k != CHECKPOINT_MARKER}, str(folder))
        codec = training_codec(folder, args)
    elif layout == "native":
        args = TTSArgs.from_params(config, str(folder / "params.json"))
        codec = Path(args.codec)
        codec = codec if codec.is_absolute() else folder / codec
    else:
        raise CheckpointError(f"{folder} is a transformers folder; a voxkit TTS model reads params.json + {NATIVE_WEIGHTS}")
    state = read_tensors(weight_files(folder, layout))
    model = build_and_load(lambda: TTSModel(args), state, device=device, dtype=dtype, where=str(folder))
    return model, codec


def training_codec(checkpoint: Path, args: TTSArgs) -> Path:
    """The codec folder of a training checkpoint; a one-line CheckpointError naming where it was looked for.

    The recipe's ``model.codec`` is found as a recipe's tokenizer folder is (relative to the run's
    working directory, recovered from the checkpoint's path, else to the current one), because a
    relative path in the recipe never meant the checkpoint folder. The absolute path the trainer
    resolved it to (the model config's ``codec``) comes last: it still holds when neither place can
    be told, e.g. with an absolute ``train.out_dir``, as long as the codec has not moved.
    """
    spec = str(((training_recipe(checkpoint) or {}).get("model") or {}).get("codec", args.codec))
    candidates = recorded_folder_candidates(checkpoint, spec)
    if Path(args.codec).is_absolute() and Path(args.codec) not in candidates:
        candidates.append(Path(args.codec))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise CheckpointError(f"the codec of training checkpoint {checkpoint} is missing: its recipe names model.codec={spec!r}, "
                          f"which is not a folder from here (looked at {looked})")


def save_tts(model: TTSModel, folder: str | os.PathLike[str], *, dtype: torch.dtype | None = None,
             tokenizer: Tokenizer | None = None) -> Path:
    """Write the native layout (weights cast to ``dtype``, e.g. float16 for a bundled model).

    ``tokenizer``: a vocabulary subset is saved beside the weights, a byte tokenizer is named in
    params.json, none means the shipped Tekken (voxkit.tokenizer.load_tokenizer's rule).
    """
    state = {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in model.state_dict().items()}
    params = model.args.to_params() | ({"tokenizer": "byte"} if isinstance(tokenizer, ByteTokenizer) else {})
    path = write_folder(folder, "native", params, state)
    if isinstance(tokenizer, SubsetTokenizer):
        tokenizer.save(path)
    return path


def export_tts(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], tokenizer: Tokenizer,
               voices: list[tuple[str, str, str | None]] = (), *, dtype: torch.dtype = torch.float16,
               codec_link: str | None = None) -> Path:
    """A training checkpoint -> a model folder: weights, tokenizer, the codec copied into ``codec/``
    (layers in ``dtype``) and one preset voice per (name, reference audio, transcript).

    ``codec_link``: instead of a copy, name a codec folder by its path relative to ``out`` (a bundled
    TTS model names the bundled codec: one copy of the codec in the package, not two).

    Everything that can fail (the weights, the codec, the link, each voice's name and audio) is
    loaded and checked before ``out`` gets its first file, so a failed export leaves no half model
    folder that would look like a finished one. The voices are encoded by the codec the folder
    will speak through (the copy, rounded to ``dtype``), staged in a temporary folder beside ``out``.
    """
    import dataclasses
    import tempfile

    from voxkit.codec.api import Codec
    from voxkit.codec.checkpoint import load_codec, save_codec

    model, codec_folder = load_tts(checkpoint)
    linked = None if codec_link is None else Path(os.path.normpath(Path(out) / codec_link))  # before ``out`` exists
    if linked is not None and not linked.is_dir():
        raise CheckpointError(f"--codec-link {codec_link}: no codec folder at {linked}")
    for name, _, _ in voices:
        check_voice_name(name)
    parent = Path(out).absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{Path(out).name}.", dir=parent) as staging:
        # the codec the folder will speak through: the link, or the copy as the folder will hold it
        spoken = linked if linked is not None else save_codec(load_codec(codec_folder), Path(staging) / "codec", dtype=dtype)
        codec = Codec.from_pretrained(spoken)
        a, c = model.args, codec.model.args
        if (a.semantic_codebook_size, a.acoustic_dim, a.acoustic_levels) != (
                c.semantic_codebook_size, c.acoustic_dim, c.acoustic_codebook_size):
            raise CheckpointError(f"the model speaks {a.semantic_codebook_size} + {a.acoustic_dim}x{a.acoustic_levels} codes, "
                                  f"its codec {linked or codec_folder} has {c.semantic_codebook_size} + "
                                  f"{c.acoustic_dim}x{c.acoustic_codebook_size}")
        codes = [codec.encode(audio)[: a.max_reference_frames] for _, audio, _ in voices]  # [R, 37] each
        # nothing below reads user input any more: only from here on is ``out`` written
        model.args = dataclasses.replace(model.args, codec=codec_link or "codec")
        path = save_tts(model, out, dtype=dtype, tokenizer=tokenizer)
        if linked is None:
            (path / "codec").mkdir(exist_ok=True)
            for file in spoken.iterdir():
                os.replace(file, path / "codec" / file.name)
    for (name, audio, text), frames in zip(voices, codes, strict=True):
        save_voice(path, name, frames, text=text, origin=os.path.basename(audio))
    return path


def voices_dir(folder: str | os.PathLike[str]) -> Path:
    return Path(folder) / VOICES


def list_voices(folder: str | os.PathLike[str]) -> list[str]:
    """Preset voice names of a model folder (sorted)."""
    return sorted(p.stem for p in voices_dir(folder).glob("*.safetensors"))


def check_voice_name(name: str) -> None:
    """Refuse a voice name that is no plain file name (it names ``voices/NAME.safetensors``)."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise CheckpointError(f"bad voice name {name!r}")


def save_voice(folder: str | os.PathLike[str], name: str, codes: torch.Tensor, text: str | None = None,
               origin: str | None = None) -> Path:
    """Store a preset voice: its prompt frames [R, 37] (int16 where every code fits, else int32: a
    codebook past 32768 codes would wrap), with the reference transcript and origin."""
    check_voice_name(name)
    meta = {"format": "pt", "text": text or "", "origin": origin or ""}
    path = voices_dir(folder) / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    fits = codes.numel() == 0 or int(codes.max()) < 2**15
    write_safetensors(path, {"codes": codes.to(torch.int16 if fits else torch.int32)}, metadata=meta)
    return path


def load_voice(folder: str | os.PathLike[str], name: str) -> tuple[torch.Tensor, str | None]:
    """A preset voice's frames [R, 37] int64 and reference transcript (None if it has none)."""
    from safetensors import safe_open

    path = voices_dir(folder) / f"{name}.safetensors"
    if not path.is_file():
        known = ", ".join(list_voices(folder)) or "none"
        raise CheckpointError(f"no preset voice {name!r} (this model has: {known})")
    with safe_open(str(path), framework="pt") as f:
        codes = f.get_tensor("codes").long()
        text = (f.metadata() or {}).get("text") or None
    return codes, text
