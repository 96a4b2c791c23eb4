"""Codes files through the Python API: what ``Codec.decode`` takes (unsigned codes, a codes file's
path, a :class:`CodesFile`), codebooks wider than int16, and which mistake a file is refused for."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from test_codec_model import FRAME, tiny_args, tiny_codec
from voxkit.codec import Codec, CodesFile, load_codes
from voxkit.codec.codes_file import FORMAT, save_codes
from voxkit.codec.model import CodecModel
from voxkit.errors import VoxkitError


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(tiny_codec())


@pytest.fixture(scope="module")
def codes(codec: Codec) -> torch.Tensor:
    wave = (np.random.default_rng(2).standard_normal(5 * FRAME) * 0.3).astype(np.float32)
    return codec.encode(wave, 24000)  # [5, 5]


def stored_dtype(path: Path) -> str:
    with safe_open(str(path), framework="pt") as fh:
        return fh.get_slice("codes").get_dtype()


def test_codes_of_a_codebook_wider_than_int16_survive_the_file(tmp_path: Path, codec: Codec, codes: torch.Tensor) -> None:
    """int16 on disk turned code 40000 of a 65536-code codebook into -25536."""
    torch.manual_seed(0)
    wide = Codec(CodecModel(tiny_args(semantic_codebook_size=65536)))
    big = codes.clone()
    big[:, 0] = torch.tensor([40000, 65535, 0, 32768, 7])
    wide.save_codes(tmp_path / "wide.safetensors", big)
    assert stored_dtype(tmp_path / "wide.safetensors") == "I32"
    assert torch.equal(load_codes(tmp_path / "wide.safetensors").codes, big)
    assert wide.decode(tmp_path / "wide.safetensors").shape == (5 * FRAME,)
    codec.save_codes(tmp_path / "narrow.safetensors", codes)  # codebooks that fit keep int16: the same files and sizes
    assert stored_dtype(tmp_path / "narrow.safetensors") == "I16"
    # an int16 file of such a codebook, written before the wider type: the same 16 bits, read back as unsigned
    save_codes(tmp_path / "old.safetensors", big, 5 * FRAME, wide.model.args)
    old = {"codes": big.to(torch.int16)}  # 40000 -> -25536
    with safe_open(str(tmp_path / "old.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
    save_file(old, str(tmp_path / "old.safetensors"), metadata=meta)
    assert torch.equal(load_codes(tmp_path / "old.safetensors").codes, big)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, torch.uint16, torch.uint32, torch.uint64], ids=str)
def test_unsigned_codes_decode_like_signed_ones(codec: Codec, codes: torch.Tensor, dtype: object) -> None:
    """torch has no min/max for uint16 and wider: decoding them raised "min_all not implemented for 'UInt16'"."""
    given = codes.numpy().astype(dtype) if isinstance(dtype, type) else codes.to(dtype)  # type: ignore[arg-type]
    np.testing.assert_array_equal(codec.decode(given), codec.decode(codes))
    too_big = codes.clone()
    too_big[0, 0] = 64  # the tiny codebook holds 64 codes
    bad = too_big.numpy().astype(dtype) if isinstance(dtype, type) else too_big.to(dtype)  # type: ignore[arg-type]
    with pytest.raises(VoxkitError, match=re.escape("semantic codes must lie in [0, 64)")):
        codec.decode(bad)
    if dtype in (np.uint64, torch.uint64):  # past 2^63: no wrap-around into a valid code
        huge = codes.numpy().astype(np.uint64)
        huge[0, 1] = 2**64 - 1
        with pytest.raises(VoxkitError, match="acoustic codes must lie in"):
            codec.decode(huge if dtype is np.uint64 else torch.from_numpy(huge))


def test_decode_takes_a_codes_file_by_path_or_as_read(tmp_path: Path, codec: Codec, codes: torch.Tensor) -> None:
    """A str path raised a raw torch error, a CodesFile a TypeError; both now decode, trimmed to the recorded length."""
    path = tmp_path / "talk.safetensors"
    codec.save_codes(path, codes, num_samples=4 * FRAME + 100)
    expected = codec.decode(codes, num_samples=4 * FRAME + 100)
    for given in (str(path), path, load_codes(path)):
        np.testing.assert_array_equal(codec.decode(given), expected)
    assert codec.decode(path, num_samples=FRAME).shape == (FRAME,)  # an explicit length wins
    assert isinstance(load_codes(path), CodesFile) and load_codes(path).path == str(path)
    torch.manual_seed(1)  # another random start: same sizes, another codebook
    other = Codec(CodecModel(tiny_args()))
    for given in (str(path), load_codes(path)):  # the file's guard holds in the library, not only in the CLI
        with pytest.raises(VoxkitError, match=re.escape(f"{path} was written by another codec (its codebook")):
            other.decode(given)
    with pytest.raises(VoxkitError, match=re.escape(f"{tmp_path / 'none.safetensors'}: no such file")):
        codec.decode(str(tmp_path / "none.safetensors"))
    with pytest.raises(VoxkitError, match=r"codes must be an integer tensor \[T, 5\], got bytes"):
        codec.decode(b"\x00\x01")  # type: ignore[arg-type]
    with pytest.raises(VoxkitError, match="num_samples is 9601, more than the 5 frames hold"):
        codec.save_codes(path, codes, num_samples=5 * FRAME + 1)


def test_a_file_of_another_rate_is_named_as_another_codecs_not_as_damaged(tmp_path: Path, codec: Codec, codes: torch.Tensor) -> None:
    """Its length, in samples at its own rate, overflows its frames read at 24 kHz: the rate is the news."""
    meta = {"format": FORMAT, "num_samples": str(5 * FRAME), "sample_rate": "16000", "frame_rate": "12.5",
            "semantic_codebook_size": "64", "acoustic_codebook_size": "5", "num_codebooks": "5"}
    path = tmp_path / "other.safetensors"
    save_file({"codes": codes.to(torch.int16)}, str(path), metadata=meta)
    with pytest.raises(VoxkitError, match=re.escape(f"{path} was written by another codec (codebooks 64/5, 16000 Hz")):
        load_codes(path, codec.model.args)
    with pytest.raises(VoxkitError, match="was written by another codec"):
        codec.decode(path)
    with pytest.raises(VoxkitError, match="the file is damaged"):  # without a codec to compare with, the length is all it has
        load_codes(path)


def test_a_sample_rate_given_with_a_file_is_refused(tmp_path: Path, codec: Codec) -> None:
    """It was ignored without a word: the file's header gives its rate."""
    path = tmp_path / "talk.wav"
    sf.write(path, 0.2 * np.sin(np.arange(16000) / 9), 16000)
    for given in (str(path), path, path.read_bytes()):
        with pytest.raises(VoxkitError, match=r"sample_rate=44100 is for arrays of samples; a file is read at the rate its header"):
            codec.encode(given, 44100)
    with pytest.raises(VoxkitError, match="sample_rate=16000 is for arrays"):
        codec.roundtrip(str(path), 16000)
    assert codec.encode(str(path)).shape == (13, 5)  # 1 s at 16 kHz -> 24000 samples -> 12.5 frames, padded
