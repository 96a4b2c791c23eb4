"""Real speech as an evaluation-only set: Sphinx test-data import, the eval_only mark, and training's refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxkit.cli.main import main
from voxkit.data.dataset import ManifestDataset
from voxkit.data.importer import import_directory, sphinx_transcripts
from voxkit.errors import DataError


def _sphinx_folder(root: Path) -> Path:
    """The layout of Debian's pocketsphinx-testdata librivox/ folder, in miniature (a made-up tone, not speech)."""
    folder = root / "librivox"
    folder.mkdir()
    for name, seconds in (("book-0870", 0.5), ("book-0880", 0.25)):
        sf.write(folder / f"{name}.wav", (0.1 * np.sin(np.arange(int(16000 * seconds)) / 5)).astype("float32"), 16000)
    (folder / "fileids").write_text("book-0870\nbook-0880\nbook-0890\n")
    (folder / "transcription").write_text(
        "<s> and mister john dashwood had then leisure </s> (book-0870)\n"
        "<s> he was not an ill disposed young man </s> (book-0880)\n"
        "<s> a clip that the package lacks </s> (book-0890)\n"
        "\n"
    )
    (folder / "test-lm.match").write_text("a decoder's output, not a transcript (book-0870 -100)\n")
    return folder


def test_sphinx_transcripts_drop_sentence_markers(tmp_path: Path) -> None:
    path = tmp_path / "x.transcription"
    path.write_text("<s> ten of clubs  </s> (001)\nno id here\nhe <sil> said (sub/002)\n")
    assert sphinx_transcripts(str(path)) == [("001", "ten of clubs"), ("sub/002", "he said")]


def test_sphinx_layout_imports_with_durations_and_reports_missing_audio(tmp_path: Path) -> None:
    folder = _sphinx_folder(tmp_path)
    rows, skipped = import_directory(str(tmp_path))
    assert [(Path(r["audio"]).name, r["text"], r["duration"], r["speaker"]) for r in rows] == [
        ("book-0870.wav", "and mister john dashwood had then leisure", 0.5, "librivox"),
        ("book-0880.wav", "he was not an ill disposed young man", 0.25, "librivox"),
    ]
    assert skipped == [(str(folder / "book-0890"), "audio file missing for transcript line")]


def test_manifest_command_marks_an_eval_only_set_that_training_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _sphinx_folder(tmp_path)
    out = tmp_path / "real.jsonl"
    assert main(["data", "manifest", str(folder), "--out", str(out), "--eval-only",
                 "--source", "LibriVox (pocketsphinx-testdata)", "--licence", "public-domain"]) == 0
    assert "2 rows" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["eval_only"] is True and r["source"] == "LibriVox (pocketsphinx-testdata)" and r["licence"] == "public-domain"
               for r in rows)
    assert main(["data", "check", str(out)]) == 0  # the extra fields keep it a valid manifest

    with pytest.raises(DataError, match=r"real\.jsonl: 2 row\(s\) are marked eval_only"):
        ManifestDataset(out)
    dev = ManifestDataset(out, allow_eval_only=True)  # a dev set may read it
    assert len(dev) == 2 and dev[1]["text"] == "he was not an ill disposed young man"

    plain = tmp_path / "plain.jsonl"
    assert main(["data", "manifest", str(folder), "--out", str(plain)]) == 0
    assert all("eval_only" not in json.loads(line) for line in plain.read_text().splitlines())
    assert len(ManifestDataset(plain)) == 2  # unmarked rows train as before
