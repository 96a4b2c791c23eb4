"""``voxkit codec`` given what a new user gives it by mistake, and odd audio it must still get right.

Every mistake is one line ``voxkit codec: error: ...`` with status 2 and no output file; a codes
file whose codes are not codes (floats, the wrong shape, a length they cannot hold) is refused
instead of decoded into a wrong recording.
"""

from __future__ import annotations

import errno
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from cli_helpers import refused, run_cli
from test_codec_cli import TINY, tiny_codec_folder
from voxkit.codec.api import Codec
from voxkit.codec.args import CodecArgs
from voxkit.codec.checkpoint import save_codec
from voxkit.codec.codes_file import FORMAT, load_codes
from voxkit.codec.model import CodecModel
from voxkit.errors import VoxkitError

FRAME = 1920  # samples per frame at 24 kHz


def _codes_file(path: Path, codes: torch.Tensor, num_samples: int) -> Path:
    """A file with the metadata ``voxkit codec encode`` writes, around the given codes."""
    meta = {"format": FORMAT, "num_samples": str(num_samples), "sample_rate": "24000", "frame_rate": "12.5",
            "semantic_codebook_size": str(TINY["semantic_codebook_size"]),
            "acoustic_codebook_size": str(TINY["acoustic_codebook_size"]), "num_codebooks": "5"}
    save_file({"codes": codes}, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    ("codes", "num_samples", "message"),
    [
        (torch.rand(3, 5), 3 * FRAME, "its codes are f32 values, not integers"),  # read as zeros before
        (torch.ones(3, 5).half(), 3 * FRAME, "its codes are f16 values, not integers"),
        (torch.ones(3, 5, dtype=torch.bool), 3 * FRAME, "its codes are bool values, not integers"),
        (torch.zeros(15, dtype=torch.int16), 3 * FRAME, "its codes have shape [15], not [frames, codes per frame]"),
        (torch.zeros(1, 3, 5, dtype=torch.int16), 3 * FRAME, "its codes have shape [1, 3, 5]"),
        (torch.zeros(0, 5, dtype=torch.int16), 0, "holds no frames: nothing to decode"),
        (torch.zeros(3, 5, dtype=torch.int16), 0, "a length of 0 samples: nothing to decode"),
        (torch.zeros(3, 5, dtype=torch.int16), 10**9, "more than its 3 frames hold (5760): the file is damaged"),
        (torch.full((3, 5), 64, dtype=torch.int16), 3 * FRAME, "codes.safetensors: semantic codes must lie in [0, 64)"),
        (torch.tensor([[0, 0, 5, 0, 0]], dtype=torch.int16), FRAME, "codes.safetensors: acoustic codes must lie in [0, 5)"),
    ],
)
def test_codes_that_are_not_codes_are_refused(
    tmp_path: Path, codec_dir: Path, codes: torch.Tensor, num_samples: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _codes_file(tmp_path / "codes.safetensors", codes, num_samples)
    out = tmp_path / "out.wav"
    line = refused(["codec", "decode", str(path), str(out), "--model", str(codec_dir)], capsys)
    assert message in line and str(path) in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("codes", "num_samples", "message"),
    [
        (torch.rand(3, 5), 3 * FRAME, "its codes are f32 values, not integers"),
        (torch.zeros(1, 3, 5, dtype=torch.int16), 3 * FRAME, "its codes have shape [1, 3, 5]"),
        (torch.zeros(3, 5, dtype=torch.int16), 3 * FRAME + 1, "more than its 3 frames hold (5760): the file is damaged"),
    ],
)
def test_load_codes_refuses_what_is_not_codes(tmp_path: Path, codes: torch.Tensor, num_samples: int, message: str) -> None:
    """The library refuses them too, not only the command (a script reading codes files)."""
    path = _codes_file(tmp_path / "codes.safetensors", codes, num_samples)
    with pytest.raises(VoxkitError, match=re.escape(message)):
        load_codes(path)


def test_codec_decode_refuses_bool_codes_and_a_length_its_frames_cannot_hold(codec_dir: Path) -> None:
    codec = Codec.from_pretrained(codec_dir)
    with pytest.raises(VoxkitError, match="integer tensor"):
        codec.decode(torch.zeros(3, 5, dtype=torch.bool))
    with pytest.raises(VoxkitError, match=r"num_samples is 1000000, more than the 3 frames hold \(5760\)"):
        codec.decode(torch.zeros(3, 5, dtype=torch.long), num_samples=10**6)
    assert codec.decode(torch.zeros(3, 5, dtype=torch.long), num_samples=3 * FRAME - 7).shape == (3 * FRAME - 7,)


def test_codes_of_a_codec_with_the_same_sizes_but_another_codebook_are_refused(
    tmp_path: Path, codec_dir: Path, tone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(1)  # another random start: same shapes, another codebook
    other = tmp_path / "other"
    save_codec(CodecModel(CodecArgs(**TINY)), other)  # type: ignore[arg-type]
    codes = tmp_path / "c.safetensors"
    assert run_cli(["codec", "encode", str(tone), str(codes), "--model", str(codec_dir)], capsys)[0] == 0
    assert load_codes(codes).codebook == Codec.from_pretrained(codec_dir).codebook_fingerprint
    line = refused(["codec", "decode", str(codes), str(tmp_path / "x.wav"), "--model", str(other)], capsys)
    assert "was written by another codec (its codebook" in line and str(codes) in line, line
    assert run_cli(["codec", "decode", str(codes), str(tmp_path / "y.wav"), "--model", str(codec_dir)], capsys)[0] == 0


def test_audio_on_stdin_is_encoded_as_the_file_is(
    tmp_path: Path, codec_dir: Path, tone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(codec_dir)]
    assert run_cli(["codec", "encode", str(tone), str(tmp_path / "file.safetensors"), *model], capsys)[0] == 0
    for data, expected in ((tone.read_bytes(), None), (b"", "stdin: no audio received"),
                           (b"not audio" * 50, "stdin")):  # named as the user knows it, not as "<stream>"
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        target = tmp_path / "piped.safetensors"
        if expected is None:
            assert run_cli(["codec", "encode", "-", str(target), *model], capsys)[0] == 0
            assert torch.equal(load_codes(target).codes, load_codes(tmp_path / "file.safetensors").codes)
        else:
            line = refused(["codec", "encode", "-", str(tmp_path / "bad.safetensors"), *model], capsys)
            assert expected in line and "<stream>" not in line, line
    line = refused(["codec", "decode", "-", str(tmp_path / "x.wav"), *model], capsys)
    assert "decode reads a codes file, not standard input" in line
    line = refused(["codec", "decode", str(target), "-", *model], capsys)
    assert "not standard output (-): give an audio file" in line


def test_wrong_inputs_and_outputs_are_named(tmp_path: Path, codec_dir: Path, tone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = ["--model", str(codec_dir)]
    codes = tmp_path / "c.safetensors"
    assert run_cli(["codec", "encode", str(tone), str(codes), *model], capsys)[0] == 0
    line = refused(["codec", "encode", str(codes), str(tmp_path / "again.safetensors"), *model], capsys)
    assert f"{codes} is a codes file, not audio: decode it with voxkit codec decode" in line
    assert refused(["codec", "decode", "/dev/null", str(tmp_path / "x.wav"), *model], capsys).endswith("/dev/null is not a regular file")
    assert refused(["codec", "decode", str(tmp_path), str(tmp_path / "x.wav"), *model], capsys).endswith("is a folder, not a codes file")
    assert refused(["codec", "encode", "", str(tmp_path / "x.safetensors"), *model], capsys).endswith("give an input file name")
    assert refused(["codec", "encode", str(tone), "", *model], capsys).endswith("give an output file name")


def test_roundtrip_never_overwrites_its_input(tmp_path: Path, codec_dir: Path, tone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--force replaces an old output; with the input named as the output it destroyed the recording."""
    recording = tmp_path / "talk.wav"
    recording.write_bytes(tone.read_bytes())
    (tmp_path / "link.wav").symlink_to(recording)
    for given in (recording, tmp_path / "link.wav"):
        line = refused(["codec", "roundtrip", str(given), str(recording), "--force", "--model", str(codec_dir)], capsys)
        assert line.endswith(f"{recording} is the input file: write to another file")
    assert recording.read_bytes() == tone.read_bytes()


def test_a_failed_write_keeps_the_old_output_and_names_the_users_path(
    tmp_path: Path, codec_dir: Path, tone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A disk that fills midway: the old file (replaced with --force) stays whole, no partial file is
    left behind, and the message names the output, not a temporary file."""
    import safetensors.torch

    def full_disk(path: str | Path, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"RIFF half a header")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    def full_disk_codes(tensors: object, path: str, *args: object, **kwargs: object) -> None:
        full_disk(path)

    old_audio, old_codes = tmp_path / "old.wav", tmp_path / "old.safetensors"
    old_audio.write_bytes(tone.read_bytes())
    old_codes.write_bytes(b"earlier codes")
    monkeypatch.setattr(sf, "write", full_disk)  # what voxkit.audio.write.save_audio calls
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk_codes)
    model = ["--model", str(codec_dir), "--force"]
    line = refused(["codec", "roundtrip", str(tone), str(old_audio), *model], capsys)
    assert line == f"voxkit codec: error: cannot write {old_audio}: No space left on device"
    line = refused(["codec", "encode", str(tone), str(old_codes), *model], capsys)
    assert line == f"voxkit codec: error: cannot write {old_codes}: No space left on device"
    assert old_audio.read_bytes() == tone.read_bytes() and old_codes.read_bytes() == b"earlier codes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.safetensors", "old.wav"]


@pytest.mark.parametrize(
    ("samples", "rate", "channels"),
    [(1, 16000, 1), (800, 16000, 1), (4000, 8000, 1), (96000, 96000, 2), (7, 44100, 2)],
)
def test_short_stereo_and_odd_rate_audio_keeps_its_length(
    tmp_path: Path, codec_dir: Path, samples: int, rate: int, channels: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Less than one 80 ms frame, 8 kHz, 96 kHz stereo: whole frames of codes, audio of the input's length at 24 kHz."""
    wave = 0.2 * np.sin(np.arange(samples) / 7)[:, None].repeat(channels, 1)
    source = tmp_path / "in.flac"
    sf.write(source, wave, rate)
    model = ["--model", str(codec_dir)]
    assert run_cli(["codec", "encode", str(source), str(tmp_path / "c.safetensors"), *model], capsys)[0] == 0
    file = load_codes(tmp_path / "c.safetensors")
    expected = round(samples * 24000 / rate)
    assert file.num_samples == expected and file.codes.shape == (-(-expected // FRAME), 5)
    assert run_cli(["codec", "decode", str(tmp_path / "c.safetensors"), str(tmp_path / "out.wav"), *model], capsys)[0] == 0
    audio, out_rate = sf.read(tmp_path / "out.wav")
    assert out_rate == 24000 and audio.shape == (expected,)


def test_an_output_among_the_codecs_own_files_is_refused(tmp_path: Path, tone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """encode IN DIR/consolidated.safetensors --model DIR --force replaced the codec's weights with codes."""
    folder = tiny_codec_folder(tmp_path / "codec")
    weights = folder / "consolidated.safetensors"
    before = weights.read_bytes()
    (tmp_path / "link.safetensors").symlink_to(weights)
    for output in (weights, tmp_path / "link.safetensors", folder / "talk.safetensors"):
        line = refused(["codec", "encode", str(tone), str(output), "--model", str(folder), "--force"], capsys)
        assert f"{output} " in line and "the codec's" in line and str(folder) in line, line
    line = refused(["codec", "encode", str(tone), str(weights), "--model", str(folder)], capsys)  # said first, not "add --force"
    assert "is the codec's own consolidated.safetensors" in line, line
    assert weights.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["consolidated.safetensors", "params.json"]
    out = folder / "heard.wav"  # audio beside the weights is no weight file
    assert run_cli(["codec", "roundtrip", str(tone), str(out), "--model", str(folder)], capsys)[0] == 0 and out.is_file()


def test_raw_pcm_on_stdin_is_read_with_its_layout_or_refused_with_the_flags(
    tmp_path: Path, codec_dir: Path, tone: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raw samples on stdin got the Python API's hint ("np.frombuffer"); the command's own flags read them."""
    model = ["--model", str(codec_dir)]
    assert run_cli(["codec", "encode", str(tone), str(tmp_path / "file.safetensors"), *model], capsys)[0] == 0
    pcm, rate = sf.read(tone, dtype="int16")  # the file's own 16-bit samples
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm.tobytes())))
    line = refused(["codec", "encode", "-", str(tmp_path / "raw.safetensors"), *model], capsys)
    assert "--format s16le --sample-rate 16000" in line and "ffmpeg -f s16le" in line and "np.frombuffer" not in line, line
    stereo = np.stack([pcm, pcm], 1).tobytes()  # two equal channels average to the file's one
    for data, flags in ((pcm.tobytes(), ["--format", "s16le", "--sample-rate", str(rate)]),
                        (stereo, ["--format", "s16le", "--sample-rate", str(rate), "--channels", "2"])):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        assert run_cli(["codec", "encode", "-", str(tmp_path / "raw.safetensors"), *flags, "--force", *model], capsys)[0] == 0
        assert torch.equal(load_codes(tmp_path / "raw.safetensors").codes, load_codes(tmp_path / "file.safetensors").codes)
    assert "needs the samples' rate: add --sample-rate" in refused(["codec", "encode", "-", str(tmp_path / "x.safetensors"), "--format",
                                                                   "s16le", *model], capsys)
    raw = ["--format", "s16le", "--sample-rate", "16000"]
    line = refused(["codec", "roundtrip", str(tone), str(tmp_path / "x.wav"), *raw, *model], capsys)
    assert "describe raw audio on stdin (-): a file carries its own layout" in line, line
    assert "add --format s16le" in refused(["codec", "encode", "-", str(tmp_path / "x.safetensors"), *raw[2:], *model], capsys)


def test_the_summary_counts_one_frame_in_the_singular(tmp_path: Path, codec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, 0.2 * np.sin(np.arange(800) / 7), 16000)  # 50 ms: one frame
    model = ["--model", str(codec_dir)]
    _, _, err = run_cli(["codec", "encode", str(short), str(tmp_path / "c.safetensors"), *model], capsys)
    assert "-> 1 frame x 5 codes" in err, err
    _, _, err = run_cli(["codec", "decode", str(tmp_path / "c.safetensors"), str(tmp_path / "o.wav"), *model], capsys)
    assert ": 1 frame -> 0.05 s of audio" in err, err
    _, _, err = run_cli(["codec", "roundtrip", str(short), str(tmp_path / "r.wav"), *model], capsys)
    assert "through 1 frame (" in err, err


def test_decoding_an_audio_file_says_to_encode_it(tmp_path: Path, codec_dir: Path, tone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    renamed = tmp_path / "tone.safetensors"  # audio under a codes file's name: told by its first bytes
    renamed.write_bytes(tone.read_bytes())
    for given in (tone, renamed):
        line = refused(["codec", "decode", str(given), str(tmp_path / "out.wav"), "--model", str(codec_dir)], capsys)
        assert line.endswith(f"{given} is an audio file, not a codes file: encode it with voxkit codec encode {given} OUT.safetensors")


def test_a_codes_file_of_another_rate_is_named_as_another_codecs(
    tmp_path: Path, codec_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its length in its own rate's samples overflowed its frames at 24 kHz, and it was called damaged."""
    path = tmp_path / "codes.safetensors"
    meta_16k = {"format": FORMAT, "num_samples": str(3 * FRAME), "sample_rate": "16000", "frame_rate": "12.5",
                "semantic_codebook_size": "64", "acoustic_codebook_size": "5", "num_codebooks": "5"}
    save_file({"codes": torch.zeros(3, 5, dtype=torch.int16)}, str(path), metadata=meta_16k)
    line = refused(["codec", "decode", str(path), str(tmp_path / "out.wav"), "--model", str(codec_dir)], capsys)
    assert f"{path} was written by another codec (codebooks 64/5, 16000 Hz" in line, line
