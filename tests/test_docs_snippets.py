"""The README and docs/ tell a new user the truth: what they install, import and run exists.

Each check reads the documents of the voxkit that is imported (the checkout it lives in), so a
document and the code it describes are always judged together.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

import voxkit
from cli_helpers import one_line_error, run_cli

ROOT = Path(voxkit.__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *(ROOT / "docs" / f"{name}.md" for name in ("asr", "chat", "codec", "data", "training", "tts"))]
SAMPLE = ROOT / "voxkit" / "assets" / "samples" / "en.flac"


def _extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["optional-dependencies"])


def _code_lines(doc: Path) -> list[str]:
    """The lines inside the document's fenced blocks, with ``\\``-continued lines joined."""
    lines: list[str] = []
    inside = False
    pending = ""
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def test_every_extra_the_docs_install_exists() -> None:
    """``pip install 'voxkit[x]'`` with an extra pyproject.toml does not declare installs nothing and only warns."""
    known = _extras()
    wrong = []
    for doc in DOCS:
        for group in re.findall(r"voxkit\[([\w,-]+)\]", doc.read_text()):
            wrong += [f"{doc.name}: voxkit[{name}]" for name in group.split(",") if name not in known]
    assert not wrong, f"extras named in the docs but not declared in pyproject.toml: {wrong}"


def test_readme_lists_every_extra() -> None:
    """The README's list of optional extras names every extra a user can install."""
    text = (ROOT / "README.md").read_text()
    start = text.index("Optional extras:")
    paragraph = text[start:text.index("\n\n", start)]
    listed = set(re.findall(r"`([\w-]+)`", paragraph))
    assert _extras() <= listed, f"extras missing from the README's list: {sorted(_extras() - listed)}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_python_names_in_the_docs_exist() -> None:
    """Every `voxkit.module.name` the docs point at imports, also the names listed after it (`mod.a / b`)."""
    missing = []
    for doc in DOCS:
        for span in re.findall(r"`(voxkit\.[\w.]+(?: / [\w]+)*)`", doc.read_text()):
            first, *more = span.split(" / ")
            module = first.rpartition(".")[0]
            for name in [first, *(f"{module}.{other}" for other in more)]:
                if not _resolves(name):
                    missing.append(f"{doc.name}: {name}")
    assert not missing, f"names in the docs that do not import: {missing}"


def test_documented_commands_name_a_model_where_none_is_bundled() -> None:
    """A command copied from the docs must run on this install: without a bundled model it needs --model."""
    from voxkit.chat.api import BUNDLED as CHAT
    from voxkit.cli.codec import BUNDLED as CODEC
    from voxkit.tts.api import BUNDLED as TTS

    needs = {
        "voxkit speak": TTS,
        "voxkit codec": CODEC,
        "voxkit chat": CHAT,
        "voxkit demo tts": TTS,
    }
    lacking = []
    for doc in DOCS:
        for line in _code_lines(doc):
            for command, bundled in needs.items():
                if command in line and not (bundled / "params.json").is_file() and "--model" not in line:
                    lacking.append(f"{doc.name}: {line.strip()}")
    assert not lacking, f"commands that fail on this install (no bundled model, no --model): {lacking}"


@pytest.mark.parametrize("flags", [["--format", "s16le"], ["--sample-rate", "8000"], ["--channels", "2", "--sample-rate", "16000"]])
def test_transcribe_says_raw_flags_are_for_stdin(flags: list[str], model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format/--sample-rate/--channels describe stdin; with only files they were silently ignored."""
    code, out, err = run_cli(["transcribe", str(SAMPLE), "--model", str(model_dir), *flags], capsys)
    line = one_line_error(err)
    assert code == 2 and out == ""
    assert "on stdin (-)" in line and "voxkit transcribe - --format s16le" in line
    assert all(flag in line for flag in flags if flag.startswith("--"))


def test_transcribe_refuses_raw_flags_with_the_microphone(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["transcribe", "--mic", "--sample-rate", "48000"], capsys)
    line = one_line_error(err)
    assert code == 2 and "--mic reads the microphone at its own rate" in line


def test_speak_without_a_bundled_model_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The message a user sees who copied a command without --model says which flag is missing."""
    import voxkit.tts.api as api

    monkeypatch.setattr(api, "BUNDLED", tmp_path / "none")
    for args in (["speak", "Hi.", "--stream"], ["speak", "--list-voices"], ["speak", "Hi.", "-o", str(tmp_path / "a.wav")]):
        code, _, err = run_cli(args, capsys)
        line = one_line_error(err)
        assert code == 2 and "no bundled TTS model" in line and "--model DIR" in line, args
    assert not (tmp_path / "a.wav").exists()


def test_demo_without_a_bundled_model_names_the_flag_before_loading_gradio(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`voxkit demo tts` as the docs' first line shows it: the missing flag is said before the app is imported."""
    import voxkit.cli.demo as demo
    import voxkit.tts.api as api

    monkeypatch.setattr(api, "BUNDLED", tmp_path / "none")
    monkeypatch.setattr(demo, "load_app", lambda name: pytest.fail("the app was loaded before the model was checked"))
    code, _, err = run_cli(["demo", "tts"], capsys)
    line = one_line_error(err)
    assert code == 2 and "no bundled TTS model" in line and "--model DIR" in line


def test_transcribe_takes_format_auto_with_a_file(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Guard: --format auto is what a file gets anyway; a script that always passes it keeps working."""
    code, out, _ = run_cli(["transcribe", str(SAMPLE), "--format", "auto", "--model", str(model_dir)], capsys)
    assert code == 0 and out.strip()
