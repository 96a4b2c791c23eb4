"""Long-form evaluation: joining utterances into one stream, giving words back, scoring per minute."""

from __future__ import annotations

from pathlib import Path

import torch

import voxkit
from voxkit.asr.evaluate import utterance_errors
from voxkit.asr.long_form import Placement, assign_words, evaluate_long_form, format_long_form, join_utterances
from voxkit.audio.io import load_audio

SAMPLES = Path(voxkit.__file__).parent / "assets" / "samples"


def test_join_places_every_utterance_where_it_says() -> None:
    waves = [torch.full((1600 * (i + 1),), float(i + 1)) for i in range(3)]  # 0.1, 0.2, 0.3 s of constant values
    stream, placements = join_utterances(waves, ["a", "b", "c"], minutes=0.25, seed=1)  # 15 s
    assert stream.numel() <= 15 * 16000 and len(placements) >= 4
    assert [p.text for p in placements[:4]] == ["a", "b", "c", "a"]  # cycles through the utterances
    for p in placements:
        s, e = round(p.start * 16000), round(p.end * 16000)
        assert torch.equal(stream[s:e], waves[p.index])
        assert stream[s - 1] == 0  # a pause before every utterance
    assert all(a.end < b.start for a, b in zip(placements, placements[1:], strict=False))


def test_words_go_to_the_nearest_utterance_split_at_the_middle_of_each_pause() -> None:
    placements = [Placement(0, 1.0, 2.0, "x"), Placement(1, 3.0, 4.0, "y")]
    words = [("early", 0.5), ("one", 1.2), ("late", 2.4), ("marked", 2.96), ("two", 3.0), ("after", 9.0)]
    # "marked": the next utterance's first word, marked a step before its first sample
    assert assign_words(words, placements) == [["early", "one", "late"], ["marked", "two", "after"]]


def test_minutes_of_a_stream_are_scored_beside_the_utterances_alone() -> None:
    asr = voxkit.Transcriber()
    waves = [load_audio(SAMPLES / f"{n}.flac", 16000)[: 16000 * 3] for n in ("en", "es")]
    texts = ["Order number seven hundred", "placeholder reference words"]
    rows = evaluate_long_form(asr.bundle.model, asr.bundle.tokenizer, waves, texts, minutes=0.25, delay=6, progress=False)
    _, placements = join_utterances(waves, texts, 0.25)
    assert [r.minute for r in rows] == [0] and rows[0].utterances == len(placements)
    alone = [asr.transcribe(w).text for w in waves]
    expected_alone = sum(utterance_errors(p.text, alone[p.index])[0] for p in placements)
    assert rows[0].alone_errors == expected_alone
    assert rows[0].reference_words == sum(len(p.text.split()) for p in placements)
    assert rows[0].rss_mb > 0
    table = format_long_form(rows, 480)
    assert "| 1 |" in table and "worst minute: 1" in table and "all minutes: " in table


def test_eval_cli_prints_the_long_form_table(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    import json

    from voxkit.cli.main import main

    manifest = tmp_path / "m.jsonl"
    rows = [{"audio": str(SAMPLES / "en.flac"), "text": "Order number seven hundred", "language": "en"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "asr", str(manifest), "--long-form", "0.3", "--delays", "480", "--quiet", "--output", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    assert "Long-form stream at 480 ms" in out and "| 1 |" in out
    assert (tmp_path / "t.md").read_text().startswith("Long-form stream at 480 ms")
    assert main(["eval", "asr", str(manifest), "--long-form", "-1"]) == 2
