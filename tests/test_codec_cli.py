"""``voxkit codec encode|decode|roundtrip`` and ``voxkit export codec`` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voxkit.cli.main import main as cli_main
from voxkit.codec.args import CodecArgs
from voxkit.codec.checkpoint import save_codec
from voxkit.codec.codes_file import load_codes
from voxkit.codec.model import CodecModel

TINY = dict(dim=32, hidden_dim=64, head_dim=8, n_heads=4, n_kv_heads=2, semantic_codebook_size=64, semantic_dim=16, acoustic_dim=4,
            acoustic_codebook_size=5)


def tiny_codec_folder(folder: Path) -> Path:
    """A tiny random codec (seed 0) saved in ``folder``, as `voxkit export codec` writes one."""
    torch.manual_seed(0)
    save_codec(CodecModel(CodecArgs(**TINY)), folder)  # type: ignore[arg-type]
    return folder


@pytest.fixture(scope="module")
def speechlike(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.7 s at 16 kHz, stereo int16 FLAC: a rate, channel count and format the codec must convert."""
    path = tmp_path_factory.mktemp("audio") / "in.flac"
    t = np.arange(11200) / 16000
    mono = 0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    sf.write(path, np.stack([mono, mono], 1), 16000, subtype="PCM_16")
    return path


def test_encode_decode_roundtrip(tmp_path: Path, codec_dir: Path, speechlike: Path, capsys: pytest.CaptureFixture[str]) -> None:
    codes_path = tmp_path / "c.safetensors"
    assert cli_main(["codec", "encode", str(speechlike), str(codes_path), "--model", str(codec_dir)]) == 0
    file = load_codes(codes_path)
    assert file.codes.shape == (9, 5) and file.codes.dtype == torch.int64  # 0.7 s -> 8.75 frames, padded to 9
    assert file.num_samples == 16800 and file.sample_rate == 24000
    out = tmp_path / "out.wav"
    assert cli_main(["codec", "decode", str(codes_path), str(out), "--model", str(codec_dir)]) == 0
    audio, rate = sf.read(out)
    assert rate == 24000 and audio.shape == (16800,)  # trimmed to the input's length
    rt = tmp_path / "rt.wav"
    assert cli_main(["codec", "roundtrip", str(speechlike), str(rt), "--model", str(codec_dir)]) == 0
    np.testing.assert_allclose(sf.read(rt)[0], audio, atol=1e-4)  # the same as encode then decode
    assert "kbps" in capsys.readouterr().err


def test_export_codec_from_a_training_checkpoint(tmp_path: Path, speechlike: Path) -> None:
    from voxkit.checkpoint import write_folder
    from voxkit.codec.task import CodecRecipe, CodecTrainingModel

    recipe = CodecRecipe(**TINY, disc_channels=4, distill_dim=0)  # type: ignore[arg-type]
    training = CodecTrainingModel(recipe)
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000001"
    write_folder(ckpt, "training", training.export_config(), training.state_dict(), model="codec")
    out = tmp_path / "export"
    assert cli_main(["export", "codec", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"params.json", "consolidated.safetensors"}
    codes = tmp_path / "c.safetensors"
    assert cli_main(["codec", "encode", str(speechlike), str(codes), "--model", str(out)]) == 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["codec", "encode", "{audio}", "{tmp}/x.wav"], "must end in .safetensors"),
        (["codec", "decode", "{codes}", "{tmp}/x.txt"], "must end in .wav"),
        (["codec", "encode", "{tmp}/nothing.wav", "{tmp}/x.safetensors"], "no such file"),
        (["codec", "decode", "{audio}", "{tmp}/x.wav"], "is an audio file, not a codes file: encode it with voxkit codec encode"),
        (["codec", "encode", "{audio}", "{existing}"], "exists; add --force"),
        (["codec", "encode", "{audio}", "{existing}/x.safetensors"], "is a file, not a folder"),
        (["codec", "roundtrip", "{audio}", "{tmp}/x.wav", "--device", "cuda:7"], "--device"),
    ],
)
def test_user_mistakes_are_one_line_errors(
    tmp_path: Path, codec_dir: Path, speechlike: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "old.safetensors"
    existing.write_bytes(b"x")
    codes = tmp_path / "ok.safetensors"
    assert cli_main(["codec", "encode", str(speechlike), str(codes), "--model", str(codec_dir)]) == 0
    capsys.readouterr()
    filled = [a.format(audio=speechlike, tmp=tmp_path, codes=codes, existing=existing) for a in argv]
    assert cli_main([*filled, "--model", str(codec_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_codes_of_another_codec_are_refused(tmp_path: Path, codec_dir: Path, speechlike: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    save_codec(CodecModel(CodecArgs(**{**TINY, "semantic_codebook_size": 32})), other)  # type: ignore[arg-type]
    codes = tmp_path / "c.safetensors"
    assert cli_main(["codec", "encode", str(speechlike), str(codes), "--model", str(other)]) == 0
    capsys.readouterr()
    assert cli_main(["codec", "decode", str(codes), str(tmp_path / "o.wav"), "--model", str(codec_dir)]) == 2
    assert "another codec" in capsys.readouterr().err


def test_eval_codec_scores_voxkit_and_reports_codebook_usage(
    tmp_path: Path, codec_dir: Path, speechlike: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio": str(speechlike), "text": "a tone", "duration": 0.7}) + "\n" for _ in range(2)))
    argv = ["eval", "codec", str(manifest), "--model", str(codec_dir), "--no-peers", "--asr", "none", "--quiet"]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "| voxkit |" in out
    assert "voxkit semantic codes on these clips: perplexity" in out and "18 frames" in out
