"""Writing audio: float samples to a file (the format from its extension) or to WAV bytes.

Why a file is written whole or not at all: the CLIs write over a user's file with ``--force``, and a
full disk or a killed process used to leave half a file where a good one had been. The samples go
to a hidden sibling first and are renamed over the target once complete. There is no fsync: the
point is never to leave a broken file behind on an error, not durability across a power cut, and
corpus synthesis writes thousands of short files.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
from pathlib import Path

import numpy as np
import torch

from voxkit.errors import AudioError

SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}
"""What each usual extension is written as; others take libsndfile's default for their format."""


def save_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write [T] or [C, T] float audio; the format follows the extension (.wav and .flac 16-bit, .ogg Vorbis).

    Errors are one :class:`AudioError` line naming ``path`` (an unknown extension, a place that
    cannot be written); an existing file at ``path`` is replaced only by a complete new one.
    """
    import soundfile as sf

    final = Path(os.path.realpath(path))  # through a link: the file it names is replaced, the link stays
    arr = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if arr.ndim == 2:
        arr = arr.T  # [T, C] for soundfile
    if arr.size == 0:
        raise AudioError(f"refusing to write empty audio to {os.fspath(path)}")
    arr = np.clip(arr.astype(np.float32, copy=False), -1.0, 1.0)
    ext = final.suffix.lower()
    fmt = ext[1:].upper()
    if fmt not in sf.available_formats():  # the hidden name has no extension: the format must be given
        raise AudioError(f"cannot write {os.fspath(path)}: unknown audio format {ext or '(no extension)'!r} (use .wav, .flac or .ogg)")
    blocked = next((p for p in (final.parent, *final.parent.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise AudioError(f"cannot write {os.fspath(path)}: {blocked} is a file, not a folder")
    tmp = final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp, arr, int(sample_rate), format=fmt, subtype=SUBTYPES.get(ext))
        if final.exists():
            shutil.copymode(final, tmp)  # a replaced file keeps its permissions
        os.replace(tmp, final)
    except (OSError, RuntimeError) as err:  # libsndfile's errors are RuntimeErrors
        _remove(tmp)
        reason = getattr(err, "strerror", None) or getattr(err, "error_string", None) or err
        raise AudioError(f"cannot write {os.fspath(path)}: {reason}") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    """Remove a partial file if there is one (under a file instead of a folder there cannot be)."""
    with contextlib.suppress(OSError):
        path.unlink()


def to_bytes_wav(wav: torch.Tensor, sample_rate: int) -> bytes:
    """Encode mono/multichannel float audio as an in-memory 16-bit wav (for tests and servers)."""
    import soundfile as sf

    buf = io.BytesIO()
    arr = wav.detach().cpu().numpy()
    sf.write(buf, arr.T if arr.ndim == 2 else arr, int(sample_rate), format="WAV", subtype="PCM_16")
    return buf.getvalue()
