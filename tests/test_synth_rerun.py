"""Re-running ``voxkit data synth`` into an existing corpus folder: what it reuses, redoes and refuses.

A folder keeps the rates and format it was rendered with (a re-run asking for others is refused, so
its manifests and summary.json never claim audio it does not hold), and reuses an utterance only
when the file on disk holds what the plan asks for. Hand-made three-utterance plans keep each build
to a second or two (planning a language takes far longer than rendering it).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_helpers import one_line_error, run_cli
from voxkit.audio.io import audio_rate
from voxkit.data.espeak import Voice
from voxkit.data.manifest import check_manifest, read_manifest
from voxkit.data.synth import UttPlan, build_corpus, save_plan
from voxkit.errors import DataError

TEXTS = ("The old lighthouse keeper walked home slowly.", "Please call me before nine on Friday.",
         "A board beside a kitchen sink.")
OTHER_TEXTS = ("She sells shells by the sea shore every summer morning.", "Nobody came.", "The train left early today.")


def _plans(texts: tuple[str, ...] = TEXTS, pitch: int = 50) -> list[UttPlan]:
    return [UttPlan(f"en-{split}-{0:06d}", split, "en", text, "en:m3:p50:g50:r175", Voice("en-us", "m3", pitch=pitch))
            for split, text in zip(("train", "dev", "test"), texts, strict=True)]


def _build(out: Path, plans: list[UttPlan], **kw: object) -> dict:
    return build_corpus(str(out), ["en"], 0.01, seed=1, workers=1, progress=False, plans=plans, **kw)  # type: ignore[arg-type]


def _consistent(out: Path, rate: int = 16000) -> list[dict]:
    """Every manifest row's file is at the rate the row records, and data check --decode agrees."""
    rows = [r for split in ("train", "dev", "test") for r in read_manifest(str(out / f"{split}.jsonl"))]
    for split in ("train", "dev", "test"):
        assert check_manifest(str(out / f"{split}.jsonl"), decode=True).problems == []
    assert {(r["sample_rate"], audio_rate(r["audio"])) for r in rows} == {(rate, rate)}
    return rows


def test_rerun_with_other_rates_or_format_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The review's case: a re-run with --sample-rates 24000 said "already there" and wrote manifests
    claiming 24 kHz over 16 kHz files; --format wav wrote no WAV and a summary saying wav."""
    plan, out = tmp_path / "p l.jsonl.gz", tmp_path / "sr"
    save_plan(str(plan), _plans(), ["en"], 0.01, 1)
    synth = ["data", "synth", "--plan", str(plan), "--out", str(out), "--quiet", "--workers", "1"]
    assert run_cli(synth, capsys)[0] == 0
    manifest, summary = (out / "train.jsonl").read_text(), (out / "summary.json").read_text()
    for flags in (["--sample-rates", "24000"], ["--format", "wav"], ["--sample-rates", "16000,24000"]):
        code, _, err = run_cli([*synth, *flags], capsys)
        assert code == 2, flags
        assert one_line_error(err) == (f"voxkit data: error: {out} was rendered at 16000 Hz as flac: render into another "
                                       "folder, or pass --sample-rates 16000 --format flac to resume it")
    assert (out / "train.jsonl").read_text() == manifest and (out / "summary.json").read_text() == summary
    assert not list(out.rglob("*.wav")) and not (out / "audio24k").exists()
    code, stdout, _ = run_cli([*synth, "--sample-rates", "16000", "--format", "flac"], capsys)
    assert code == 0 and "0 rendered now, 3 already there" in stdout
    _consistent(out)
    # another folder takes the other settings, and its metadata says what its files hold
    wav = tmp_path / "wav24"
    assert run_cli(["data", "synth", "--plan", str(plan), "--out", str(wav), "--quiet", "--workers", "1",
                    "--sample-rates", "24000", "--format", "wav"], capsys)[0] == 0
    assert {Path(r["audio"]).suffix for r in _consistent(wav, 24000)} == {".wav"}
    assert json.loads((wav / "summary.json").read_text())["format"] == "wav"


def test_resume_after_an_interrupt_also_in_a_folder_without_render_json(tmp_path: Path) -> None:
    """Ctrl-C leaves shard rows and no manifests: the same settings resume. A folder rendered before
    render.json existed has its settings read from its files' headers."""
    out = tmp_path / "c"
    assert _build(out, _plans())["rendered_now"] == 3
    shard = out / "shards" / "00000.jsonl"
    shard.write_text(shard.read_text().splitlines()[0] + "\n")  # what an interrupted run leaves
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "summary.json"):
        (out / name).unlink()
    again = _build(out, _plans())
    assert (again["rendered_now"], again["skipped_existing"], again["utterances"]) == (2, 1, 3)
    _consistent(out)
    (out / "render.json").unlink(missing_ok=True)  # as an older voxkit left it
    with pytest.raises(DataError, match="rendered at 16000 Hz as flac"):
        _build(out, _plans(), sample_rates=(24000,))
    assert _build(out, _plans())["rendered_now"] == 0
    assert json.loads((out / "render.json").read_text()) == {"sample_rates": [16000], "format": "flac"}


def test_files_an_older_rerun_wrote_at_another_rate_are_rendered_again(tmp_path: Path) -> None:
    """Before the refusal, a re-run at 24 kHz rendered the utterances still missing at 24 kHz into
    the same audio/ folder. Resuming such a folder at its own rate re-renders those files."""
    out = tmp_path / "mixed"
    _build(out, _plans())
    (out / "render.json").unlink(missing_ok=True)
    victim = next(r for r in read_manifest(str(out / "dev.jsonl")))
    sf.write(victim["audio"], np.zeros(24000, np.float32), 24000, format="FLAC")
    again = _build(out, _plans())
    assert again["rendered_now"] == 1 and audio_rate(victim["audio"]) == 16000
    _consistent(out)


def test_a_file_another_plan_overwrote_is_not_reused(tmp_path: Path) -> None:
    """Plans with other seeds reuse utterance ids, so their files share paths: after rendering
    plan B into a folder of plan A, plan A's old rows name files that hold B's speech."""
    out = tmp_path / "ab"
    assert _build(out, _plans())["rendered_now"] == 3
    assert _build(out, _plans(OTHER_TEXTS))["rendered_now"] == 3
    back = _build(out, _plans())
    assert back["rendered_now"] == 3 and back["skipped_existing"] == 0
    assert [r["text"] for r in _consistent(out)] == list(TEXTS)


def test_a_changed_voice_is_rendered_again(tmp_path: Path) -> None:
    """Same ids, texts and speakers, another pitch: the files on disk are not what the plan asks for."""
    out = tmp_path / "v"
    _build(out, _plans())
    again = _build(out, [replace(p, voice=replace(p.voice, pitch=80)) for p in _plans()])
    assert again["rendered_now"] == 3
    assert _build(out, _plans())["rendered_now"] == 3  # and back


def test_sample_rates_whose_folders_would_collide_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="differ by 1 kHz"):
        _build(tmp_path / "x", _plans(), sample_rates=(16000, 24000, 24000))
    assert not (tmp_path / "x").exists()
