"""``voxkit eval tts`` on the inputs a new user gets wrong: clips that are missing or unusable as a
reference, rows without text, seeds torch refuses, the wrong kind of model folder, yardsticks
that come out upside down, and a reader that stops early. Each is a one-line error before any
model loads, a row left out with a note, or a note that says what the numbers mean."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import voxkit
from cli_helpers import one_line_error, run_cli
from voxkit.audio.io import load_audio
from voxkit.cli.main import main
from voxkit.tts import evaluate as tts_eval
from voxkit.tts.evaluate import TTSSummary, choose_references

SAMPLE = Path(voxkit.__file__).parent / "assets" / "samples" / "en.flac"  # 8 s of synthetic English, 16 kHz


class NoEmbedder:
    """A speaker encoder that finds no voice anywhere (Resemblyzer stays unloaded)."""

    name = "none"

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        return None


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four 1.5 s clips of speech (two speakers), plus an empty file, beside the manifests."""
    monkeypatch.setattr("voxkit.tts.speaker_embedding.load_embedder", lambda name="resemblyzer": NoEmbedder())
    speech = load_audio(SAMPLE, 16000).numpy()  # [128000]
    for k in range(4):
        sf.write(tmp_path / f"c{k}.wav", speech[k * 24000 : k * 24000 + 24000], 16000, subtype="PCM_16")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    return tmp_path


def good_rows() -> list[dict]:
    return [{"audio": f"c{k}.wav", "text": f"sentence number {k}", "speaker": "ab"[k // 2]} for k in range(4)]


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_references_under_a_second_and_rows_of_one_sentence_are_left_out_with_a_note() -> None:
    """voxkit's TTS refuses a reference under 1 s: choosing one ended the whole run at that row."""
    rows = [{"audio": "a1.wav", "text": "one", "speaker": "a", "duration": 4.0},
            {"audio": "a2.wav", "text": "two", "speaker": "a", "duration": 0.5},
            {"audio": "b1.wav", "text": "same", "speaker": "b", "duration": 4.0},
            {"audio": "b2.wav", "text": "Same!", "speaker": "b", "duration": 4.0}]
    pairs, notes = choose_references(rows)
    assert pairs == [(1, 0)]  # a1's only candidate is 0.5 s long; b's clips say one sentence
    assert notes == ["skipped 2 row(s) whose speaker's other clips all say the same sentence (a reference must say another one, "
                     "so that the model cannot copy it)",
                     "skipped 1 row(s) whose speaker's other clips are all shorter than 1 s or unreadable (too little voice to "
                     "clone from)"]


def test_a_ceiling_below_the_floor_is_called_that() -> None:
    summary = TTSSummary("m", "all", 4, None, None, 0.4, floor=0.85, ceiling=0.8, position=None)
    assert tts_eval._caveats([], [], [summary], None) == [
        "all: ceiling 0.800 is not above floor 0.850: the encoder finds two clips of one speaker no more alike than clips of two, "
        "so there is no position"]


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({"audio": "missing.wav"}, [], "{m}:3: audio file not found: {folder}/missing.wav"),
        ({"audio": "empty.wav"}, [], "{m}:3: audio is empty: {folder}/empty.wav"),
        ({"audio": None}, [], "{m}:3: audio must be the path of a file, got null"),
        ({"text": ""}, [], "{m}:3: empty text: 1 of 4 rows have no text to speak (give every row its text, or leave those rows out)"),
        ({"text": 7}, [], "{m}:3: empty text: 1 of 4 rows have no text to speak"),
        ({}, ["--seed", "-1"], "--seed takes a whole number from 0 to 2^64 - 1, got -1"),
        ({}, ["--seed", str(2**64 - 2)], f"--seed {2**64 - 2}: row n samples with seed + n, which passes 2^64 - 1"),
    ],
)
def test_mistakes_in_the_manifest_and_seed_are_one_line_before_any_model_loads(
    folder: Path, change: dict, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = good_rows()
    rows[2].update(change)
    manifest = write_manifest(folder / "m.jsonl", rows)
    missing_model = str(folder / "no-model")  # refused first where the rows were checked only as they were reached
    code, _, err = run_cli(["eval", "tts", str(manifest), "--model", missing_model, "--recogniser", "none", "--quiet", *extra],
                           capsys)
    assert code == 2 and one_line_error(err).startswith("voxkit eval: error: " + message.format(m=manifest, folder=folder)), err


def test_a_codec_or_recogniser_folder_is_named_as_what_it_is(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asr_helpers import tiny_model
    from tts_helpers import CODEC
    from voxkit.asr.bundle import save_bundle
    from voxkit.codec.args import CodecArgs
    from voxkit.codec.checkpoint import save_codec
    from voxkit.codec.model import CodecModel
    from voxkit.tokenizer import ByteTokenizer

    codec, asr = tmp_path / "codec", tmp_path / "asr"
    save_codec(CodecModel(CodecArgs(**CODEC)), codec)  # type: ignore[arg-type]
    save_bundle(tiny_model(), ByteTokenizer(), asr)
    manifest = write_manifest(folder / "m.jsonl", good_rows())
    for model, kind in ((codec, "a codec folder"), (asr, "a recogniser folder")):
        code, _, err = run_cli(["eval", "tts", str(manifest), "--model", str(model), "--recogniser", "none", "--quiet"], capsys)
        assert code == 2 and one_line_error(err) == f"voxkit eval: error: --model {model} is {kind}, not a TTS model folder", err


class ClosedPipe(io.StringIO):
    """stdout of ``voxkit ... | head -1`` once head has gone: every write fails."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_the_json_is_written_even_when_the_reader_of_the_table_has_gone(tmp_path: Path, folder: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tts_helpers import tiny_tts_folder

    model = tiny_tts_folder(tmp_path / "tiny")
    manifest = write_manifest(folder / "m.jsonl", good_rows())
    out = folder / "scores.json"
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["eval", "tts", str(manifest), "--model", str(model), "--recogniser", "none", "--limit", "1", "--steps", "1",
                 "--quiet", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["models"] == {"tiny": str(model)} and [r["model"] for r in saved["rows"]] == ["manifest", "tiny"]
