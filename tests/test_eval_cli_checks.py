"""The ``voxkit eval`` sub-commands refuse nonsense flags and unscorable manifests in one line,
before any model loads, instead of a traceback or a table that measures less than it claims."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import one_line_error, run_cli
from voxkit.audio.write import save_audio

SAMPLES = Path(__file__).resolve().parent.parent / "voxkit" / "assets" / "samples"
EN = "Order number seven hundred and sixty-nine thousand four hundred and fifty was shipped to Benjamin Mckenzie on June eleventh."
ES = "El viernes, Encarnita Rocamora y Perlita viajaron de Barcelona a Ceuta."


def _write(path: Path, rows: list[dict], blank_after_first: bool = False) -> Path:
    lines = [json.dumps(r) + "\n" for r in rows]
    if blank_after_first:
        lines.insert(1, "\n")  # a blank line: read_manifest skips it, the line numbers do not
    path.write_text("".join(lines))
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return _write(tmp_path / "m.jsonl", [{"audio": str(SAMPLES / "en.flac"), "text": EN, "language": "en"},
                                         {"audio": str(SAMPLES / "es.flac"), "text": ES, "language": "es"}])


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("asr", ["--max-utterances", "-1"], "--max-utterances takes a number of utterances of at least 1, got -1"),
        ("asr", ["--max-utterances", "0"], "--max-utterances takes a number of utterances of at least 1, got 0"),
        ("asr", ["--batch-size", "0"], "--batch-size takes a number of streams of at least 1, got 0"),
        ("asr", ["--threads", "-1"], "--threads takes a number of CPU threads of at least 1, got -1"),
        ("asr", ["--snr", "nan"], "--snr takes a finite ratio in dB, got nan"),
        ("asr", ["--snr", "inf"], "--snr takes a finite ratio in dB, got inf"),
        ("asr", ["--noise-floor", "3"], "--noise-floor takes dBFS between -120 and 0, got 3"),
        ("asr", ["--noise-floor", "nan"], "--noise-floor takes dBFS between -120 and 0, got nan"),
        ("asr", ["--noise-colour", "pink"], "--noise-colour pink colours the --noise-floor: give --noise-floor DBFS too"),
        ("asr", ["--delays", ""], "--delays names no delay, got ''"),
        ("asr", ["--delays", " , "], "--delays names no delay"),
        ("asr", ["--languages", ","], "--languages names no language"),
        ("asr", ["--long-form", "nan"], "--long-form takes minutes above 0 and at most 1440, got nan"),
        ("asr", ["--long-form", "1", "--hypotheses", "h.jsonl"], "--long-form scores one joined stream minute by minute; --peer"),
        ("tts", ["--threads", "-1"], "--threads takes a number of CPU threads of at least 1, got -1"),
        ("tts", ["--cfg", "nan"], "--cfg must be a finite number of at least 0, got nan"),
        ("tts", ["--cfg", "inf"], "--cfg must be a finite number of at least 0, got inf"),
        ("chat", ["--limit", "-1"], "--limit takes a number of clips and examples of at least 1, got -1"),
        ("chat", ["--limit", "0"], "--limit takes a number of clips and examples of at least 1, got 0"),
        ("codec", ["--limit", "-1"], "--limit takes a number of clips of at least 1, got -1"),
    ],
)
def test_nonsense_numbers_are_one_line_errors_before_any_model_loads(
    manifest: Path, tmp_path: Path, kind: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    missing = str(tmp_path / "no-model")  # a model that would fail to load: the flag must be refused first
    code, out, err = run_cli(["eval", kind, str(manifest), "--model", missing, *args], capsys)
    assert code == 2 and out == ""
    assert one_line_error(err).startswith(f"voxkit eval: error: {message}")


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_rows_without_a_reference_are_refused_with_count_and_line(
    manifest: Path, tmp_path: Path, bad: str | None, capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows += [{**rows[0], "text": bad}, {**rows[1], "text": bad}]
    path = _write(tmp_path / "empty.jsonl", rows, blank_after_first=True)  # the first bad row is on line 4
    missing = str(tmp_path / "no-model")
    for args in (["asr", str(path), "--model", missing], ["chat", str(path), "--model", missing]):
        code, out, err = run_cli(["eval", *args], capsys)
        assert code == 2 and out == ""
        assert one_line_error(err).startswith(f"voxkit eval: error: {path}:4: empty text: 2 of 4 rows have no reference")


def test_languages_are_stripped_and_a_filter_that_keeps_nothing_names_the_manifests(
    manifest: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(["eval", "asr", str(manifest), "--delays", "480", "--quiet", "--languages", "en, es"], capsys)
    assert code == 0 and err == ""
    assert [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")][1:] == ["en", "es", "all"]
    assert "(2 utterances)" in out
    code, out, err = run_cli(["eval", "asr", str(manifest), "--languages", "fr , de"], capsys)
    assert code == 2 and out == ""
    assert one_line_error(err) == f"voxkit eval: error: no utterances to evaluate in {manifest} for --languages fr,de: it has en, es"
    code, out, err = run_cli(["eval", "asr", str(manifest), "--delays", "480", "--quiet", "--languages", "es,xx"], capsys)
    assert code == 0 and "(1 utterances)" in out and "| es |" in out and "| en |" not in out
    assert one_line_error(err) == f"voxkit eval asr: --languages xx: not in {manifest} (it has en, es); scoring the others"


def test_a_manifest_without_languages_says_so(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"audio": r["audio"], "text": r["text"]} for r in map(json.loads, manifest.read_text().splitlines())]
    code, _, err = run_cli(["eval", "asr", str(_write(tmp_path / "plain.jsonl", rows)), "--languages", "en"], capsys)
    assert code == 2 and one_line_error(err).endswith("for --languages en: its rows have no language field")
    rows[0]["language"] = "en"
    code, _, err = run_cli(["eval", "asr", str(_write(tmp_path / "some.jsonl", rows)), "--languages", "fr"], capsys)
    assert code == 2 and one_line_error(err).endswith("for --languages fr: it has en and rows without a language field")


def test_eval_chat_with_only_transcribe_examples_prints_a_note_not_an_empty_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.test_chat_model import tiny_whisper_args
    from voxkit.chat.checkpoint import save_chat
    from voxkit.chat.instructions import ChatExample, write_examples
    from voxkit.chat.model import ChatModel
    from voxkit.tokenizer import ByteTokenizer

    torch.manual_seed(0)
    model = save_chat(ChatModel(tiny_whisper_args(ByteTokenizer().vocab_size)).eval(), tmp_path / "model", tokenizer=ByteTokenizer())
    clip = tmp_path / "clip.wav"
    save_audio(clip, 0.1 * torch.randn(8000), 16000)
    manifest = _write(tmp_path / "m.jsonl", [{"audio": str(clip), "text": "hello there"}])
    examples = tmp_path / "q.jsonl"
    write_examples(examples, [ChatExample("transcribe", [{"role": "user", "content": [{"type": "audio", "path": str(clip)}]}],
                                          "hello there", "en")])
    code, out, _ = run_cli(["eval", "chat", str(manifest), "--model", str(model), "--instructions", str(examples),
                            "--peer", "none", "--quiet"], capsys)
    assert code == 0 and "WER %" in out
    after = out.split("exact match after normalisation:", 1)[1].strip().splitlines()
    assert after == ["No instruction accuracy: every example is a transcribe request, which exact match does not score "
                     "(transcription is measured by the WER table above, on the manifests)."]
    assert "| kind |" not in out


def test_evaluate_manifest_refuses_a_batch_size_below_one() -> None:
    from voxkit.asr.evaluate import evaluate_manifest
    from voxkit.asr.options import RecognizerOptions
    from voxkit.errors import VoxkitError

    rows = [{"audio": str(SAMPLES / "en.flac"), "text": EN}]
    with pytest.raises(VoxkitError, match=r"^batch_size must be at least 1, got 0$"):  # not range()'s "arg 3 must not be zero"
        evaluate_manifest(None, None, rows, [RecognizerOptions.from_ms(480)], batch_size=0, progress=False)


class _ClosedPipe(io.StringIO):
    """stdout of ``voxkit eval asr ... | head -1`` once head has gone: every write fails."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_eval_asr_writes_its_files_even_when_the_reader_of_the_table_has_gone(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxkit.cli.main import main

    table, hyps = tmp_path / "wer.txt", tmp_path / "hyps.jsonl"
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    main(["eval", "asr", str(manifest), "--delays", "480", "--quiet", "--output", str(table), "--hypotheses", str(hyps)])
    assert "480" in table.read_text() and len(hyps.read_text().splitlines()) == 2
