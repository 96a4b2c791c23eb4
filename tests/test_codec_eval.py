"""``voxkit eval codec``: classical peers round-trip audio, the metrics order clean above degraded,
and the evaluation and its command line give a table (or a one-line error) as a user sees them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import voxkit
from cli_helpers import one_line_error, run_cli
from voxkit.asr import peer as asr_peer
from voxkit.audio.io import load_audio, resample
from voxkit.cli.eval import CODEC_PEERS
from voxkit.codec.evaluate import (
    ClipScores,
    CodecEvaluation,
    compare,
    evaluate_codecs,
    format_table,
    load_recogniser,
    mel_distance,
    mrstft_distance,
    pesq_wideband,
    stoi_score,
    summarise,
)
from voxkit.codec.peers import CODEC2_FRAME, CODEC2_RATE, PEER_CODECS, load_peer_codec, peer_codec_names
from voxkit.data.manifest import read_manifest
from voxkit.errors import VoxkitError

SAMPLE = Path(voxkit.__file__).parent / "assets" / "samples" / "en.flac"  # 8 s of synthetic English, 16 kHz


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """The first 3 s of the bundled English sample: PESQ and STOI need speech, not tones."""
    return load_audio(SAMPLE, 16000)[: 3 * 16000].numpy()  # [48000]


def vowel(seconds: float, sample_rate: int) -> np.ndarray:
    """A vowel-like harmonic tone: 120 Hz and its harmonics shaped by two formant bumps, with a slow swell."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate  # [N]
    harmonics = np.arange(1, 30)[:, None] * 120.0  # [H, 1] Hz
    weights = np.exp(-(((harmonics - 700) / 150) ** 2)) + 0.5 * np.exp(-(((harmonics - 1200) / 200) ** 2))  # [H, 1]
    tone = (weights * np.sin(2 * np.pi * harmonics * t)).sum(0)  # [N]
    return (0.3 * tone / np.abs(tone).max() * np.sin(np.pi * t / seconds)).astype(np.float32)  # [N]


def with_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(audio)).astype(np.float32)  # [N]
    noise *= np.sqrt((audio**2).mean() / (noise**2).mean() / 10 ** (snr_db / 10))
    return audio + noise


class Identity:
    """A perfect codec (and a lying bitrate): every quality score must come out ideal."""

    name = "identity"
    bitrate_bps = 256_000.0

    def roundtrip(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
        return audio.copy(), sample_rate


class EchoRecogniser:
    """A recogniser that hears only "hello world", whatever it is given."""

    name = "echo"

    def transcribe(self, wave: torch.Tensor) -> str:
        assert wave.dtype == torch.float32 and wave.ndim == 1
        return "Hello, world!"


@pytest.mark.parametrize("name", list(PEER_CODECS))
@pytest.mark.parametrize("rate", [16000, 24000])
def test_each_peer_round_trips_a_vowel_at_about_the_same_duration(name: str, rate: int) -> None:
    codec = load_peer_codec(name)
    out, out_rate = codec.roundtrip(vowel(1.0, rate), rate)
    assert codec.name == name and codec.bitrate_bps == float(name.rsplit("-", 1)[1])
    assert out.dtype == np.float32 and out.ndim == 1 and np.isfinite(out).all()
    assert out_rate == (8000 if name.startswith("codec2") else 16000)
    assert len(out) / out_rate == pytest.approx(1.0, abs=0.03)
    assert np.sqrt((out**2).mean()) > 0.02  # the tone came through, not silence


@pytest.mark.parametrize("name", ["codec2-2400", "codec2-3200"])
def test_codec2_output_is_aligned_with_its_input(name: str, speech: np.ndarray) -> None:
    """c2dec lags by one 20 ms frame; the peer removes it, so shifting the output is worse, not better."""
    out, rate = load_peer_codec(name).roundtrip(speech, 16000)
    reference = resample(torch.from_numpy(speech), 16000, rate).numpy()  # [N8]
    assert len(out) == len(reference)
    aligned = mel_distance(reference, out, rate)
    lag = CODEC2_FRAME * rate // CODEC2_RATE
    assert aligned < mel_distance(reference[:-lag], out[lag:], rate)  # the output does not trail the input
    assert aligned < mel_distance(reference[lag:], out[:-lag], rate)  # nor lead it


def test_missing_tools_name_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for name, package in (("codec2-2400", "codec2"), ("opus-6000", "opus-tools")):
        with pytest.raises(VoxkitError, match=f"Debian package {package}: sudo apt-get install {package}"):
            load_peer_codec(name)


def test_peer_names_are_checked_with_the_choices() -> None:
    assert peer_codec_names(" opus-6000, codec2-2400 ,") == ["opus-6000", "codec2-2400"]
    assert CODEC_PEERS.split(",") == list(PEER_CODECS)  # the CLI's default is every peer
    with pytest.raises(VoxkitError, match="unknown peer codec 'mp3'; choose from: codec2-2400, codec2-3200, opus-6000"):
        peer_codec_names("codec2-2400,mp3")
    with pytest.raises(VoxkitError, match="given twice: opus-6000"):
        peer_codec_names("opus-6000,opus-6000")
    with pytest.raises(VoxkitError, match="unknown peer codec"):
        load_peer_codec("codec2-700")


def test_identical_audio_scores_perfect_and_noise_scores_worse_on_every_metric(speech: np.ndarray) -> None:
    clean = compare(speech, speech)
    assert clean["mel_distance"] == 0.0 and clean["mrstft_distance"] == 0.0
    assert clean["stoi"] == pytest.approx(1.0, abs=1e-6) and clean["pesq_wb"] > 4.5
    mild, harsh = compare(speech, with_noise(speech, 20)), compare(speech, with_noise(speech, 5))
    for key in ("mel_distance", "mrstft_distance"):
        assert 0 < mild[key] < harsh[key], key
    for key in ("stoi", "pesq_wb"):
        assert clean[key] > mild[key] > harsh[key], key
    # a copy with a different length is compared over the common part
    assert compare(speech, np.concatenate([speech, speech[:800]]))["mel_distance"] == 0.0


def test_distances_follow_their_definitions_and_are_defined_on_silence(speech: np.ndarray) -> None:
    quiet = 0.5 * speech
    # 6 dB quieter is log10(2) in every mel cell, a little less where the quiet copy falls under the floor
    assert np.log10(2) - 0.02 < mel_distance(speech, quiet) <= np.log10(2) + 1e-9
    # spectral convergence ||R - R/2|| / ||R|| = 0.5 at every size, plus ln 2 per cell (less under the floor)
    assert 0.5 + np.log(2) - 0.05 < mrstft_distance(speech, quiet) <= 0.5 + np.log(2) + 1e-9
    silence = np.zeros(16000, dtype=np.float32)
    assert mel_distance(silence, silence) == 0.0 and np.isfinite(mrstft_distance(silence, speech[:16000]))


def test_unscorable_clips_are_missing_not_crashes() -> None:
    silence = np.zeros(8000, dtype=np.float32)
    assert pesq_wideband(silence, silence) is None  # no utterance
    assert stoi_score(silence[:3000], silence[:3000]) is None  # too few frames
    clips = [ClipScores("a.wav", "x", 1.0, 1.0, 0.5, 1.0, 0.9, 3.0), ClipScores("b.wav", "x", 1.0, 1.0, 0.7, 1.0, None, None)]
    row = summarise("x", clips, 6000.0)
    assert row.mel_distance == pytest.approx(0.6) and row.pesq_wb == 3.0 and row.pesq_missing == 1 and row.stoi_missing == 1
    table = format_table(CodecEvaluation([row], clips, None))
    assert "| x | 6 | 0.600 | 1.000 | 0.900 | 3.00 | - |" in table
    assert "x: PESQ-wb could not score 1 of 2 clips" in table and "x: STOI could not score 1 of 2 clips" in table


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory, speech: np.ndarray) -> Path:
    """Two clips of real-length speech, one at 16 kHz and one at 24 kHz, with their texts."""
    folder = tmp_path_factory.mktemp("codec_eval")
    first = speech[: 2 * 16000]  # [32000]
    second = resample(torch.from_numpy(speech[16000:]), 16000, 24000).numpy()  # [48000] at 24 kHz
    sf.write(folder / "a.wav", first, 16000, subtype="PCM_16")
    sf.write(folder / "b.wav", second, 24000, subtype="PCM_16")
    rows = [{"audio": "a.wav", "text": "hello world"}, {"audio": "b.wav", "text": "hello there friend"}]
    path = folder / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluation_table_has_the_original_each_codec_and_a_peer(manifest: Path) -> None:
    rows = read_manifest(manifest, required=("audio", "text"))
    result = evaluate_codecs(rows, [Identity(), load_peer_codec("opus-6000")], recogniser=None, progress=False)
    assert [s.codec for s in result.summaries] == ["original", "identity", "opus-6000"]
    assert len(result.clips) == 6 and result.recogniser is None
    original, identity, opus = result.summaries
    assert original.mel_distance is None and original.wer is None
    assert identity.mel_distance == 0.0 and identity.stoi == pytest.approx(1.0) and identity.pesq_wb > 4.5
    assert opus.mel_distance > 0.1 and opus.pesq_wb < identity.pesq_wb and opus.stoi < identity.stoi
    lines = format_table(result).splitlines()
    assert lines[0] == "| codec | kbps | mel dist | MR-STFT dist | STOI | PESQ-wb | WER % |"
    assert lines[2] == "| original | - | - | - | - | - | - |"
    assert lines[3].startswith("| identity | 256 | 0.000 | 0.000 | 1.000 | 4.6") and lines[3].endswith("| - |")
    assert lines[4].startswith("| opus-6000 | 6 |")
    b = [c for c in result.clips if c.audio.endswith("b.wav") and c.codec == "identity"][0]
    assert b.seconds_in == pytest.approx(2.0) and b.seconds_out == pytest.approx(2.0)  # the codec got the 24 kHz file as it is


def test_wer_columns_use_the_asr_normaliser_and_pool_over_the_corpus(manifest: Path) -> None:
    rows = read_manifest(manifest, required=("audio", "text"))
    result = evaluate_codecs(rows, [Identity()], recogniser=EchoRecogniser(), progress=False)
    # "Hello, world!" normalises to the first text (0 errors of 2); the second has 2 errors of 3 words
    assert [s.wer for s in result.summaries] == [pytest.approx(40.0)] * 2
    assert [(c.errors, c.words) for c in result.clips] == [(0, 2), (0, 2), (2, 3), (2, 3)]
    assert result.recogniser == "echo" and format_table(result).splitlines()[2].endswith("| 40.0 |")


def test_an_english_recogniser_on_other_languages_is_a_note(manifest: Path) -> None:
    """Whisper tiny.en's WER of French speech measures the recogniser: the table says so, as eval tts does."""
    rows = read_manifest(manifest, required=("audio", "text"))
    english = EchoRecogniser()
    english.languages = ("en",)  # type: ignore[attr-defined]
    result = evaluate_codecs([{**rows[0], "language": "en"}, {**rows[1], "language": "fr"}], [Identity()],
                             recogniser=english, progress=False)
    assert result.notes == ["echo is made for en: its WER on the rows in fr says little"]
    assert "says little" in format_table(result)
    assert evaluate_codecs([{**r, "language": "en"} for r in rows], [Identity()], recogniser=english, progress=False).notes == []


def test_a_missing_recogniser_is_a_note_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(threads: int) -> asr_peer.Peer:
        raise VoxkitError("--peer whisper-tiny.en needs the peer extra (faster_whisper is missing): pip install 'voxkit[peer]'")

    monkeypatch.setitem(asr_peer.PEERS, "whisper-tiny.en", not_installed)
    assert load_recogniser("none") == (None, None)
    recogniser, note = load_recogniser(None)
    assert recogniser is None and note is not None and "WER columns are '-': --asr whisper-tiny.en needs the peer extra" in note
    with pytest.raises(VoxkitError, match=r"^--asr whisper-tiny.en needs the peer extra"):
        load_recogniser("whisper-tiny.en")


def test_codec_names_must_be_distinct(manifest: Path) -> None:
    rows = read_manifest(manifest, required=("audio", "text"))
    with pytest.raises(VoxkitError, match="distinct"):
        evaluate_codecs(rows, [Identity(), Identity()], progress=False)




def test_cli_scores_the_peers_and_writes_json(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "scores.json"
    code, out, err = run_cli(["eval", "codec", str(manifest), "--peers", "codec2-3200", "--asr", "none", "--limit", "1",
                           "--json", str(out_json), "--quiet"], capsys)
    assert code == 0
    assert one_line_error(err) == "voxkit eval codec: no --model given: scoring the classical peers only"
    assert "(1 clip," in out and "| original | - |" in out and "| codec2-3200 | 3.2 |" in out
    saved = json.loads(out_json.read_text())
    assert [c["codec"] for c in saved["codecs"]] == ["original", "codec2-3200"] and len(saved["clips"]) == 2
    assert saved["sample_rate"] == 16000 and saved["recogniser"] is None and saved["manifest"] == str(manifest)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--peers", "codec2-2400,mp3"], "unknown peer codec 'mp3'; choose from: codec2-2400, codec2-3200, opus-6000"),
        (["--no-peers"], "nothing to evaluate"),
        (["--limit", "0"], "--limit takes a number of clips of at least 1"),
        (["--model", "/nonexistent/codec"], "--model /nonexistent/codec: no such folder"),
    ],
)
def test_cli_flag_mistakes_are_one_line_errors(
    extra: list[str], message: str, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["eval", "codec", str(manifest), "--asr", "none", "--quiet", *extra], capsys)
    assert code == 2 and message in one_line_error(err)


def test_cli_refuses_missing_binary_and_empty_manifests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "clip.flac", vowel(0.5, 16000), 16000)
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "empty.jsonl").write_text("\n")
    for path, what in ((tmp_path / "missing.jsonl", "manifest not found"),
                       (tmp_path / "clip.flac", "is FLAC audio, not a JSONL manifest"),
                       (tmp_path / "blob.bin", "is binary data, not a JSONL manifest"),
                       (tmp_path, "is a folder, not a manifest"),
                       (tmp_path / "empty.jsonl", "no utterances to evaluate")):
        code, _, err = run_cli(["eval", "codec", str(path)], capsys)
        assert code == 2 and what in one_line_error(err), err
