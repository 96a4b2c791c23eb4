"""``voxkit eval asr`` and the benchmark scripts as a user meets them: odd manifests, --json beside
the printed table, Ctrl-C after a finished delay, the long-form header, and bad script flags."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import one_line_error, run_cli
from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.audio.io import load_audio
from voxkit.audio.write import save_audio

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "voxkit" / "assets" / "samples"
TEXT = "Order number seven hundred"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first two seconds of the English sample: enough speech for a few words, quick to decode."""
    path = tmp_path_factory.mktemp("clips") / "en2.wav"
    save_audio(path, load_audio(SAMPLES / "en.flac", ASR_SAMPLE_RATE)[: 2 * ASR_SAMPLE_RATE], ASR_SAMPLE_RATE)
    return path


def _manifest(path: Path, rows: list[dict | None]) -> Path:
    """JSONL of ``rows``; None writes a blank line (skipped by the reader, counted in line numbers)."""
    path.write_text("".join("\n" if r is None else json.dumps(r) + "\n" for r in rows))
    return path


def _table(out: str, first: str) -> dict[str, list[str]]:
    """{first cell: other cells} of the printed markdown table whose header starts with ``| first |``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_language_codes_that_are_not_text_are_scored_not_a_crash(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A number and a null as languages used to meet in one sort after the whole evaluation (a TypeError)."""
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT, "language": 5},
                                                {"audio": str(clip), "text": TEXT, "language": None}])
    code, out, err = run_cli(["eval", "asr", str(manifest), "--delays", "480", "--quiet"], capsys)
    assert code == 0, err
    rows = _table(out, "language")
    assert list(rows) == ["language", "---", "5", "?", "all"]
    assert rows["5"] == rows["?"] == rows["all"]  # the same clip and text in both groups


def test_json_holds_the_numbers_of_the_printed_tables(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT, "language": "en"},
                                                {"audio": str(clip), "text": "Order number", "language": "en"},
                                                {"audio": str(clip), "text": TEXT, "language": "xx"}])
    out_json = tmp_path / "wer.json"
    code, out, err = run_cli(["eval", "asr", str(manifest), "--delays", "160,480", "--quiet", "--json", str(out_json)], capsys)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["manifest"] == str(manifest) and record["interrupted"] is False and record["peer"] is None
    assert record["utterances"] == {"en": 2, "xx": 1, "all": 3}
    table = _table(out, "language")
    assert table["language"] == [f"{d['delay_ms']} ms" for d in record["delays"]] == ["160 ms", "480 ms"]
    for k, delay in enumerate(record["delays"]):
        for lang in ("en", "xx", "all"):
            assert table[lang][k] == f"{delay['wer'][lang]:.1f}"
    changes = _table(out[out.index("Change in WER"):], "language")
    for change in record["changes"]:
        assert (change["from_ms"], change["to_ms"]) == (160, 480)
        assert changes[change["language"]][0] == f"{change['change']:+.1f} [{change['low']:+.1f}, {change['high']:+.1f}]"
    assert {c["language"] for c in record["changes"]} == {"en", "xx", "all"}


def test_ctrl_c_after_a_finished_delay_prints_and_writes_that_delay(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import voxkit.asr.segments as segments

    real = segments.transcribe_segmented
    calls: list[int] = []

    def interrupted_at_the_second_delay(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(segments, "transcribe_segmented", interrupted_at_the_second_delay)
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT, "language": "en"}])
    hyps, out_json = tmp_path / "h.jsonl", tmp_path / "wer.json"
    code, out, err = run_cli(["eval", "asr", str(manifest), "--delays", "160,480", "--quiet", "--hypotheses", str(hyps),
                              "--json", str(out_json)], capsys)
    assert code == 130 and "interrupted" in err
    assert "interrupted: 1 of 2 delays finished" in out
    assert _table(out, "language")["language"] == ["160 ms"]
    assert [json.loads(line)["delay_ms"] for line in hyps.read_text().splitlines()] == [160]
    record = json.loads(out_json.read_text())
    assert record["interrupted"] is True and [d["delay_ms"] for d in record["delays"]] == [160]


def test_ctrl_c_before_any_delay_finished_is_a_plain_interruption(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guard: with nothing finished there is no table to print, only the interruption."""
    import voxkit.asr.segments as segments

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(segments, "transcribe_segmented", interrupted)
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT}])
    code, out, err = run_cli(["eval", "asr", str(manifest), "--delays", "160,480", "--quiet"], capsys)
    assert code == 130 and out == "" and err.strip() == "interrupted"


def test_a_missing_clip_is_named_with_its_line_before_the_model_loads(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import voxkit.asr.bundle

    def no_model(*args: object, **kwargs: object) -> object:
        raise AssertionError("the model loaded before the clips were checked")

    monkeypatch.setattr(voxkit.asr.bundle, "load_bundle", no_model)
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT}, None,
                                                {"audio": "gone.flac", "text": TEXT}])
    code, _, err = run_cli(["eval", "asr", str(manifest), "--delays", "480"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert f"{manifest}:3:" in line and "gone.flac" in line and "not found" in line


def test_long_form_says_how_long_its_stream_is_and_how_often_utterances_repeat(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fewer minutes than one utterance still give a whole utterance, and more than the manifest
    holds cycle it: the header says both, --json carries the table's numbers, and the runs of the
    utterances alone have progress bars."""
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT, "language": "en"}])
    out_json = tmp_path / "long.json"
    code, out, err = run_cli(["eval", "asr", str(manifest), "--long-form", "0.001", "--delays", "480", "--json", str(out_json)],
                             capsys)
    assert code == 0, err
    assert "utterances alone" in err and "alone again, 20 ms later" in err  # bars before the stream's own
    record = json.loads(out_json.read_text())
    assert record["joined_utterances"] == 1 and record["minutes_asked"] == 0.001
    assert record["stream_minutes"] > 2 / 60  # the whole two-second clip behind its pause
    assert f"joined into one stream of {record['stream_minutes']:.2f} minutes (--long-form 0.001)" in out
    assert "each up to" not in out
    minute = _table(out, "minute")["1"]
    assert minute[:4] == [str(record["minutes"][0]["utterances"]), str(record["words"]),
                          f"{record['minutes'][0]['stream_wer']:.1f}", f"{record['minutes'][0]['alone_wer']:.1f}"]
    assert f"stream - alone: {record['change']:+.2f} points" in out

    code, out, err = run_cli(["eval", "asr", str(manifest), "--long-form", "0.15", "--delays", "160,480", "--quiet",
                              "--json", str(out_json)], capsys)
    assert code == 0, err
    record = json.loads(out_json.read_text())
    assert record["joined_utterances"] > 1 and record["distinct_utterances"] == 1
    assert f"{record['joined_utterances']} utterances (1 of its 1, each up to {record['joined_utterances']} times)" in out
    assert "--long-form runs one delay" in err and "--delays names 2" in err


def test_ctrl_c_during_the_long_form_stream_keeps_the_minutes_heard(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour's stream is long: Ctrl-C in its second minute prints and writes the first minute's
    utterances, marked as interrupted, and exits 130 (it printed only "interrupted")."""
    import voxkit.asr.segments as segments

    class InterruptedAtMinuteTwo(segments.SegmentedStream):
        pushes = 0

        def push(self, samples: object) -> object:
            InterruptedAtMinuteTwo.pushes += 1
            if InterruptedAtMinuteTwo.pushes == 2:
                raise KeyboardInterrupt
            return super().push(samples)

    monkeypatch.setattr(segments, "SegmentedStream", InterruptedAtMinuteTwo)
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT, "language": "en"}])
    out_json = tmp_path / "long.json"
    code, out, err = run_cli(["eval", "asr", str(manifest), "--long-form", "1.3", "--delays", "480", "--quiet",
                              "--json", str(out_json)], capsys)
    assert code == 130 and err.strip().endswith("interrupted")
    record = json.loads(out_json.read_text())
    assert record["interrupted_after_minutes"] == 1.0 and record["stream_minutes"] > 1.0
    assert [m["minute"] for m in record["minutes"]] == [1] and record["joined_utterances"] > 10
    assert f"heard for 1.0 of {record['stream_minutes']:.1f} minutes; the table holds the {record['joined_utterances']}" in out
    assert _table(out, "minute")["1"][0] == str(record["minutes"][0]["utterances"])


def _script(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("bench_asr", ["--threads", "0"], "argument --threads: takes a whole number of at least 1, got 0"),
        ("bench_asr", ["--long-minutes", "nan"], "argument --long-minutes: takes a finite number"),
        ("bench_codec", ["--repeats", "0"], "argument --repeats: takes a whole number of at least 1, got 0"),
        ("bench_codec", ["--seconds", "nan"], "argument --seconds: takes a finite number of at least 1"),
        ("bench_tts", ["--steps", "0"], "argument --steps: takes a whole number from 1 to 1000, got 0"),
        ("bench_tts", ["--device", "nonsense"], "--device nonsense: not a device"),
        ("bench_decode", ["--no-cpu", "--no-cuda"], "nothing to run: --no-cpu with --no-cuda"),
        ("bench_decode", ["--windows", "4096,x"], "argument --windows: takes window lengths of at least 1 or 'none'"),
        ("bench_sampling", ["--vocab", "0"], "argument --vocab: takes a whole number of at least 2, got 0"),
        ("bench_sampling", ["--repeats", "0"], "argument --repeats: takes a whole number of at least 1, got 0"),
        ("bench_asr", ["--model", "no/such/folder"], "argument --model: no/such/folder: no such folder"),
        ("bench_tts", ["--codec", "README.md"], "argument --codec: README.md: not a folder"),
    ],
)
def test_bench_scripts_refuse_bad_flags_in_one_line(script: str, args: list[str], message: str) -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{script}.py"), *args], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert message in run.stderr.splitlines()[-1]


def test_sampling_bench_prints_its_machine_and_both_columns() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_sampling.py"), "--vocab", "16", "--batch", "1",
                          "--repeats", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    first, *rest = run.stdout.splitlines()
    assert first.startswith("machine: ") and " cores)" in first and "torch " in first and "transformers " in first
    rows = [line for line in rest if line.startswith("| peaked | 16 | 1 |")]
    assert len(rows) == 4 and all(float(r.split("|")[5]) > 0 and float(r.split("|")[6]) > 0 for r in rows)


def test_folder_flags_name_what_is_there_instead(tmp_path: Path) -> None:
    from voxkit.bench import flags

    assert flags.folder(str(tmp_path)) == str(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"")
    for given, message in ((tmp_path / "weights.pt", "not a folder"), (tmp_path / "none", "no such folder")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(str(given))}: {message}$"):
            flags.folder(str(given))


class _Stop(Exception):
    """Raised in place of the first expensive step, once the line under test has been printed."""


def test_chat_bench_names_its_machine_before_it_builds_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The machine line comes first, with the date and the peer's version, as in every bench script:
    it used to come after all the timings, as a shorter line of its own."""
    pytest.importorskip("transformers")
    import torch

    bench = _script("bench_chat")

    def stop(*args: object) -> None:
        raise _Stop

    monkeypatch.setattr(bench, "build_folder", stop)
    monkeypatch.setattr(sys, "argv", ["bench_chat.py", "--config", "tiny", "--threads", str(torch.get_num_threads())])
    with pytest.raises(_Stop):
        bench.main()
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("machine: ") and " cores), " in first and "transformers " in first and " UTC" in first


def test_kernel_bench_names_its_machine_first(capsys: pytest.CaptureFixture[str]) -> None:
    from voxkit.bench import kernels

    assert kernels.main(["--device", "cpu", "--quick", "--sections", "env", "--seed", "0"]) == 0
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert first.startswith("machine: ") and " cores), " in first and "triton " in first and " UTC" in first
    assert second.startswith("voxkit.bench.kernels: device cpu")


def test_machine_line_names_the_cpu_the_threads_and_the_peer_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from voxkit.bench import machine

    monkeypatch.setattr(machine, "cpu_name", lambda: "Test CPU 9000")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    line = machine.describe("cpu", ("transformers", "no-such-distribution-here"))
    assert line.startswith("machine: Test CPU 9000 (") and " cores), 1 torch thread |" in line
    assert f"torch {torch.__version__}" in line and "no-such-distribution-here not installed" in line


def test_asr_bench_says_whether_the_two_transcripts_agree() -> None:
    agreement = _script("bench_asr").agreement
    assert agreement("rob rob rob", "robrob rob").endswith("the same")
    assert agreement("rob rob", "rob rob rob").endswith("voxkit 9, the same for the first 6 characters")
    assert agreement("abc", "abd").endswith("the same for the first 2 characters")


class _EnglishPeer:
    """A stand-in for Whisper tiny.en: English only, and it says what it was asked to hear."""

    name = "english-only"
    languages = ("en",)

    def __init__(self) -> None:
        self.heard = 0

    def transcribe(self, wave: object) -> str:
        self.heard += 1
        return TEXT


def test_an_english_only_peer_scores_only_the_rows_it_can_hear(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whisper tiny.en writes English words for a Spanish clip: a WER near 100 % that said nothing
    about the clip, and pulled the peer's "all" with it."""
    import voxkit.asr.peer
    from voxkit.asr.peer import WhisperPeer

    assert WhisperPeer.languages == ("en",)
    peer = _EnglishPeer()
    monkeypatch.setattr(voxkit.asr.peer, "load_peer", lambda name, threads=0: peer)
    spanish = "El viernes viajaron de Barcelona a Ceuta."
    manifest = _manifest(tmp_path / "m.jsonl", [{"audio": str(clip), "text": TEXT, "language": "en"},
                                                {"audio": str(SAMPLES / "es.flac"), "text": spanish, "language": "es"}])
    hyps, out_json = tmp_path / "h.jsonl", tmp_path / "wer.json"
    code, out, err = run_cli(["eval", "asr", str(manifest), "--delays", "480", "--quiet", "--peer", "whisper-tiny.en",
                              "--hypotheses", str(hyps), "--json", str(out_json)], capsys)
    assert code == 0, err
    assert peer.heard == 1
    table = _table(out, "language")
    assert table["language"][-1] == "peer english-only (offline)"
    assert table["en"][-1] == table["all"][-1] == "0.0" and table["es"][-1] == "-"
    assert "english-only is made for en: its column scores the 1 of 2 utterances" in out
    peer_records = [json.loads(line) for line in hyps.read_text().splitlines() if "peer" in json.loads(line)]
    assert [(r["language"], r["hypothesis"]) for r in peer_records] == [("en", TEXT)]
    record = json.loads(out_json.read_text())
    assert record["peer"]["wer"] == {"en": 0.0, "all": 0.0} and record["peer"]["utterances"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "-5"], "argument --budget: takes a finite number above 0, got -5"),
        (["--reps", "0"], "argument --reps: takes a whole number of at least 1, got 0"),
        (["--stream-sizes", "4,0"], "--stream-sizes takes comma-separated counts of at least 1, got '4,0'"),
    ],
)
def test_kernel_bench_refuses_numbers_that_would_waste_its_device_call(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative budget used to skip every section and a zero --reps to fail every op, after the
    machine had been started: refused while parsing instead."""
    from voxkit.bench.kernels import parse

    with pytest.raises(SystemExit) as exit_info:
        parse(["--device", "cpu", "--quick", *argv])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(message)
