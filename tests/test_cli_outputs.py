"""Every command that writes checks the place first, the same way (voxkit.cli.outputs).

A folder where a file belongs, a file where a folder belongs, a place under a file: one line,
exit 2, before any work, and nothing the user had is touched. Missing folders are made.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.cli_helpers import one_line_error, run_cli
from voxkit.cli.main import main
from voxkit.cli.outputs import output_file, output_folder
from voxkit.errors import VoxkitError

# {out} is the output under test; {wav}, {wavs}, {manifest}, {recipe} are valid inputs, {none} a missing folder.
FILE_OUTPUTS = [
    ["data", "manifest", "{wavs}", "--out", "{out}"],
    ["data", "chat", "{manifest}", "--out", "{out}"],
    ["data", "synth", "--save-plan", "{out}", "--hours", "0.01"],
    ["eval", "asr", "{manifest}", "--output", "{out}", "--model", "{none}"],
    ["eval", "asr", "{manifest}", "--hypotheses", "{out}", "--model", "{none}"],
    ["eval", "codec", "{manifest}", "--json", "{out}", "--model", "{none}"],
    ["eval", "tts", "{manifest}", "--json", "{out}", "--model", "{none}"],
    ["codec", "encode", "{wav}", "{out}.safetensors", "--model", "{none}"],
    ["codec", "decode", "{codes}", "{out}.wav", "--model", "{none}"],
    ["speak", "Hi.", "-o", "{out}.wav", "--model", "{none}"],
]
FOLDER_OUTPUTS = [
    ["transcribe", "{wav}", "-o", "{out}", "--model", "{none}"],
    ["data", "synth", "--out", "{out}", "--hours", "0.001"],
    ["data", "vocab", "{manifest}", "--out", "{out}"],
    ["data", "tts", "{manifest}", "--codec", "{none}", "--out", "{out}"],
    ["export", "asr", "{none}", "--out", "{out}"],
    ["export", "codec", "{none}", "--out", "{out}"],
    ["export", "chat", "{none}", "--out", "{out}"],
    ["export", "tts", "{none}", "--out", "{out}"],
    ["train", "{recipe}", "train.out_dir={out}"],
]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    sf.write(wavs / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    (wavs / "a.txt").write_text("hello there\n")
    manifest = tmp_path / "m.jsonl"
    row = {"audio": str(wavs / "a.wav"), "text": "hello there", "language": "en", "duration": 0.1,
           "words": [{"word": "hello", "start": 0.0, "end": 0.05}, {"word": "there", "start": 0.05, "end": 0.1}]}
    manifest.write_text(json.dumps(row) + "\n")
    recipe = tmp_path / "r.toml"
    layers = "dim = 32\nn_layers = 1\nhead_dim = 8\nn_heads = 4\nn_kv_heads = 2\nhidden_dim = 64\nsliding_window = 16\n"
    recipe.write_text(
        f'[model]\nname = "realtime_recognizer"\n[model.encoder]\n{layers}[model.decoder]\n{layers}vocab_size = 259\n'
        f'[data]\ntokenizer = "byte"\n[train]\nmax_steps = 1\nprogress = false\n'
        f'[tasks.asr]\ntrain = ["{manifest}"]\n'
    )
    keep = tmp_path / "keep"
    keep.write_text("keep me")
    codes = tmp_path / "codes.safetensors"  # the outputs are checked before the codes are read
    codes.write_bytes(b"not read")
    return {"wav": str(wavs / "a.wav"), "wavs": str(wavs), "manifest": str(manifest), "recipe": str(recipe),
            "none": str(tmp_path / "no-such-folder"), "keep": str(keep), "tmp": str(tmp_path),
            "codes": str(codes)}


def _argv(template: list[str], inputs: dict[str, str], out: str) -> list[str]:
    return [a.format(out=out, **inputs) for a in template]


def _name(template: list[str]) -> str:
    i = next(i for i, a in enumerate(template) if "{out}" in a)
    return " ".join(template[:2] + template[i - 1:i])


@pytest.mark.parametrize("template", FILE_OUTPUTS, ids=_name)
def test_file_outputs_refuse_folders_and_places_under_a_file(template: list[str], inputs: dict[str, str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = str(Path(inputs["tmp"]) / "a-folder")
    suffix = next(a for a in template if "{out}" in a).replace("{out}", "")  # a template may add the file's suffix
    Path(out + suffix).mkdir()  # so the name given is a folder
    code, _, err = run_cli(_argv(template, inputs, out), capsys)
    assert code == 2 and "is a folder; give a file name" in one_line_error(err)
    code, _, err = run_cli(_argv(template, inputs, inputs["keep"] + "/x"), capsys)
    assert code == 2 and "is a file, not a folder" in one_line_error(err)
    assert Path(inputs["keep"]).read_text() == "keep me"


@pytest.mark.parametrize("template", FOLDER_OUTPUTS, ids=_name)
def test_folder_outputs_refuse_files_and_places_under_a_file(template: list[str], inputs: dict[str, str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(_argv(template, inputs, inputs["keep"]), capsys)
    assert code == 2 and "is a file, not a folder" in one_line_error(err)
    code, _, err = run_cli(_argv(template, inputs, inputs["keep"] + "/sub"), capsys)
    assert code == 2 and "is a file, not a folder" in one_line_error(err)
    assert Path(inputs["keep"]).read_text() == "keep me"


def test_missing_folders_are_made(inputs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    tmp = Path(inputs["tmp"])
    code, out, _ = run_cli(["data", "manifest", inputs["wavs"], "--out", str(tmp / "new" / "a" / "m.jsonl")], capsys)
    assert code == 0 and json.loads((tmp / "new" / "a" / "m.jsonl").read_text())["text"] == "hello there"
    code, out, _ = run_cli(["data", "vocab", inputs["manifest"], "--out", str(tmp / "new" / "b" / "vocab")], capsys)
    assert code == 0 and (tmp / "new" / "b" / "vocab" / "vocab_subset.json").is_file()


def test_output_file_policy(tmp_path: Path) -> None:
    old = tmp_path / "old.wav"
    old.write_bytes(b"x")
    with pytest.raises(VoxkitError, match="exists; add --force"):
        output_file(old, "-o", suffixes=(".wav",), force=False)
    assert output_file(old, "-o", suffixes=(".wav",), force=True) == old  # --force given
    assert output_file(old, "--json") == old  # reports are replaced without --force
    with pytest.raises(VoxkitError, match=r"must end in \.flac or \.ogg"):
        output_file(tmp_path / "x.WAVE", "-o", suffixes=(".flac", ".ogg"))
    assert output_file(tmp_path / "y" / "z.FLAC", "-o", suffixes=(".flac",)).parent.is_dir()  # suffix case ignored, folder made


def test_output_folder_without_make_leaves_no_empty_folder(tmp_path: Path) -> None:
    target = tmp_path / "p" / "model"
    assert output_folder(target, "--out", make=False) == target
    assert (tmp_path / "p").is_dir() and not target.exists()
    assert output_folder(target, "--out").is_dir()


def test_a_path_the_system_refuses_later_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A disk that fills or a folder removed mid-run: the path and the system's reason, not a traceback."""
    import voxkit.cli.env as env

    def full(args: object) -> int:
        raise OSError(28, "No space left on device", "/data/out.wav")

    monkeypatch.setattr(env, "run", full)
    code, _, err = run_cli(["env"], capsys)
    assert code == 2 and one_line_error(err) == "voxkit env: error: /data/out.wav: No space left on device"

    def bug(args: object) -> int:
        raise OSError("not about a path")

    monkeypatch.setattr(env, "run", bug)
    with pytest.raises(OSError, match="not about a path"):
        main(["env"])


def test_a_reader_that_goes_away_is_not_an_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``voxkit transcribe talk.wav | head -2``: BrokenPipeError is an OSError without a path, and
    the path handler above it re-raised it as a traceback."""
    import voxkit.cli.env as env

    def closed(args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(env, "run", closed)
    code, _, err = run_cli(["env"], capsys)
    assert code == 0 and err == ""
