"""An output is never one of the command's inputs, and a text output never replaces a recording
(voxkit.cli.outputs): one line, exit 2, before any work, and the file keeps every byte.

A user's review lost a recording to ``data manifest DIR --out DIR/one.wav`` and an input manifest
to ``eval asr M --hypotheses M``; both exited 0. An older text output is still replaced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_helpers import one_line_error, run_cli
from voxkit.cli.outputs import InputFolder, distinct_outputs, input_clash, is_audio, model_inputs, output_file
from voxkit.errors import VoxkitError


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.sin(np.arange(1600) * 0.3)).astype(np.float32), 16000)
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    """A folder of recordings with spaces in its name, a word-aligned manifest of them, a model folder."""
    rec = tmp_path / "rec dir"
    one = _wav(rec / "one.wav")
    (rec / "one.txt").write_text("hello there\n")
    manifest = tmp_path / "corp us" / "te.jsonl"
    manifest.parent.mkdir()
    row = {"audio": str(one), "text": "hello there", "language": "en", "duration": 0.1, "speaker": "s1",
           "words": [{"word": "hello", "start": 0.0, "end": 0.05}, {"word": "there", "start": 0.05, "end": 0.1}]}
    manifest.write_text(json.dumps(row) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "params.json").write_text("{}\n")
    keep2 = _wav(tmp_path / "keep2.wav")
    return {"tmp": tmp_path, "rec": rec, "one": one, "txt": rec / "one.txt", "manifest": manifest, "model": model,
            "keep2": keep2, "none": tmp_path / "no-such-model"}


# (argv, the file named as output, what the one line says); the model folders do not exist or hold no model:
# the refusal comes before any of them is read
REFUSED = [
    (["data", "manifest", "{rec}", "--out", "{one}"], "{one}", "--out {one} is an input file (in {rec}): write to another file"),
    (["data", "manifest", "{rec}", "--out", "{txt}"], "{txt}", "--out {txt} is an input file (in {rec}): write to another file"),
    (["data", "chat", "{manifest}", "--out", "{manifest}"], "{manifest}", "--out {manifest} is the input file: write to another file"),
    (["data", "chat", "{manifest}", "--out", "{keep2}"], "{keep2}",
     "--out {keep2} is an audio file: write the instruction file to another file"),
    (["data", "synth", "--save-plan", "{keep2}", "--hours", "0.01"], "{keep2}",
     "--save-plan {keep2} is an audio file: write the plan to another file"),
    (["eval", "asr", "{manifest}", "--delays", "480", "--hypotheses", "{manifest}", "--json", "{keep2}", "--quiet",
      "--model", "{none}"], "{manifest}", "--hypotheses {manifest} is the input file: write to another file"),
    (["eval", "asr", "{manifest}", "--delays", "480", "--json", "{keep2}", "--quiet", "--model", "{none}"], "{keep2}",
     "--json {keep2} is an audio file: write the JSON report to another file"),
    (["eval", "asr", "{manifest}", "--output", "{one}", "--model", "{none}"], "{one}",
     "--output {one} is an audio file: write the table to another file"),
    (["eval", "asr", "{manifest}", "--json", "{model}/params.json", "--model", "{model}"], "{model}/params.json",
     "--json {model}/params.json is an input file (in {model}): write to another file"),
    (["eval", "codec", "{manifest}", "--json", "{manifest}", "--model", "{none}"], "{manifest}",
     "--json {manifest} is the input file: write to another file"),
    (["eval", "codec", "{manifest}", "--json", "{keep2}", "--model", "{none}"], "{keep2}",
     "--json {keep2} is an audio file: write the JSON report to another file"),
    (["eval", "tts", "{manifest}", "--json", "{manifest}", "--model", "{none}"], "{manifest}",
     "--json {manifest} is the input file: write to another file"),
    (["eval", "chat", "{manifest}", "--json", "{manifest}", "--model", "{none}"], "{manifest}",
     "--json {manifest} is the input file: write to another file"),
    (["eval", "chat", "{manifest}", "--json", "{keep2}", "--model", "{none}"], "{keep2}",
     "--json {keep2} is an audio file: write the JSON report to another file"),
]


def _fill(text: str, corpus: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in corpus.items()})


def _id(case: tuple[list[str], str, str]) -> str:
    argv, target, message = case
    return f"{argv[0]} {argv[1]} {message.split()[0]} {Path(target).name.strip('{}')} {message.split(' is ')[1].split()[1]}"


@pytest.mark.parametrize(("argv", "target", "message"), REFUSED, ids=[_id(c) for c in REFUSED])
def test_an_input_or_a_recording_is_never_an_output(corpus: dict[str, Path], argv: list[str], target: str, message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(_fill(target, corpus))
    before = path.read_bytes()
    code, out, err = run_cli([_fill(a, corpus) for a in argv], capsys)
    assert code == 2 and one_line_error(err) == f"voxkit {argv[0]}: error: {_fill(message, corpus)}"
    assert out == "" and path.read_bytes() == before


@pytest.mark.parametrize(("argv", "flag", "holds"), [
    (["eval", "asr", "{manifest}", "--delays", "480", "--json", "{tmp}/report.WAV", "--model", "{none}"], "--json", "the JSON report"),
    (["data", "manifest", "{rec}", "--out", "{tmp}/new.flac"], "--out", "the manifest"),
    (["data", "synth", "--save-plan", "{tmp}/plan.mp3", "--hours", "0.01"], "--save-plan", "the plan"),
], ids=["eval-json", "manifest-out", "plan"])
def test_a_text_output_is_not_named_like_a_recording(corpus: dict[str, Path], argv: list[str], flag: str, holds: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``--json report.wav`` wrote the report, and the next run refused to replace it as "an audio file"."""
    args = [_fill(a, corpus) for a in argv]
    target = Path(args[args.index(flag) + 1])
    code, out, err = run_cli(args, capsys)
    assert code == 2 and out == "" and not target.exists()
    assert one_line_error(err) == (f"voxkit {argv[0]}: error: {flag} {target}: {holds} is text, and the name is a recording's "
                                   f"({target.suffix}): give it another ending")


def test_a_manifest_beside_the_recordings_is_written_and_rewritten(corpus: dict[str, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The default DIR/manifest.jsonl is inside the folder scanned: it is no input, and a re-run replaces it."""
    default = corpus["rec"] / "manifest.jsonl"
    default.write_text("an older manifest\n")
    code, out, _ = run_cli(["data", "manifest", str(corpus["rec"])], capsys)
    assert code == 0 and json.loads(default.read_text())["text"] == "hello there"
    beside = corpus["rec"] / "notes.jsonl"
    code, _, _ = run_cli(["data", "manifest", str(corpus["rec"]), "--out", str(beside)], capsys)
    assert code == 0 and [json.loads(line)["audio"] for line in beside.read_text().splitlines()] == [str(corpus["one"])]
    assert corpus["one"].read_bytes()[:4] == b"RIFF"


def test_instructions_replace_an_older_instruction_file(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = corpus["manifest"].parent / "tr.jsonl"
    out.write_text("an older instruction file\n")
    code, printed, _ = run_cli(["data", "chat", str(corpus["manifest"]), "--out", str(out)], capsys)
    assert code == 0 and printed.startswith(f"{out}: ") and json.loads(out.read_text().splitlines()[0])


def test_a_link_to_the_input_is_the_input(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    link = corpus["tmp"] / "link.jsonl"
    os.symlink(corpus["manifest"], link)
    before = corpus["manifest"].read_bytes()
    code, _, err = run_cli(["data", "chat", str(corpus["manifest"]), "--out", str(link)], capsys)
    assert code == 2 and one_line_error(err).endswith(f"--out {link} is the input file: write to another file")
    assert corpus["manifest"].read_bytes() == before


def test_two_outputs_naming_one_file_are_refused(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    report = corpus["tmp"] / "r.txt"
    code, _, err = run_cli(["eval", "asr", str(corpus["manifest"]), "--output", str(report), "--json", str(report),
                            "--model", str(corpus["none"])], capsys)
    assert code == 2 and one_line_error(err) == (f"voxkit eval: error: --json {report} is also --output: "
                                                 "give each output its own file")


def test_data_tts_and_vocab_do_not_write_over_what_they_read(corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """data tts into the codec folder would put codes.safetensors among its weights; vocab's file may be the manifest."""
    codec = corpus["tmp"] / "codec"
    codec.mkdir()
    code, _, err = run_cli(["data", "tts", str(corpus["manifest"]), "--codec", str(codec), "--out", str(codec)], capsys)
    assert code == 2 and one_line_error(err).endswith(f"--out {codec} is an input folder: write to another folder")
    index = corpus["tmp"] / "corpus" / "index.jsonl"
    index.parent.mkdir()
    index.write_bytes(corpus["manifest"].read_bytes())
    code, _, err = run_cli(["data", "tts", str(index), "--codec", str(codec), "--out", str(index.parent)], capsys)
    assert code == 2 and one_line_error(err).endswith("its index.jsonl is the input file: write to another folder")
    vocab = corpus["tmp"] / "vocab" / "vocab_subset.json"
    vocab.parent.mkdir()
    vocab.write_bytes(corpus["manifest"].read_bytes())
    code, _, err = run_cli(["data", "vocab", str(vocab), "--out", str(vocab.parent)], capsys)
    assert code == 2 and one_line_error(err).endswith(f"--out {vocab} is the input file: write to another file")
    assert vocab.read_bytes() == index.read_bytes() == corpus["manifest"].read_bytes()


def test_the_save_plan_hint_can_be_pasted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import voxkit.data.synth as synth

    monkeypatch.setattr(synth, "plan_corpus", lambda languages, hours, seed: [])
    monkeypatch.setattr(synth, "save_plan", lambda path, plans, languages, hours, seed: Path(path).write_text("plan"))
    plan = tmp_path / "p l.jsonl.gz"
    code, out, _ = run_cli(["data", "synth", "--save-plan", str(plan), "--hours", "0.01", "--quiet"], capsys)
    assert code == 0 and out.strip().endswith(f"render it with voxkit data synth --plan '{plan}' --out DIR")


def test_the_policy_in_one_function(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    one = _wav(rec / "sub" / "one.wav")
    old = tmp_path / "old.json"
    old.write_text("{}")
    with pytest.raises(VoxkitError, match=r"^-o .*one\.wav is the input file: write to another file$"):
        output_file(one, "-o", suffixes=(".wav",), force=True, inputs=[one])  # --force does not make it right
    with pytest.raises(VoxkitError, match=r"is an input file \(in .*rec\)"):
        output_file(one, "--out", inputs=[InputFolder(rec, (".wav",))])
    assert input_clash(one, [InputFolder(rec, (".txt",))]) is None  # not a file that folder's reader takes
    assert input_clash(tmp_path / "missing.wav", [tmp_path / "missing.wav"]) is None
    assert output_file(old, "--json", inputs=[one], holds="the report") == old  # an older text output: replaced
    disguised = tmp_path / "take"
    disguised.write_bytes(one.read_bytes())
    with pytest.raises(VoxkitError, match=r"^--json .*take is an audio file: write the report to another file$"):
        output_file(disguised, "--json", holds="the report")  # told by its first bytes
    assert output_file(disguised, "-o") == disguised  # not a text output: the old rule
    utf16 = tmp_path / "notes.txt"
    utf16.write_text("{ notes }", encoding="utf-16")  # FF FE: not an MP3 frame
    assert not is_audio(utf16) and is_audio(tmp_path / "new.FLAC") and not is_audio(old)
    for head in (b"fLaC\x00", b"OggS\x00\x02", b"ID3\x04\x00", b"\xff\xfb\x90\x00", b"FORM\x00\x00\x00\x00AIFF"):
        (tmp_path / "h").write_bytes(head + b"\x00" * 16)
        assert is_audio(tmp_path / "h"), head
    distinct_outputs([("--output", str(old)), ("--json", None), ("--hypotheses", str(tmp_path / "other"))])
    with pytest.raises(VoxkitError, match="is also --output"):
        distinct_outputs([("--output", str(old)), ("--json", str(tmp_path / "." / "old.json"))])


def test_a_model_folder_takes_no_new_output_either(tmp_path: Path) -> None:
    """A report written into the --model folder was allowed on the first run and refused as one of
    the model's files on the next: a folder read whole takes no output, new or old."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "params.json").write_text("{}")
    with pytest.raises(VoxkitError, match=r"^--json .*model/eval\.json is in the input folder .*model: write to another file$"):
        output_file(model / "eval.json", "--json", inputs=model_inputs(model), holds="the report")
    assert not (model / "eval.json").exists()
    assert output_file(tmp_path / "eval.json", "--json", inputs=model_inputs(model), holds="the report") == tmp_path / "eval.json"
    recordings = InputFolder(tmp_path / "rec", (".wav",))
    (tmp_path / "rec").mkdir()
    assert output_file(tmp_path / "rec" / "manifest.jsonl", "--out", inputs=[recordings]) == tmp_path / "rec" / "manifest.jsonl"
