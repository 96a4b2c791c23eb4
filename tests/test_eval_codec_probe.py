"""``voxkit eval codec`` on the inputs a new user gets wrong: clips that are missing, silent or too
short to score, texts missing where the WER needs them, the wrong kind of model folder, peers whose
tools are not installed, and a reader that stops early. Each is one line and a non-zero exit, or a
table whose unscorable cells read "-" with a note, never a traceback or an absurd mean."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import voxkit
from cli_helpers import one_line_error, run_cli
from voxkit.asr import peer as asr_peer
from voxkit.audio.io import load_audio
from voxkit.cli.main import main
from voxkit.codec.evaluate import ClipScores, CodecEvaluation, compare, format_table, stoi_score, summarise

SAMPLE = Path(voxkit.__file__).parent / "assets" / "samples" / "en.flac"  # 8 s of synthetic English, 16 kHz


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(SAMPLE, 16000)[: 2 * 16000].numpy()  # [32000]


def write_manifest(path: Path, rows: list[dict], blank_after_first: bool = False) -> Path:
    lines = [json.dumps(r) + "\n" for r in rows]
    if blank_after_first:
        lines.insert(1, "\n")  # skipped by the reader, counted by the line numbers
    path.write_text("".join(lines))
    return path


@pytest.fixture
def folder(tmp_path: Path, speech: np.ndarray) -> Path:
    """Clips beside their manifests: speech, digital silence, 200 samples, an empty file, a file that is no audio."""
    sf.write(tmp_path / "speech.wav", speech, 16000, subtype="PCM_16")
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    sf.write(tmp_path / "short.wav", speech[8000:8200], 16000, subtype="PCM_16")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF" + bytes(100))
    return tmp_path


class Echo:
    name = "echo"

    def transcribe(self, wave: torch.Tensor) -> str:
        return "hello world"


def test_silence_and_a_clip_shorter_than_a_frame_leave_cells_empty_instead_of_crashing(speech: np.ndarray) -> None:
    silence = np.zeros(16000, np.float32)
    scores = compare(silence, speech[:16000])
    # spectral convergence against digital silence divided by a 1e-12 floor: ~1e10 swamped every mean
    assert scores["mrstft_distance"] is None and scores["stoi"] is None  # pystoi says 0.0 for silence
    assert np.isfinite(scores["mel_distance"]) and scores["mel_distance"] > 1
    assert stoi_score(speech[:200], speech[:200]) is None  # pystoi raised numpy's AxisError under one frame
    assert stoi_score(speech, speech) == pytest.approx(1.0, abs=1e-6)


def test_unscored_clips_get_one_note_per_measure_for_the_codecs_alike() -> None:
    clips = [ClipScores("s.wav", name, 1.0, 1.0, 0.5, None, None, None) for name in ("a", "b")]
    table = format_table(CodecEvaluation([summarise("a", clips[:1]), summarise("b", clips[1:])], clips, None))
    notes = table.splitlines()[5:]
    assert notes == ["a, b: MR-STFT dist could not score 1 of 1 clips (the original is digital silence); no mean",
                     "a, b: STOI could not score 1 of 1 clips (too short or no speech found); no mean",
                     "a, b: PESQ-wb could not score 1 of 1 clips (too short or no speech found); no mean"]


def test_cli_scores_silent_and_tiny_clips_as_missing(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}, {"audio": "silence.wav", "text": "b"},
                                                   {"audio": "short.wav", "text": "c"}])
    code, out, err = run_cli(["eval", "codec", str(manifest), "--peers", "opus-6000", "--asr", "none", "--quiet"], capsys)
    assert code == 0 and "Traceback" not in err, err
    row = next(line for line in out.splitlines() if line.startswith("| opus-6000 |")).split(" | ")
    mrstft, stoi = float(row[3]), float(row[4])
    assert 0 < mrstft < 10 and 0.5 < stoi <= 1  # the speech clip's figures, not a mean with 1e10 or 0.0 in it
    assert "opus-6000: MR-STFT dist could not score 1 of 3 clips (the original is digital silence)" in out
    assert "opus-6000: STOI could not score 2 of 3 clips" in out


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"audio": "missing.wav", "text": "x"}, "{folder}/m.jsonl:3: audio file not found: {folder}/missing.wav"),
        ({"audio": "empty.wav", "text": "x"}, "{folder}/m.jsonl:3: audio is empty: {folder}/empty.wav"),
        ({"audio": "garbage.wav", "text": "x"}, "{folder}/m.jsonl:3: cannot read audio header of {folder}/garbage.wav"),
        ({"audio": None, "text": "x"}, "{folder}/m.jsonl:3: audio must be the path of a file, got null"),
        ({"audio": 5, "text": "x"}, "{folder}/m.jsonl:3: audio must be the path of a file, got 5"),
    ],
)
def test_unusable_clips_are_named_by_line_before_any_model_loads(
    folder: Path, row: dict, message: str, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The manifest's folder is where relative paths point (the rule of voxkit.data.manifest), whatever the cwd."""
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # row 1's "speech.wav" is found beside the manifest, not here
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}, row], blank_after_first=True)
    missing_model = str(folder / "no-model")  # would be refused first if the clips were checked only as they are read
    code, _, err = run_cli(["eval", "codec", str(manifest), "--model", missing_model, "--asr", "none", "--quiet"], capsys)
    assert code == 2 and one_line_error(err).startswith("voxkit eval: error: " + message.format(folder=folder)), err


def test_every_unusable_clip_is_counted(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}, {"audio": "gone1.wav", "text": "b"},
                                                   {"audio": "gone2.wav", "text": "c"}])
    code, _, err = run_cli(["eval", "codec", str(manifest), "--peers", "opus-6000", "--asr", "none", "--quiet"], capsys)
    assert code == 2 and one_line_error(err).endswith("gone1.wav (2 of the 3 clips to evaluate are unusable)")


def test_empty_texts_are_refused_only_when_the_wer_is_scored(folder: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(asr_peer.PEERS, "whisper-tiny.en", lambda threads: Echo())
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "hello world"}, {"audio": "speech.wav", "text": " "}])
    argv = ["eval", "codec", str(manifest), "--peers", "opus-6000", "--quiet"]
    code, _, err = run_cli([*argv, "--asr", "whisper-tiny.en"], capsys)
    assert code == 2 and "Traceback" not in err  # the last line, after the note that no --model was given
    assert err.splitlines()[-1] == (f"voxkit eval: error: {manifest}:2: empty text: 1 of 2 rows have no reference transcript "
                                    "to score the WER against (or --asr none) (give every row its text, or leave those rows out)")
    code, out, err = run_cli([*argv, "--asr", "none"], capsys)  # the quality columns need no text
    assert code == 0 and "| opus-6000 | 6 |" in out, err


def test_a_folder_of_another_kind_is_named_as_what_it_is(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from asr_helpers import tiny_model
    from tts_helpers import tiny_tts_folder
    from voxkit.asr.bundle import save_bundle
    from voxkit.tokenizer import ByteTokenizer

    tts = tiny_tts_folder(tmp_path / "tts")
    asr = tmp_path / "asr"
    save_bundle(tiny_model(), ByteTokenizer(), asr)
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}])
    for model, message in ((tts, f"--model {tts} is a TTS model folder (its codec is {tts}/codec), not a codec folder"),
                           (asr, f"--model {asr} is a recogniser folder, not a codec folder"),
                           (folder, f"--model {folder}: '{folder}' is not a model folder")):
        code, _, err = run_cli(["eval", "codec", str(manifest), "--model", str(model), "--no-peers", "--asr", "none"], capsys)
        assert code == 2 and one_line_error(err).startswith(f"voxkit eval: error: {message}"), err


@pytest.mark.skipif(shutil.which("opusenc") is None or shutil.which("opusdec") is None, reason="needs opus-tools")
def test_a_peer_without_its_tools_says_how_to_run_without_it(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"  # opus-tools installed, codec2 not
    bin_dir.mkdir()
    for tool in ("opusenc", "opusdec"):
        os.symlink(shutil.which(tool), bin_dir / tool)  # type: ignore[arg-type]
    monkeypatch.setenv("PATH", str(bin_dir))
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}])
    code, _, err = run_cli(["eval", "codec", str(manifest), "--asr", "none", "--quiet"], capsys)
    assert code == 2 and one_line_error(err) == ("voxkit eval: error: codec2-2400 needs c2enc and c2dec from the Debian package "
                                                 "codec2: sudo apt-get install codec2; or score without codec2-2400, codec2-3200: "
                                                 "--peers opus-6000")
    code, _, err = run_cli(["eval", "codec", str(manifest), "--asr", "none", "--peers", "codec2-3200"], capsys)
    assert code == 2 and one_line_error(err).endswith("; or score without codec2-3200: --no-peers with --model DIR")


class ClosedPipe(io.StringIO):
    """stdout of ``voxkit ... | head -1`` once head has gone: every write fails."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_the_json_is_written_even_when_the_reader_of_the_table_has_gone(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}])
    out = folder / "scores.json"
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["eval", "codec", str(manifest), "--peers", "opus-6000", "--asr", "none", "--quiet", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [c["codec"] for c in saved["codecs"]] == ["original", "opus-6000"] and saved["codecs"][1]["mrstft_missing"] == 0


def test_without_a_wer_no_row_needs_a_text(folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--asr none scores audio against audio; rows without "text" were refused all the same."""
    monkeypatch.setitem(asr_peer.PEERS, "whisper-tiny.en", lambda threads: Echo())
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav"}, {"audio": "speech.wav", "duration": 2.0}])
    argv = ["eval", "codec", str(manifest), "--peers", "opus-6000", "--quiet"]
    code, out, err = run_cli([*argv, "--asr", "none"], capsys)
    assert code == 0 and "| opus-6000 | 6 |" in out and "(2 clips," in out, err
    code, _, err = run_cli([*argv, "--asr", "whisper-tiny.en"], capsys)  # the WER needs them
    assert code == 2 and err.splitlines()[-1] == f"voxkit eval: error: {manifest}:1: missing field(s) text", err


def test_a_peer_list_that_names_no_peer_is_refused(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--peers "" scored the model alone without a word; --no-peers is how that is asked for."""
    from test_codec_cli import tiny_codec_folder

    model = tiny_codec_folder(tmp_path / "codec")
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}])
    for spec in ("", " , "):
        code, _, err = run_cli(["eval", "codec", str(manifest), "--model", str(model), "--peers", spec, "--asr", "none"], capsys)
        assert code == 2 and one_line_error(err) == (f"voxkit eval: error: --peers {spec!r} names no peer codec: choose from "
                                                     "codec2-2400, codec2-3200, opus-6000, or score the model alone with --no-peers")


def test_data_tts_names_a_tts_folder_given_for_its_codec(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`data tts --codec` with the TTS folder that holds the codec said only "no 'codec_args' section"."""
    from tts_helpers import tiny_tts_folder

    tts = tiny_tts_folder(tmp_path / "tts")
    manifest = write_manifest(folder / "m.jsonl", [{"audio": "speech.wav", "text": "a"}])
    code, _, err = run_cli(["data", "tts", str(manifest), "--codec", str(tts), "--out", str(tmp_path / "corpus")], capsys)
    message = f"--codec {tts} is a TTS model folder (its codec is {tts}/codec), not a codec folder"
    assert code == 2 and one_line_error(err).startswith(f"voxkit data: error: {message}"), err
