"""``voxkit speak`` refuses what it can before the model loads and the voice is encoded, and never
writes over the recording it clones, ``--force`` or not (``voxkit codec`` refuses the same)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_helpers import one_line_error, run_cli
from tts_helpers import tiny_tts_folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tts_folder(tmp_path_factory.mktemp("speak_checks"))


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    path = tmp_path / "ref.wav"
    sf.write(path, (0.2 * np.sin(np.arange(16000 * 2) * 0.05)).astype(np.float32), 16000)
    return path


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the model fails the test: every refusal here comes first."""
    from voxkit.tts.api import Speaker

    def load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(Speaker, "from_pretrained", load)


@pytest.mark.usefixtures("no_loading")
@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_the_reference_recording_is_never_the_output(model: Path, ref: Path, force: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = ref.read_bytes()
    code, _, err = run_cli(["speak", "Hello there.", "--voice", str(ref), "-o", str(ref), "--model", str(model), *force], capsys)
    assert code == 2 and one_line_error(err) == f"voxkit speak: error: {ref} is the input file: write to another file"
    assert ref.read_bytes() == before


@pytest.mark.usefixtures("no_loading")
def test_a_file_of_the_model_folder_is_never_the_output(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inside = model / "take.wav"
    inside.write_bytes(b"RIFF")
    try:
        code, _, err = run_cli(["speak", "Hi.", "-o", str(inside), "--model", str(model), "--force"], capsys)
        assert code == 2 and one_line_error(err).endswith(f"{inside} is an input file (in {model}): write to another file")
        assert inside.read_bytes() == b"RIFF"
    finally:
        inside.unlink()


@pytest.mark.usefixtures("no_loading")
@pytest.mark.parametrize(("argv", "message"), [
    (["...", "--voice", "{ref}"], "nothing to say: the text has no words, only punctuation or symbols"),
    (["!!! ???"], "nothing to say: the text has no words, only punctuation or symbols"),
    (["Hi.", "--speed", "3"], "--speed takes a tempo factor from 0.5 to 2.0, got 3"),
    (["Hi.", "--speed", "0.25"], "--speed takes a tempo factor from 0.5 to 2.0, got 0.25"),
    (["Hi.", "--speed", "nan"], "--speed takes a tempo factor from 0.5 to 2.0, got nan"),
    (["Hi.", "--steps", "0"], "--steps must be a whole number from 1 to "),
    (["Hi.", "--cfg", "-1"], "--cfg must be a number >= 0, got -1.0"),
    (["Hi.", "--cfg", "nan"], "--cfg must be a number >= 0, got nan"),
    (["Hi.", "--seed", "-3"], "--seed must be a whole number from 0 to 2^64 - 1, got -3"),
])
def test_text_and_generation_flags_are_refused_before_the_model_loads(model: Path, ref: Path, tmp_path: Path, argv: list[str], message: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("{ref}", str(ref)) for a in argv]
    code, _, err = run_cli(["speak", *args, "-o", str(tmp_path / "x.wav"), "--model", str(model)], capsys)
    assert code == 2 and one_line_error(err).startswith(f"voxkit speak: error: {message}"), err
    assert not (tmp_path / "x.wav").exists()


def test_a_take_beside_the_reference_is_written_and_replaced_with_force(model: Path, ref: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = ref.parent / "take.wav"
    argv = ["speak", "Hello there.", "--voice", str(ref), "-o", str(out), "--model", str(model), "--seed", "1"]
    code, _, _ = run_cli(argv, capsys)
    assert code == 0 and sf.info(out).frames > 0
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "exists; add --force" in one_line_error(err)
    code, _, _ = run_cli([*argv, "--force", "--speed", "1.5"], capsys)
    assert code == 0 and sf.info(out).frames > 0
