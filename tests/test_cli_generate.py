"""``voxkit generate`` on a tiny saved model: streams the greedy continuation, fails cleanly."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from voxkit.cli.generate import TextStream
from voxkit.cli.main import main
from voxkit.lm import Transformer, TransformerArgs
from voxkit.lm.generate import Generator
from voxkit.tokenizer import ByteTokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A native folder (params.json + consolidated.safetensors) with the byte tokenizer."""
    torch.manual_seed(0)
    args = TransformerArgs(
        dim=32, n_layers=2, head_dim=8, hidden_dim=64, n_heads=4, n_kv_heads=2,
        vocab_size=ByteTokenizer().vocab_size, sliding_window=16, rope_theta=10000.0,
    )
    args.extra["tokenizer"] = "byte"
    model = Transformer(args)
    folder = tmp_path_factory.mktemp("tiny")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "consolidated.safetensors"))
    (folder / "params.json").write_text(json.dumps(args.to_dict()))
    return folder


def expected_text(folder: Path, prompt: str, n: int) -> str:
    from voxkit.lm.loading import load_transformer

    tok = ByteTokenizer()
    ids = Generator(load_transformer(folder), stop_ids=[tok.eos_id]).generate([tok.encode(prompt)], n)[0]
    return tok.decode(ids)


def test_cli_prints_the_greedy_continuation(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "--model", str(model_dir), "--max-tokens", "24", "--device", "cpu", "Hello"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == expected_text(model_dir, "Hello", 24) + "\n"
    assert len(out) > 1


def test_cli_chat_and_sampling_flags(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "--model", str(model_dir), "--chat", "--max-tokens", "10", "--temperature", "0.8",
            "--top-p", "0.9", "--top-k", "40", "--seed", "1", "--dtype", "float32", "Hi"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # seeded: same text twice


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--max-tokens", "0"], "--max-tokens"), (["--top-p", "1.5"], "--top-p"), (["--temperature", "-1"], "--temperature")],
)
def test_cli_bad_flags_are_clear_errors(model_dir: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    assert main(["generate", "--model", str(model_dir), *extra, "Hello"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_empty_prompt(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--model", str(model_dir), "  "]) == 2
    assert "prompt is empty" in capsys.readouterr().err


def test_cli_missing_model_dir_exits_2_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    proc = subprocess.run(
        [sys.executable, "-m", "voxkit.cli.main", "generate", "--model", str(missing), "Hello"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "model folder not found" in proc.stderr and str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_text_stream_holds_back_partial_utf8() -> None:
    tok = ByteTokenizer()
    out = io.StringIO()
    stream = TextStream(tok, out)
    seen = []
    for token in tok.encode("é世", bos=False):  # 2 + 3 bytes, one token per byte
        stream.write(token)
        seen.append(out.getvalue())
    assert seen == ["", "é", "é", "é", "é世"]
    stream.close()
    assert out.getvalue() == "é世\n"


def test_cli_reads_the_prompt_from_stdin_with_a_dash(model_dir: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """'-' was taken as the prompt itself; it reads stdin as `voxkit speak -` does (UTF-8 whatever the locale)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\ufeffHéllo".encode())))
    code = main(["generate", "--model", str(model_dir), "--max-tokens", "12", "--device", "cpu", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == expected_text(model_dir, "Héllo", 12) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9")))
    assert main(["generate", "--model", str(model_dir), "--device", "cpu", "-"]) == 2
    assert "the prompt on stdin is not UTF-8: byte 0xe9 at offset 3" in capsys.readouterr().err
