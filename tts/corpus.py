"""A TTS training corpus: every clip of a manifest encoded once into codec frames.

Why precompute: the TTS model trains on frames, never on waveforms; encoding a clip through the
codec costs more than a training step spends on it, and the same clip is seen every epoch. The
store is one safetensors file (``codes`` [total frames, 37] int16, int32 for codebooks past 32768, and ``offsets`` [clips + 1]) and
``index.jsonl`` with each clip's text, speaker, language and engine, so a task loads the whole
corpus into memory at once (a few MB per hour of speech).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch

from voxkit.errors import DataError

CODES_FILE = "codes.safetensors"
INDEX_FILE = "index.jsonl"


@dataclasses.dataclass
class Clip:
    """One encoded clip of the corpus."""

    text: str
    speaker: str
    language: str
    codes: torch.Tensor  # [T, 37] int64
    engine: str = ""
    id: str = ""


def encode_manifests(manifests: Iterable[str], codec_folder: str, out: str | os.PathLike[str], *, limit: int | None = None,
                     max_seconds: float = 20.0, progress: bool = True) -> int:
    """Encode every clip of ``manifests`` (at most ``limit`` per manifest, none longer than ``max_seconds``) into ``out``.

    Returns the number of clips written. Rows need text and speaker (the voice a reference is drawn from).
    """
    from tqdm import tqdm

    from voxkit.checkpoint import write_json, write_safetensors
    from voxkit.codec.api import Codec
    from voxkit.codec.codes_file import storage_dtype
    from voxkit.data.manifest import read_manifest, resolve_audio

    codec = Codec.from_pretrained(codec_folder)
    rows: list[tuple[dict, str]] = []
    for manifest in manifests:
        if not Path(manifest).is_file():
            raise DataError(f"manifest not found: {manifest}")
        base = os.path.dirname(os.path.abspath(manifest))
        taken = [r for r in read_manifest(manifest) if float(r.get("duration", 0)) <= max_seconds and r.get("text")]
        rows.extend((r, resolve_audio(r, base)) for r in taken[:limit])
    if not rows:
        raise DataError("no clips to encode (empty manifests, or every clip longer than max_seconds)")
    index, chunks, offsets = [], [], [0]
    with torch.inference_mode():
        for row, path in tqdm(rows, desc="encoding clips", unit="clip", disable=not progress):
            codes = codec.encode(path)  # [T, 37]
            chunks.append(codes.to(storage_dtype(codec.model.args)))  # int16 where the codebooks allow, as codes files
            offsets.append(offsets[-1] + codes.shape[0])
            index.append({"id": row.get("id", ""), "text": row["text"], "speaker": row.get("speaker") or "unknown",
                          "language": row.get("language", "en"), "engine": row.get("engine", ""), "frames": int(codes.shape[0])})
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / CODES_FILE, {"codes": torch.cat(chunks), "offsets": torch.tensor(offsets)})
    with open(folder / INDEX_FILE, "w", encoding="utf-8") as fh:
        for item in index:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    write_json(folder / "codec.json", {"codec": os.path.abspath(codec_folder)})
    return len(index)


def read_corpus(folder: str | os.PathLike[str]) -> list[Clip]:
    """The clips of an encoded corpus (``voxkit data tts`` output)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CODES_FILE).is_file() or not (folder / INDEX_FILE).is_file():
        raise DataError(f"{folder} is not an encoded TTS corpus (make one with voxkit data tts)")
    tensors = load_file(str(folder / CODES_FILE))
    codes, offsets = tensors["codes"].long(), tensors["offsets"].tolist()
    clips = []
    with open(folder / INDEX_FILE, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            clips.append(Clip(text=row["text"], speaker=row["speaker"], language=row.get("language", "en"),
                              codes=codes[offsets[i] : offsets[i + 1]], engine=row.get("engine", ""), id=row.get("id", "")))
    if len(clips) != len(offsets) - 1:
        raise DataError(f"{folder}: index and codes disagree ({len(clips)} rows, {len(offsets) - 1} clips)")
    return clips
