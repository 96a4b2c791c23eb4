"""``voxkit eval asr``: word error rate per language and delay, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxkit.api import Transcriber
from voxkit.asr.evaluate import (
    delay_differences,
    format_differences,
    normalize_text,
    paired_change,
    with_noise,
    word_error_rate,
)
from voxkit.cli.main import main
from voxkit.data.espeak import Voice
from voxkit.data.synth import render

SENTENCES = [
    ("en", "en-us", "The weather was warm and the children played outside."),
    ("en", "en-us", "She bought three apples at the market this morning."),
    ("de", "de", "Der Hund schläft heute im Garten."),
]


def test_normalisation_and_corpus_wer() -> None:
    assert normalize_text("Hello,  World! It's") == "hello world it s"
    assert word_error_rate(["the cat sat"], ["The cat, sat."]) == 0.0
    assert word_error_rate(["a b c d"], ["a x c"]) == 0.5  # one substitution, one deletion, 4 words
    assert word_error_rate(["a b", "c d e f"], ["a b", "c d"]) == pytest.approx(2 / 6)  # pooled, not averaged
    assert word_error_rate(["", "a b"], ["noise", "a b"]) == 0.0  # empty references are skipped
    assert word_error_rate([""], [""]) == 0.0


def test_digits_are_the_words_they_stand_for() -> None:
    """The references spell numbers, Whisper writes digits: the same correct transcript counted an
    error per digit group against the peer (12 errors in 20 words on the English sample)."""
    spelled = "Order number seven hundred and sixty-nine thousand four hundred and fifty-one, on June eleventh."
    assert normalize_text("Order number 769,451 on June 11th.") == normalize_text(spelled)
    assert word_error_rate([spelled], ["Order number 769,451 on June 11th."]) == 0.0
    assert normalize_text("2.5 and 1999") == "two point five and one thousand nine hundred and ninety nine"
    assert normalize_text("no digits here") == "no digits here"


def test_delay_differences_are_paired_bootstrap_intervals() -> None:
    words = [10] * 40 + [20] * 40
    langs = ["en"] * 40 + ["fr"] * 40
    short = [3] * 40 + [6] * 40
    longer = [2] * 40 + [6] * 40  # one fewer error in every English utterance, French unchanged
    noisy = [2 + (i % 3) for i in range(40)] + [6] * 40  # English errors that vary from utterance to utterance
    diffs = delay_differences({160: short, 480: longer, 960: noisy}, words, langs, samples=500)
    change, low, high = diffs[(160, 480)]["en"]
    assert change == pytest.approx(-10.0) and low == pytest.approx(-10.0) and high == pytest.approx(-10.0)
    assert diffs[(160, 480)]["fr"] == (0.0, 0.0, 0.0)
    assert diffs[(160, 480)]["all"][0] == pytest.approx(100 * (sum(longer) - sum(short)) / sum(words))
    change, low, high = diffs[(480, 960)]["en"]
    assert change == pytest.approx(100 * (sum(noisy[:40]) - sum(longer[:40])) / 400)
    assert low < change < high and high - low > 1.0  # utterance-to-utterance spread gives a real interval
    assert paired_change(longer[:40], noisy[:40], words[:40], samples=500) == diffs[(480, 960)]["en"][:1] + (
        pytest.approx(low, abs=2.0), pytest.approx(high, abs=2.0))  # another draw, the same spread
    table = format_differences(diffs).splitlines()
    assert table[0] == "| language | 160 → 480 ms | 480 → 960 ms |"
    assert [line.split("|")[1].strip() for line in table[2:]] == ["en", "fr", "all"]
    assert table[2].split("|")[2].strip() == "-10.0 [-10.0, -10.0]"


def test_a_groups_interval_does_not_depend_on_the_other_groups() -> None:
    """One seed per group: a one-language manifest's row and its "all" row are the same numbers,
    and a language's interval is the same whether or not the manifest holds other languages."""
    words = [5 + i % 7 for i in range(60)]
    a = [i % 4 for i in range(60)]
    b = [(i * 7) % 5 for i in range(60)]
    alone = delay_differences({160: a, 480: b}, words, ["en"] * 60, samples=400)[(160, 480)]
    assert alone["en"] == alone["all"]
    mixed = delay_differences({160: a + [3] * 30, 480: b + [1] * 30}, words + [9] * 30, ["en"] * 60 + ["de"] * 30, samples=400)
    assert mixed[(160, 480)]["en"] == alone["en"]
    assert paired_change(a, b, words, samples=400) == pytest.approx(alone["en"])  # the same draws


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval")
    rows = []
    for i, (lang, voice, text) in enumerate(SENTENCES):
        rendered = render(text, Voice(voice, "m3"))
        assert rendered is not None
        audio, _ = rendered
        path = folder / f"u{i}.flac"
        sf.write(path, audio[16000], 16000)
        rows.append({"audio": str(path), "text": text, "language": lang, "duration": audio[16000].size / 16000})
    path = folder / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_prints_the_table_of_the_bundled_model(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table_file = tmp_path / "table.md"
    assert main(["eval", "asr", str(manifest), "--delays", "480,960", "--output", str(table_file)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "delay 960 ms" in captured.err  # progress goes to stderr, also when it is not a terminal
    table_text, _, change_text = table_file.read_text().partition("\n\n")
    lines = table_text.splitlines()
    assert lines[0] == "| language | 480 ms | 960 ms |" and lines[0] in out
    cells = {line.split("|")[1].strip(): [float(c) for c in line.split("|")[2:-1]] for line in lines[2:]}
    # below the table: the change from 480 to 960 ms per language, equal to the table's difference
    changes = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in change_text.splitlines() if line.startswith("| ")}
    assert changes["language"] == "480 → 960 ms" and "paired-bootstrap" in out
    for lang in ("de", "en", "all"):
        assert float(changes[lang].split()[0]) == pytest.approx(cells[lang][1] - cells[lang][0], abs=0.11)
    assert list(cells) == ["de", "en", "all"]
    # the table is the API's transcripts scored with word_error_rate, and the bundled model is usable
    asr = Transcriber(delay_ms=480)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    english = [r for r in rows if r["language"] == "en"]
    wer = 100 * word_error_rate([r["text"] for r in english], [asr.transcribe(r["audio"]).text for r in english])
    assert cells["en"][0] == pytest.approx(wer, abs=0.05)
    assert cells["en"][0] < 40.0


def test_eval_writes_every_transcript(manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "hyp.jsonl"
    assert main(["eval", "asr", str(manifest), "--delays", "160,480", "--hypotheses", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["delay_ms"], r["language"]) for r in records] == [(d, lang) for d in (160, 480) for lang, _, _ in SENTENCES]
    english = [r for r in records if r["delay_ms"] == 480 and r["language"] == "en"]
    asr = Transcriber(delay_ms=480)
    for r in english:
        assert r["hypothesis"] == asr.transcribe(r["audio"]).text
    # the per-utterance counts add up to the table's corpus WER
    errors, words = sum(r["errors"] for r in english), sum(r["words"] for r in english)
    table_wer = word_error_rate([r["reference"] for r in english], [r["hypothesis"] for r in english])
    assert errors / words == pytest.approx(table_wer)


def test_snr_scores_the_same_noisy_audio_at_every_delay(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from voxkit.audio.io import load_audio

    clean = load_audio(json.loads(manifest.read_text().splitlines()[0])["audio"], 16000)
    noisy = with_noise(clean, 5.0, seed=0)
    snr = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    assert float(snr) == pytest.approx(5.0, abs=0.3)  # white noise at the SNR asked (clipping aside)
    assert torch.equal(noisy, with_noise(clean, 5.0, seed=0)) and not torch.equal(noisy, with_noise(clean, 5.0, seed=1))

    out = tmp_path / "hyp.jsonl"
    assert main(["eval", "asr", str(manifest), "--delays", "480,960", "--snr", "0", "--hypotheses", str(out), "--quiet"]) == 0
    assert "white noise at 0 dB SNR" in capsys.readouterr().out
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for delay_ms in (480, 960):
        asr = Transcriber(delay_ms=delay_ms)
        hyps = [r["hypothesis"] for r in records if r["delay_ms"] == delay_ms]
        assert hyps == [asr.transcribe(with_noise(load_audio(r["audio"], 16000), 0.0, seed=i)).text for i, r in enumerate(rows)]


def test_noise_floor_scores_speech_over_one_level_of_noise(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voxkit.asr.evaluate import FLOOR_SEED, with_floor
    from voxkit.audio.io import load_audio

    out, report = tmp_path / "hyp.jsonl", tmp_path / "r.json"
    assert main(["eval", "asr", str(manifest), "--delays", "480", "--noise-floor", "-30", "--noise-colour", "pink",
                 "--gain", "-6", "--hypotheses", str(out), "--json", str(report), "--quiet"]) == 0
    assert "scaled by -6 dB, over a noise floor at -30 dBFS (pink)" in capsys.readouterr().out
    record = json.loads(report.read_text())
    assert (record["noise_floor_dbfs"], record["noise_colour"]) == (-30, "pink")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    hyps = [json.loads(line)["hypothesis"] for line in out.read_text().splitlines()]
    asr = Transcriber(delay_ms=480)
    # the gain scales the speech, not the microphone's noise: the floor is added after it
    heard = [with_floor(load_audio(r["audio"], 16000) * 10 ** (-6 / 20), -30.0, FLOOR_SEED + i, "pink") for i, r in enumerate(rows)]
    assert hyps == [asr.transcribe(w).text for w in heard]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--delays", "100"], "multiple of 80"),
        (["--delays", "4x0"], "--delays must be integers"),
        (["--languages", "xx"], "no utterances to evaluate"),
    ],
)
def test_bad_options_are_messages_not_tracebacks(manifest: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "asr", str(manifest), *args])
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err


def test_a_manifest_of_audio_and_text_is_enough(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"audio": r["audio"], "text": r["text"]} for r in map(json.loads, manifest.read_text().splitlines())]
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "asr", str(plain), "--delays", "480", "--quiet"]) == 0
    assert "| ? |" in capsys.readouterr().out  # no language given: one row for them all
    (tmp_path / "notext.jsonl").write_text(json.dumps({"audio": rows[0]["audio"]}) + "\n")
    assert main(["eval", "asr", str(tmp_path / "notext.jsonl")]) != 0
    err = capsys.readouterr().err
    assert "missing field(s) text" in err and "Traceback" not in err


def test_missing_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "asr", str(tmp_path / "nope.jsonl")])
    err = capsys.readouterr().err
    assert code != 0 and "nope.jsonl" in err and "Traceback" not in err


class _FakePeer:
    """Stands in for Whisper: answers from a fixed table keyed by the clip's length, and records what it heard."""

    name = "whisper-tiny.en"

    def __init__(self, answers: dict[int, str]) -> None:
        self.answers = answers
        self.heard: list = []

    def transcribe(self, wave) -> str:  # noqa: ANN001 - a [T] tensor
        self.heard.append(wave)
        return self.answers[wave.numel()]


def test_peer_column_scores_the_same_clips_with_the_same_normaliser(
    manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from voxkit.asr import peer as peer_module
    from voxkit.audio.io import load_audio

    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    waves = [with_noise(load_audio(r["audio"], 16000), 10.0, seed=i) for i, r in enumerate(rows)]
    # the first English clip right (case and punctuation differ), the second half wrong, German empty
    half = rows[1]["text"].split()
    answers = {waves[0].numel(): rows[0]["text"].upper().rstrip("."),
               waves[1].numel(): " ".join(half[: len(half) // 2] + ["x"] * (len(half) - len(half) // 2)),
               waves[2].numel(): ""}
    fake = _FakePeer(answers)
    monkeypatch.setitem(peer_module.PEERS, "whisper-tiny.en", lambda threads: fake)
    out = tmp_path / "hyp.jsonl"
    assert main(["eval", "asr", str(manifest), "--delays", "480", "--snr", "10", "--peer", "whisper-tiny.en",
                 "--hypotheses", str(out), "--quiet"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert lines[0] == "| language | 480 ms | peer whisper-tiny.en (offline) |"
    peer_cells = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in lines[1:]}
    english_words = sum(len(normalize_text(r["text"]).split()) for r in rows[:2])
    assert peer_cells["en"] == f"{100 * (len(half) - len(half) // 2) / english_words:.1f}"
    assert peer_cells["de"] == "100.0"
    # the peer heard exactly the audio voxkit was scored on (noise included)
    assert len(fake.heard) == 3 and all(a.equal(b) for a, b in zip(fake.heard, waves, strict=True))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["hypothesis"] for r in records if r.get("peer") == "whisper-tiny.en"] == [answers[w.numel()] for w in waves]
    assert all(r["delay_ms"] is None for r in records if r.get("peer"))


def test_peer_without_its_extra_is_a_one_line_error(manifest: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails as if not installed
    assert main(["eval", "asr", str(manifest), "--delays", "480", "--peer", "whisper-tiny.en", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "voxkit[peer]" in err and "faster_whisper" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["eval", "asr", str(manifest), "--peer", "whisper-huge"])
    assert "invalid choice: 'whisper-huge'" in capsys.readouterr().err


def test_repeated_rows_of_one_source_are_resampled_together() -> None:
    # 10 sources, each heard 8 times with the same edits (a short manifest cycled through a long
    # stream). Counted as 80 independent rows the interval is about sqrt(8) times too narrow; with
    # groups it is the interval of the 10 sources themselves, and the point estimate is unchanged.
    rng = np.random.default_rng(0)
    words = rng.integers(5, 20, 10).tolist()
    base = [int(rng.integers(0, w // 2)) for w in words]
    other = [b + int(rng.integers(0, 4)) for b in base]
    times = 8
    flat = paired_change(base * times, other * times, words * times, samples=2000)
    grouped = paired_change(base * times, other * times, words * times, samples=2000, groups=list(range(10)) * times)
    sources = paired_change(base, other, words, samples=2000)
    assert grouped[0] == pytest.approx(flat[0]) == pytest.approx(sources[0])
    assert grouped[2] - grouped[1] > 2 * (flat[2] - flat[1])
    assert grouped == pytest.approx(sources, abs=1e-9)  # the same clusters, the same draws
    with pytest.raises(ValueError, match="groups has 3 entries"):
        paired_change(base, other, words, groups=[0, 1, 2])
